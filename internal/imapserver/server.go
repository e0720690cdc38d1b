package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"posta/internal/config"
	"posta/internal/conntrack"
	"posta/internal/directory"
	"posta/internal/guard"
	"posta/internal/imapwire"
	"posta/internal/mailstore"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

// Limits bound every IMAP session. A zero field takes its value from
// DefaultLimits: zero never means unlimited.
type Limits struct {
	// Wire are the grammar's limits: line, command, literal and APPEND
	// sizes (MaxAppend is announced as APPENDLIMIT, RFC 7889).
	Wire imapwire.Limits
	// IdleTimeout is how long an authenticated session may wait between
	// commands or in IDLE (RFC 9051 5.4: at least 30 minutes).
	IdleTimeout time.Duration
	// LoginTimeout is the same before login.
	LoginTimeout time.Duration
	// WriteTimeout: a client that reads nothing of a response for this long
	// is cut (each write that makes progress starts it again).
	WriteTimeout time.Duration
	// MaxCommandsBeforeAuth bounds what an unauthenticated peer may make the
	// server do.
	MaxCommandsBeforeAuth int
	// MaxErrors is how many BAD answers in a row end a session.
	MaxErrors int
	// MaxSessionsPerUser caps one account's concurrent sessions.
	MaxSessionsPerUser int
}

// DefaultLimits are the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		Wire:                  imapwire.DefaultLimits(),
		IdleTimeout:           30 * time.Minute,
		LoginTimeout:          time.Minute,
		WriteTimeout:          5 * time.Minute,
		MaxCommandsBeforeAuth: 30,
		MaxErrors:             20,
		MaxSessionsPerUser:    50,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	l.Wire = l.Wire.WithDefaults()
	for _, p := range []struct{ v, def *time.Duration }{
		{&l.IdleTimeout, &d.IdleTimeout}, {&l.LoginTimeout, &d.LoginTimeout}, {&l.WriteTimeout, &d.WriteTimeout},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	for _, p := range []struct{ v, def *int }{
		{&l.MaxCommandsBeforeAuth, &d.MaxCommandsBeforeAuth}, {&l.MaxErrors, &d.MaxErrors},
		{&l.MaxSessionsPerUser, &d.MaxSessionsPerUser},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return l
}

// Store is what sessions need of the mail store; *mailstore.Store
// implements it.
type Store interface {
	msgStore
	EnsureAccount(ctx context.Context, account string) error
	Mailbox(ctx context.Context, account, name string) (mailstore.Mailbox, error)
	MailboxByID(ctx context.Context, id int64) (mailstore.Mailbox, error)
	Mailboxes(ctx context.Context, account string) ([]mailstore.Mailbox, error)
	CreateMailbox(ctx context.Context, account, name, specialUse string) (mailstore.Mailbox, error)
	DeleteMailbox(ctx context.Context, account, name string) error
	RenameMailbox(ctx context.Context, account, from, to string) error
	SetSubscribed(ctx context.Context, account, name string, on bool) error
	Subscriptions(ctx context.Context, account string) ([]string, error)
	Messages(ctx context.Context, mailbox int64) ([]mailstore.MessageMeta, error)
	Metas(ctx context.Context, mailbox int64, uids []uint32) ([]mailstore.MessageMeta, error)
	MessageRange(ctx context.Context, mailbox int64, first, last uint32) ([]mailstore.Message, error)
	Changes(ctx context.Context, mailbox int64, since uint64) ([]mailstore.MessageMeta, []uint32, error)
	Append(ctx context.Context, account, mailbox string, msgs ...mailstore.NewMessage) (mailstore.AppendResult, error)
	SetFlags(ctx context.Context, mailbox int64, uids []uint32, op mailstore.FlagOp, f mailstore.Flags, unchangedSince uint64) ([]mailstore.MessageMeta, []uint32, error)
	Expunge(ctx context.Context, mailbox int64, uids []uint32) ([]uint32, error)
	Copy(ctx context.Context, from int64, uids []uint32, to int64) (mailstore.AppendResult, []uint32, error)
	Move(ctx context.Context, from int64, uids []uint32, to int64) (mailstore.AppendResult, []uint32, error)
	Usage(ctx context.Context, account string) (int64, error)
	Subscribe(account string) *mailstore.Subscription
}

// Spooler readies APPENDed messages for Store.Append and checks quota;
// *delivery.Delivery implements it.
type Spooler interface {
	Spool(r io.Reader, size int64, date time.Time) (mailstore.NewMessage, func(), error)
	CheckQuota(ctx context.Context, account string, size int64) error
}

// Directory checks passwords and knows each account's quota;
// *directory.Directory implements it.
type Directory interface {
	sasl.Credentials
	Account(ctx context.Context, address string) (directory.Account, error)
}

// Options are what New needs. Config, Directory, Guard, Store and Spool are
// required; TLS is required for implicit TLS, for STARTTLS, and for any
// login without Config.AllowPlaintextAuth.
type Options struct {
	Config    *config.Config  // Hostname, AllowPlaintextAuth
	Listener  config.Listener // "imap" (STARTTLS) or "imaps" (implicit TLS)
	Directory Directory
	Guard     *guard.Guard
	TLS       *tlsconf.Manager
	Store     Store
	Spool     Spooler
	Limits    Limits
	Logger    *slog.Logger
	// Sessions counts each account's sessions; shared by every IMAP
	// listener of the process so MaxSessionsPerUser holds across them.
	// nil: a counter of this server's own.
	Sessions *SessionCount
}

// Implementation is announced in the ID response (RFC 2971 3.3).
const Implementation = "Posta"

// Server is one IMAP listener's protocol server. It implements
// internal/server's Protocol: Serve, Shutdown, Close.
type Server struct {
	o           Options
	lim         Limits
	log         *slog.Logger
	implicitTLS bool
	tlsConfig   *tls.Config // nil without TLS
	conns       *conntrack.Tracker
	sessions    *SessionCount

	// ctx is the parent of every connection's context: cancelled only when
	// sessions are cut.
	ctx    context.Context
	cancel context.CancelFunc

	nextID atomic.Uint64
	panics atomic.Int64
}

// New builds the server for one listener. It binds nothing: Serve takes the
// listener.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Directory == nil || o.Guard == nil || o.Store == nil || o.Spool == nil {
		return nil, errors.New("imapserver: Config, Directory, Guard, Store and Spool are required")
	}
	s := &Server{o: o, lim: o.Limits.withDefaults(), log: o.Logger, implicitTLS: o.Listener.ImplicitTLS, sessions: o.Sessions}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.sessions == nil {
		s.sessions = NewSessionCount()
	}
	if o.TLS != nil {
		// RFC 7301 / tlsconf: ALPN "imap" (IANA), HTTP clients refused.
		s.tlsConfig = o.TLS.ServerConfig("imap")
	} else if s.implicitTLS {
		return nil, fmt.Errorf("imapserver: listener %s needs TLS", o.Listener.Name)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = conntrack.New("imap", s.log)
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.Serve(l, func(raw net.Conn) conntrack.Conn { return newConn(s, raw) })
}

