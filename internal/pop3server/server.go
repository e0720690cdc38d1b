package pop3server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"posta/internal/config"
	"posta/internal/conntrack"
	"posta/internal/guard"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

// Limits bound every POP3 session. A zero field takes its value from
// DefaultLimits (zero never means unlimited); New refuses negative values.
// Validate checks the RFC minimums, for configuration loading.
type Limits struct {
	// MaxLineLength is the longest command line in octets, CRLF included.
	// RFC 2449 4: at least 255. The default leaves room for a 255-octet
	// password after "PASS " (RFC 4616 2 sizes, which internal/sasl takes).
	MaxLineLength int
	// MaxAuthLineLength is the longest AUTH response line (RFC 5034 4: they
	// may be longer than commands; a SCRAM client-final is ~150 octets, a
	// PLAIN response of three 255-octet fields ~1 KiB in base64).
	MaxAuthLineLength int
	// IdleTimeout is how long the server waits for the next command (RFC
	// 1939 3: an autologout timer, if any, of at least 10 minutes). When it
	// fires the connection is closed without a reply and without the UPDATE
	// state.
	IdleTimeout time.Duration
	// WriteTimeout: a client that reads nothing of a reply for this long is
	// cut (each write that makes progress starts it again).
	WriteTimeout time.Duration
	// MaxCommandsBeforeAuth bounds what an unauthenticated peer may make the
	// server do.
	MaxCommandsBeforeAuth int
	// MaxErrors is how many refused commands end a session.
	MaxErrors int
}

// DefaultLimits are the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxLineLength:         512,
		MaxAuthLineLength:     4096,
		IdleTimeout:           10 * time.Minute,
		WriteTimeout:          5 * time.Minute,
		MaxCommandsBeforeAuth: 30,
		MaxErrors:             20,
	}
}

// RFC minimums, checked by Validate.
const (
	minLineLength  = 255              // RFC 2449 4
	minIdleTimeout = 10 * time.Minute // RFC 1939 3
)

// Validate reports a limit below what the RFCs require. New does not call
// it (tests run with short timeouts); configuration loading should.
func (l Limits) Validate() error {
	l = l.withDefaults()
	switch {
	case l.MaxLineLength < minLineLength:
		return fmt.Errorf("pop3: max line length %d below RFC 2449 4's %d", l.MaxLineLength, minLineLength)
	case l.MaxAuthLineLength < l.MaxLineLength:
		return fmt.Errorf("pop3: max auth line length %d below max line length %d", l.MaxAuthLineLength, l.MaxLineLength)
	case l.IdleTimeout < minIdleTimeout:
		return fmt.Errorf("pop3: idle timeout %v below RFC 1939 3's %v", l.IdleTimeout, minIdleTimeout)
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&l.MaxLineLength, d.MaxLineLength)
	setInt(&l.MaxAuthLineLength, d.MaxAuthLineLength)
	setDur(&l.IdleTimeout, d.IdleTimeout)
	setDur(&l.WriteTimeout, d.WriteTimeout)
	setInt(&l.MaxCommandsBeforeAuth, d.MaxCommandsBeforeAuth)
	setInt(&l.MaxErrors, d.MaxErrors)
	return l
}

// Policy is site policy; the zero value is the default: mail stays until
// the client deletes it, and deleted mail is expunged.
type Policy struct {
	// ExpireDays > 0: messages retrieved (RETR) over POP3 are kept at least
	// this many days after the day of their first retrieval, then expunged
	// when the account next logs in over POP3; announced as EXPIRE n (RFC
	// 2449 6.7). 0: EXPIRE NEVER, the server deletes nothing by itself.
	ExpireDays int
	// DeletedToTrash: messages deleted over POP3 are moved to the account's
	// Trash (special use \Trash, else "Trash", created if missing) instead
	// of being expunged, so an IMAP client or the user can still get them.
	DeletedToTrash bool
	// LoginDelay > 0: minimum time between two logins of one account,
	// announced as LOGIN-DELAY and enforced with [LOGIN-DELAY] (RFC 2449
	// 6.5, 8.1.1). 0: LOGIN-DELAY 0, no minimum.
	LoginDelay time.Duration
}

