package sasl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Mechanism names as advertised. RFC 4422 3.1: names are upper-case; clients
// may send them in any case, so NewServer compares case-insensitively.
const (
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	Plain           = "PLAIN"
	Login           = "LOGIN"
)

// Error classes. Every error from NewServer or Server.Next wraps exactly one
// of these, or else is our own failure (the directory is unavailable, stored
// keys are unusable) and wraps none of them; the protocol layer answers the
// latter as a temporary failure. No error text contains a password or any
// other bytes the client sent.
var (
	// ErrInvalidCredentials: unknown user or wrong password (or SCRAM proof).
	ErrInvalidCredentials = errors.New("sasl: invalid credentials")
	// ErrMalformed: the client's message breaks the mechanism's syntax.
	ErrMalformed = errors.New("sasl: malformed client message")
	// ErrUnsupportedMechanism: unknown mechanism, or not allowed with these Options.
	ErrUnsupportedMechanism = errors.New("sasl: unsupported mechanism")
	// ErrAuthzidNotAllowed: the credentials are good but the client asked to act
	// as another identity, which Posta never allows.
	ErrAuthzidNotAllowed = errors.New("sasl: authorization identity not allowed")
	// ErrBindingMismatch: SCRAM channel binding is inconsistent: wrong binding
	// data, a channel binding type this connection does not have, "p=" under
	// the non-PLUS name, or no "p=" under the -PLUS name.
	ErrBindingMismatch = errors.New("sasl: channel binding mismatch")
	// ErrDowngrade: the client sent the SCRAM "y" flag (it supports channel
	// binding but did not see -PLUS advertised) although we advertised it,
	// so someone removed it from our list (RFC 5802 6).
	ErrDowngrade = errors.New("sasl: channel binding downgrade detected")
	// ErrExchangeOver: Next was called after the exchange had succeeded or
	// failed; a new exchange needs a new Server.
	ErrExchangeOver = errors.New("sasl: exchange already finished")
)

// RFC 4616 2: servers MUST accept authzid, authcid and passwd of up to 255
// octets. We accept exactly that much and no more, so a client cannot make
// us hash or look up megabytes; LOGIN and SCRAM names use the same bound.
const maxFieldLen = 255

// Credentials is what the mechanisms need from the user directory. The
// directory package implements it; implementations must be safe for
// concurrent use.
type Credentials interface {
	// VerifyPassword checks a plaintext password in constant time. It returns
	// the canonical account name (e.g. "alice@example.test") on success, or
	// an error wrapping ErrInvalidCredentials. username and password are
	// passed as the client sent them; the implementation prepares the
	// password with PreparePassword (the preparation SCRAMSHA256Keys applies)
	// so that PLAIN, LOGIN, SCRAM, FTP and SFTP all agree on what a password
	// is (RFC 4616 2: a stored hash must be of the prepared string).
	VerifyPassword(ctx context.Context, username, password string) (account string, err error)
	// SCRAMSHA256 returns the stored SCRAM-SHA-256 keys for a user (RFC 5802
	// 3: salt, iteration count, StoredKey, ServerKey); the plaintext password
	// is never stored. Unknown user: error wrapping ErrInvalidCredentials.
	// RFC 5802 5.1: the username arrives as the client sent it (after =2C and
	// =3D decoding) and the lookup must be SASLprep-aware, e.g. compare
	// canonical forms.
	SCRAMSHA256(ctx context.Context, username string) (account string, keys SCRAMKeys, err error)
}

// Options says what this connection allows. The zero value is a plaintext
// connection: only SCRAM-SHA-256 is offered.
type Options struct {
	// TLS is true when the connection is protected by TLS. PLAIN and LOGIN
	// send the password in the clear, so they are offered only over TLS
	// unless AllowPlaintext is set.
	TLS bool
	// AllowPlaintext offers PLAIN and LOGIN without TLS (tests, local relays).
	AllowPlaintext bool
	// Binding is the TLS channel binding (ChannelBindingFromTLS); nil when the
	// connection is not TLS or has no usable binding. When set,
	// SCRAM-SHA-256-PLUS is offered and a SCRAM "y" flag is a downgrade.
	Binding *ChannelBinding
	// UnknownUserIterations is the SCRAM iteration count shown to a client
	// that names an unknown user, so that the server-first message looks like
	// a real user's. Set it to what the directory uses for new passwords;
	// 0 means MinSCRAMIterations.
	UnknownUserIterations int
	// NewNonce returns the SCRAM server nonce (printable ASCII except ",",
	// RFC 5802 7). nil means 24 random base64 characters (18 random bytes);
	// tests set it to reproduce the RFC 7677 example.
	NewNonce func() string
}

