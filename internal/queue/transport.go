package queue

import (
	"context"
	"io"
)

// Envelope is what a Transport needs to send one message to the
// recipients of one destination domain.
type Envelope struct {
	ID         int64 // queue id, for logs
	MailFrom   string
	Domain     string      // every recipient is in it
	Recipients []Recipient // with their DSN parameters, passed on (RFC 3461 4)
	Size       int64       // octets Body yields
	SMTPUTF8   bool        // the message needs SMTPUTF8 (RFC 6531)
	BodyType   string      // "7BIT", "8BITMIME", "BINARYMIME" or ""
	RequireTLS bool        // REQUIRETLS (RFC 8689): never send without verified TLS
	// TLSOptional: the message says "TLS-Required: No" (RFC 8689 3):
	// the recipient domain's TLS policies (MTA-STS, DANE) are not applied,
	// STARTTLS is still used where offered. Never set with RequireTLS.
	TLSOptional bool
	EnvID       string // ENVID (RFC 3461 4.4)
	Ret         string // RET (RFC 3461 4.3)
}

// Result is what became of one recipient.
type Result struct {
	Recipient string
	// Code and Enhanced are the remote reply (e.g. 250, "2.1.5"); Code is 0
	// when there was none (no MX answered, TLS required but missing).
	Code     int
	Enhanced string
	Text     string // the remote reply text, or what went wrong, for the DSN
	// Permanent: give up now (5xx, null MX, SMTPUTF8 needed but not
	// offered); a failure that is not permanent is retried.
	Permanent bool
	RemoteMTA string // the host that answered, for the DSN's Remote-MTA
	Err       error  // the cause, for the log
	// RemoteDSN: the remote server offered DSN, so NOTIFY went along with
	// the recipient and success is now its to report (RFC 3461 5.2.1 c);
	// false makes the queue send a "relayed" DSN to a recipient with
	// NOTIFY=SUCCESS (RFC 3461 5.2.2 b).
	RemoteDSN bool
}

// Delivered reports a 2xx reply.
func (r Result) Delivered() bool { return r.Code >= 200 && r.Code < 300 }

// Transport sends messages to remote servers (internal/queue/mx implements
// it over SMTP; tests use fakes). body returns a fresh reader of the
// message as it must go out (DKIM signature included) each time it is
// called. Send returns one Result per recipient of env.
type Transport interface {
	Send(ctx context.Context, env Envelope, body func() (io.Reader, error)) []Result
}
