package delivery

import (
	"errors"
	"net/netip"
	"time"
)

// Envelope is what the SMTP server learned about one message: the SMTP
// envelope (RFC 5321 2.3.1) plus the session facts the Received header and
// delivery policy need.
type Envelope struct {
	// MailFrom is the reverse-path without brackets; "" is the null sender <>.
	MailFrom   string
	Recipients []Recipient
	// Account is the authenticated account that submitted the message; ""
	// for mail arriving on the MX port without authentication.
	Account string

	RemoteIP   netip.Addr
	RemoteHost string // reverse DNS name if known
	HELO       string // the EHLO/HELO argument
	TLS        string // e.g. "TLS1.3 TLS_AES_128_GCM_SHA256"; "" without TLS
	ESMTP      bool   // EHLO rather than HELO
	Auth       bool   // Account authenticated on this session
	Listener   string // "smtp", "submission", "submissions"

	// SMTPUTF8 (RFC 6531) and the body type (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
	SMTPUTF8 bool
	Body     string // "7BIT", "8BITMIME", "BINARYMIME" or ""
	// DSN parameters (RFC 3461 4.3, 4.4).
	Ret   string // "FULL", "HDRS" or ""
	EnvID string
	// Size is the SIZE parameter (RFC 1870), 0 when not declared.
	Size int64
	// RequireTLS is the REQUIRETLS parameter (RFC 8689): the message may
	// only be relayed over verified TLS to servers that honour it too.
	// Local delivery needs nothing more (RFC 8689 4.2.1).
	RequireTLS bool

	ReceivedAt time.Time
	// ID is the queue/session id the Received header names and logs use.
	ID string
}

// Recipient is one forward-path with its DSN parameters (RFC 3461 4.1, 4.2).
type Recipient struct {
	Address string
	Notify  []string // NEVER, SUCCESS, FAILURE, DELAY
	ORCPT   string   // "rfc822;addr" as given
}

// Errors CheckSender, CheckRecipient and Deliver return; the SMTP server
// maps them to replies with errors.Is. Any other error is our own failure and
// is answered with a temporary 451 4.3.0.
var (
	// ErrNoSuchUser: a local domain, but nobody receives at the address (550 5.1.1).
	ErrNoSuchUser = errors.New("no such user here")
	// ErrRelayDenied: another domain, and the client is not authenticated (550 5.7.1).
	ErrRelayDenied = errors.New("relaying denied")
	// ErrBadAddress: the address is not a valid mailbox (553 5.1.3).
	ErrBadAddress = errors.New("bad address syntax")
	// ErrMailboxFull: the account is over its quota now (452 4.2.2, RFC 3463 3.3).
	ErrMailboxFull = errors.New("mailbox full")
	// ErrQuotaExceeded: this message does not fit the account's quota (552 5.2.2).
	ErrQuotaExceeded = errors.New("message exceeds the mailbox quota")
	// ErrSenderNotOwned: an authenticated user used an address it does not own in MAIL FROM (550 5.7.1).
	ErrSenderNotOwned = errors.New("sender address not owned by the authenticated user")
	// ErrMessageTooBig: the message is larger than the server accepts (552 5.3.4).
	ErrMessageTooBig = errors.New("message too big")
	// ErrDMARCReject: the message fails DMARC and its author domain's
	// policy is p=reject (RFC 7489 6.6.2, 10.3: 550 5.7.1). Deliver returns
	// it as a *DMARCRejectError, whose Reason the reply may show.
	ErrDMARCReject = errors.New("rejected by the author domain's DMARC policy")
)

// DMARCRejectError is the refusal of a message under its author domain's
// DMARC reject policy, before anything is stored. It wraps ErrDMARCReject.
type DMARCRejectError struct {
	// Reason is mailauth's Verdict.Reason: which domain, which policy;
	// words fit for a log line or an SMTP reply.
	Reason string
}

func (e *DMARCRejectError) Error() string { return ErrDMARCReject.Error() + ": " + e.Reason }

func (e *DMARCRejectError) Unwrap() error { return ErrDMARCReject }