// binding returns the channel binding if there is one worth offering.
func (o Options) binding() *ChannelBinding {
	if o.Binding == nil || o.Binding.Type == "" || len(o.Binding.Data) == 0 {
		return nil
	}
	return o.Binding
}

// plaintextOK reports whether PLAIN and LOGIN may be used.
func (o Options) plaintextOK() bool { return o.TLS || o.AllowPlaintext }

// Mechanisms lists the mechanism names to advertise for these options,
// strongest first.
func Mechanisms(o Options) []string {
	var m []string
	// RFC 5802 6: a server that supports channel binding SHOULD advertise both
	// the -PLUS and the bare name; one that cannot, only the bare name.
	if o.binding() != nil {
		m = append(m, SCRAMSHA256Plus)
	}
	m = append(m, SCRAMSHA256)
	// RFC 4616 1: PLAIN SHOULD be advertised only when adequate data
	// security (TLS) is in place; draft-murchison-sasl-login 1 says the same
	// of LOGIN (MUST NOT be used without adequate security protection).
	if o.plaintextOK() {
		m = append(m, Plain, Login)
	}
	return m
}

// Server is one authentication exchange. It is not safe for concurrent use.
type Server interface {
	// Next takes the client's response (nil for "no initial response") and
	// returns the next challenge. done=true means the exchange succeeded;
	// the challenge may still carry final data (SCRAM's server-final
	// "v=..."), which the protocol sends as additional data with success
	// or, when it has no such field (SMTP, RFC 4954), as one more challenge
	// whose response must be empty (RFC 4422 3). An error ends the
	// exchange; see the Err* variables for its classes.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Account is the authenticated canonical account name once done, "" before.
	Account() string
	// Username is the authentication identity as the client presented it,
	// once parsed ("" before). It is not authenticated: for logs and for
	// counting failed attempts per user only.
	Username() string
}

// NewServer starts a server conversation for a mechanism name
// (case-insensitive). A mechanism that is unknown or not in Mechanisms(o)
// gives an error wrapping ErrUnsupportedMechanism. ctx is used for the
// Credentials calls that Next makes.
func NewServer(ctx context.Context, mech string, creds Credentials, o Options) (Server, error) {
	if creds == nil {
		return nil, errors.New("sasl: nil Credentials")
	}
	name := strings.ToUpper(mech)
	offered := false
	for _, m := range Mechanisms(o) {
		if m == name {
			offered = true
			break
		}
	}
	if !offered {
		// Only names from our own list are echoed, never the client's bytes.
		switch name {
		case SCRAMSHA256Plus:
			return nil, fmt.Errorf("%w: %s needs a TLS channel binding", ErrUnsupportedMechanism, name)
		case Plain, Login:
			return nil, fmt.Errorf("%w: %s needs TLS", ErrUnsupportedMechanism, name)
		}
		return nil, ErrUnsupportedMechanism
	}
	switch name {
	case Plain:
		return &plainServer{ctx: ctx, creds: creds}, nil
	case Login:
		return &loginServer{ctx: ctx, creds: creds}, nil
	case SCRAMSHA256:
		return newSCRAMServer(ctx, creds, o, false), nil
	case SCRAMSHA256Plus:
		return newSCRAMServer(ctx, creds, o, true), nil
	}
	return nil, ErrUnsupportedMechanism // unreachable: Mechanisms lists only the above
}

// malformed wraps ErrMalformed with a fixed description (never client bytes).
func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// credentialsError wraps an error from Credentials. ErrInvalidCredentials
// stays visible to errors.Is; other errors (database down) keep their own
// class so the protocol layer answers them as temporary failures.
// Credentials implementations must not put the password in their errors.
func credentialsError(op string, err error) error {
	return fmt.Errorf("sasl: %s: %w", op, err)
}

// validField checks one identity or password field: non-empty, bounded, UTF-8
// without NUL.
func validField(s string) bool {
	return s != "" && len(s) <= maxFieldLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// authzidAllowed implements Posta's single authorization rule: a client may
// only act as itself. RFC 4422 3.4.1: an empty authzid means "act as the
// identity the credentials give"; a non-empty one must name that same
// identity, either as the client typed it or as the directory spells it.
func authzidAllowed(authzid, authcid, account string) bool {
	return authzid == "" || authzid == authcid || authzid == account
}