// Shutdown stops accepting, says "* BYE" to idle sessions (and to busy ones
// when their command ends), and when ctx is done cuts whatever is left and
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.conns.Shutdown(ctx)
	s.cancel()
	s.reportPanics()
	return err
}

// Close cuts every session at once.
func (s *Server) Close() error {
	s.cancel()
	s.conns.Close()
	s.reportPanics()
	return nil
}

func (s *Server) reportPanics() {
	if n := s.panics.Load(); n > 0 {
		s.log.Error("imap: sessions panicked", "count", n)
	}
}

// Panics is how many commands panicked (each ended its session); tests
// fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Idle is how many sessions wait for a command or sit in IDLE.
func (s *Server) Idle() int {
	n := 0
	for _, c := range s.conns.Conns() {
		if c.(*conn).Idle() {
			n++
		}
	}
	return n
}

// SessionCount counts each account's open sessions.
type SessionCount struct {
	mu sync.Mutex
	n  map[string]int
}

// NewSessionCount makes an empty count.
func NewSessionCount() *SessionCount { return &SessionCount{n: map[string]int{}} }

// acquire adds a session of account unless it already has max; release
// undoes it.
func (c *SessionCount) acquire(account string, max int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[account] >= max {
		return nil, false
	}
	c.n[account]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[account]--; c.n[account] <= 0 {
				delete(c.n, account)
			}
		})
	}, true
}