// Options are what New needs. Config, Directory, Guard, Store and Locks are
// required; TLS is required for implicit TLS, for STLS, and for any login
// without Config.AllowPlaintextAuth.
type Options struct {
	Config    *config.Config  // Hostname, AllowPlaintextAuth
	Listener  config.Listener // "pop3" (STLS) or "pop3s" (implicit TLS)
	Directory sasl.Credentials
	Guard     *guard.Guard
	TLS       *tlsconf.Manager
	Store     Store
	// Locks must be shared by every POP3 listener of the process.
	Locks  *MaildropLocks
	Limits Limits
	Policy Policy
	// Logger gets one line per session event; connection ids start with
	// the listener name.
	Logger *slog.Logger
	// Now is the clock for LOGIN-DELAY and retention; nil means time.Now.
	Now func() time.Time
}

// Implementation is announced in CAPA (RFC 2449 6.9).
const Implementation = "Posta"

// Server is one POP3 listener's protocol server. It implements
// internal/server's Protocol: Serve, Shutdown, Close.
type Server struct {
	o           Options
	lim         Limits
	log         *slog.Logger
	now         func() time.Time
	implicitTLS bool
	tlsConfig   *tls.Config // nil without TLS

	// ctx is the parent of every connection's context, and the context of
	// the store changes a session makes when it ends (so a client that
	// sends QUIT and hangs up at once still gets its deletions): cancelled
	// only when sessions are cut.
	ctx    context.Context
	cancel context.CancelFunc
	// conns runs the accept loops and holds the open connections; its
	// Stopping is done when Shutdown or Close begins: waits that only slow
	// a client (the failed-login delay) end then.
	conns *conntrack.Tracker

	nextID atomic.Uint64
	panics atomic.Int64
}

// New builds the server for one listener. It binds nothing: Serve takes the
// listener.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Directory == nil || o.Guard == nil || o.Store == nil || o.Locks == nil {
		return nil, errors.New("pop3server: Config, Directory, Guard, Store and Locks are required")
	}
	l := o.Limits
	if l.MaxLineLength < 0 || l.MaxAuthLineLength < 0 || l.IdleTimeout < 0 || l.WriteTimeout < 0 ||
		l.MaxCommandsBeforeAuth < 0 || l.MaxErrors < 0 {
		return nil, fmt.Errorf("pop3server: negative limit in %+v", l)
	}
	if o.Policy.ExpireDays < 0 || o.Policy.LoginDelay < 0 {
		return nil, fmt.Errorf("pop3server: negative policy value in %+v", o.Policy)
	}
	s := &Server{o: o, lim: l.withDefaults(), log: o.Logger, now: o.Now, implicitTLS: o.Listener.ImplicitTLS}
	if s.lim.MaxAuthLineLength < s.lim.MaxLineLength {
		s.lim.MaxAuthLineLength = s.lim.MaxLineLength
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.TLS != nil {
		// RFC 7301 / tlsconf: ALPN "pop3" (IANA), HTTP clients refused.
		s.tlsConfig = o.TLS.ServerConfig("pop3")
	} else if s.implicitTLS {
		return nil, fmt.Errorf("pop3server: listener %s needs TLS", o.Listener.Name)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = conntrack.New("pop3", s.log)
	// Sessions that run out of time at Shutdown: cancel the store changes
	// they make as they end, then cut their sockets.
	s.conns.OnCut(s.cancel)
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.Serve(l, func(raw net.Conn) conntrack.Conn { return newConn(s, raw) })
}

// Shutdown stops accepting, says goodbye (-ERR [SYS/TEMP]) to idle sessions
// and closes them without the UPDATE state (RFC 1939 6: only QUIT deletes),
// lets busy ones (a command in progress, such as a long RETR) finish their
// command and then says the same, and when ctx is done cuts whatever is left
// and returns ctx's error. Each session writes its \Seen flags before it is
// counted as gone, so the store may be closed once this returns.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.conns.Shutdown(ctx)
	s.cancel()
	s.reportPanics()
	return err
}

// Close cuts every session at once.
func (s *Server) Close() error {
	s.conns.Close()
	s.cancel()
	s.reportPanics()
	return nil
}

func (s *Server) reportPanics() {
	if n := s.panics.Load(); n > 0 {
		s.log.Error("pop3: sessions panicked", "count", n)
	}
}

// Panics is how many commands panicked (each ended its session); tests
// fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Idle is how many sessions wait for a command (tests, diagnostics).
func (s *Server) Idle() int {
	n := 0
	for _, c := range s.conns.Conns() {
		if c.(*conn).Idle() {
			n++
		}
	}
	return n
}
