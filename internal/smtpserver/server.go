package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"posta/internal/config"
	"posta/internal/delivery"
	"posta/internal/guard"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

// Deliverer is what the server needs from internal/delivery (declared here,
// on the consumer side; delivery implements it). Errors are mapped to
// replies by replyFor: the delivery.Err* sentinels get their codes, anything
// else is our failure and answered 451 4.3.0 without its text.
type Deliverer interface {
	// CheckSender runs at MAIL FROM for authenticated sessions
	// (env.Account != "") when config SMTP.SenderMustOwn is set:
	// delivery.ErrSenderNotOwned -> 550 5.7.1.
	CheckSender(ctx context.Context, env *delivery.Envelope) error
	// CheckRecipient runs at RCPT TO. ErrNoSuchUser 550 5.1.1,
	// ErrRelayDenied 550 5.7.1, ErrBadAddress 553 5.1.3, ErrMailboxFull
	// 452 4.2.2, ErrQuotaExceeded 552 5.2.2.
	CheckRecipient(ctx context.Context, env *delivery.Envelope, rcpt delivery.Recipient) error
	// Deliver stores the message durably for every recipient and returns
	// only when it is durable; then the server answers 250. body is the
	// complete message as it will be stored, Received header included (RFC
	// 5321 4.4). Deliver must read body to io.EOF before storing anything:
	// a read error (bare LF, size limit, client gone) means the message is
	// refused, and Deliver must return an error without storing it.
	// ErrMessageTooBig -> 552 5.3.4 and ErrDMARCReject -> 550 5.7.1 (its
	// DMARCRejectError's reason as the text) besides the errors above.
	Deliver(ctx context.Context, env *delivery.Envelope, body io.Reader) error
}

// Options are what New needs. Config, Guard, Deliverer and Directory are
// required; TLS is required for implicit TLS and for AUTH without
// Config.AllowPlaintextAuth.
type Options struct {
	Config    *config.Config
	Listener  config.Listener // Name "smtp" (MX), "submission" or "submissions"
	Directory sasl.Credentials
	Guard     *guard.Guard
	TLS       *tlsconf.Manager
	Deliverer Deliverer
	// Logger gets one line per session event; connection ids start with the
	// listener name, and the caller may add attributes (internal/server adds
	// "listener").
	Logger *slog.Logger
	// Now stamps Received headers and envelopes; nil means time.Now.
	Now func() time.Time
	// LookupAddr finds the peer's reverse DNS name for the Received header;
	// nil means net.DefaultResolver.LookupAddr.
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
}

// rdnsTimeout bounds the reverse lookup of a peer (started at accept; MAIL
// waits for it at most this long after connect).
const rdnsTimeout = 5 * time.Second

// Server is one SMTP listener's protocol server. It implements
// internal/server's Protocol: Serve, Shutdown, Close.
type Server struct {
	o           Options
	lim         config.SMTPLimits
	log         *slog.Logger
	now         func() time.Time
	lookupAddr  func(ctx context.Context, addr string) ([]string, error)
	submission  bool // AUTH required before MAIL (RFC 6409 4.3, RFC 4954 6)
	implicitTLS bool
	tlsConfig   *tls.Config // nil without TLS
	smtp        *smtp.Server

	ctx    context.Context // parent of every connection's context
	cancel context.CancelFunc
	// stopping is cancelled when Shutdown or Close begins: waits that only
	// slow a client (the failed-login delay) end then.
	stopping context.Context
	stop     context.CancelFunc

	nextID atomic.Uint64
	panics atomic.Int64

	mu        sync.Mutex
	closing   bool
	listeners []*listener
	conns     map[*conn]struct{}
	changed   chan struct{} // capacity 1: a connection was forgotten (wakes Shutdown; a full channel already says so)
	serving   sync.WaitGroup
	bg        sync.WaitGroup // acceptors, implicit-TLS handshakes, refusals, reverse lookups
	finish    sync.Once
}

// New builds the server for one listener. It binds nothing: Serve takes the
// listener.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Deliverer == nil || o.Guard == nil || o.Directory == nil {
		return nil, errors.New("smtpserver: Config, Deliverer, Guard and Directory are required")
	}
	s := &Server{o: o, lim: o.Config.SMTP.Limits, log: o.Logger, now: o.Now, lookupAddr: o.LookupAddr}
	switch o.Listener.Name {
	case "smtp":
	case "submission", "submissions":
		s.submission = true
	default:
		return nil, fmt.Errorf("smtpserver: unknown listener %q", o.Listener.Name)
	}
	s.implicitTLS = o.Listener.ImplicitTLS
	// config.SMTPLimits: zero never means unlimited (go-smtp would take it so).
	l := s.lim
	if l.MaxMessageSize <= 0 || l.MaxRecipients <= 0 || l.MaxLineLength <= 0 || l.CommandTimeout <= 0 ||
		l.DataTimeout <= 0 || l.MaxErrors <= 0 {
		return nil, fmt.Errorf("smtpserver: every smtp.limits value must be positive: %+v", l)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lookupAddr == nil {
		s.lookupAddr = net.DefaultResolver.LookupAddr
	}
	if o.TLS != nil {
		s.tlsConfig = s.newTLSConfig(o.TLS)
	} else if s.implicitTLS {
		return nil, fmt.Errorf("smtpserver: listener %s needs TLS", o.Listener.Name)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.conns = map[*conn]struct{}{}
	s.changed = make(chan struct{}, 1)

	srv := smtp.NewServer(backend{s})
	srv.Domain = o.Config.Hostname
	// go-smtp's limits default to unlimited; every one is set from config.
	srv.MaxMessageBytes = int64(l.MaxMessageSize) // SIZE advertised and checked at MAIL and on data (RFC 1870)
	srv.MaxRecipients = l.MaxRecipients           // 452 4.5.3 past it (RFC 5321 4.5.3.1.10)
	srv.MaxLineLength = l.MaxLineLength           // RFC 5321 4.5.3.1.4, 4.5.3.1.6
	srv.ReadTimeout = l.CommandTimeout.D()        // RFC 5321 4.5.3.2.7; the data phase gets DataTimeout (enterData)
	srv.WriteTimeout = l.CommandTimeout.D()
	// go-smtp would refuse AUTH without TLS with its own 523 reply; the
	// session decides instead (AuthMechanisms, Auth), with RFC 4954's codes.
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true // RFC 6531
	srv.EnableDSN = true      // RFC 3461
	// RFC 8689 4.1: go-smtp lists REQUIRETLS in EHLO only under TLS; mail
	// refuses the parameter on a session without TLS.
	srv.EnableREQUIRETLS = true
	srv.TLSConfig = s.tlsConfig
	srv.ErrorLog = errorLog{s}
	s.smtp = srv
	return s, nil
}

// newTLSConfig is this listener's TLS config (one per listener, tlsconf
// says, for session tickets), with a ClientHello hook telling the
// connection that its plaintext side is finished.
func (s *Server) newTLSConfig(m *tlsconf.Manager) *tls.Config {
	cfg := m.ServerConfig()
	prev := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if c, ok := h.Conn.(*conn); ok {
			c.tlsStarting()
		}
		if prev != nil {
			return prev(h)
		}
		return nil, nil
	}
	return cfg
}

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	ln := &listener{s: s, inner: l, conns: make(chan net.Conn), done: make(chan struct{}), failed: make(chan struct{})}
	s.listeners = append(s.listeners, ln)
	s.serving.Add(1)
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	go func() {
		defer s.bg.Done()
		ln.acceptLoop()
	}()
	err := s.smtp.Serve(ln)
	ln.Close()
	if s.isClosing() || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting, says 421 4.3.2 to idle sessions and closes them,
// lets busy ones (a message being received or stored) finish and then says
// the same, and when ctx is done cuts whatever is left and returns ctx's
// error. go-smtp's own Shutdown only waits for sessions to end by
// themselves, which an idle client may never do.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, true)
}

// Close cuts every session at once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.shutdown(ctx, false)
	return nil
}

func (s *Server) shutdown(ctx context.Context, goodbye bool) error {
	s.mu.Lock()
	s.closing = true
	lns := s.listeners
	s.mu.Unlock()
	s.stop()
	for _, ln := range lns {
		ln.Close()
	}
	if goodbye {
		for _, c := range s.snapshot() {
			c.goodbye(replyShutdown)
		}
	}
	err := s.waitConns(ctx)
	if err != nil {
		// Busy sessions ran out of time: cut them. A blocked Read sees no
		// context, a closed socket it does.
		for _, c := range s.snapshot() {
			c.Close()
		}
		s.waitConns(context.Background())
	}
	s.finish.Do(func() {
		// No acceptor can hand go-smtp a connection any more, so its
		// WaitGroup is safe to wait on: this returns when its session
		// goroutines have all returned.
		s.serving.Wait()
		s.smtp.Shutdown(context.Background())
		s.cancel()
		s.bg.Wait()
	})
	if n := s.panics.Load(); n > 0 {
		s.log.Error("smtp: sessions panicked", "count", n)
	}
	return err
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// waitConns returns when no connection is open, or ctx's error.
func (s *Server) waitConns(ctx context.Context) error {
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.changed:
		}
	}
}

// track registers a new connection; false if the server is closing.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Panics is how many sessions go-smtp recovered from a panic in; tests
// fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// listener feeds go-smtp's accept loop with connections that are admitted
// by the guard and, on an implicit-TLS listener, already past the TLS
// handshake, so that no session ever starts with its TLS state unknown and a
// slow handshake never holds the accept loop.
type listener struct {
	s      *Server
	inner  net.Listener
	conns  chan net.Conn // unbuffered: handed over only when go-smtp asks
	done   chan struct{}
	once   sync.Once
	failed chan struct{}
	err    error // set before failed is closed
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.failed:
		return nil, l.err
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.inner.Close()
	})
	return nil
}

func (l *listener) Addr() net.Addr { return l.inner.Addr() }

func (l *listener) acceptLoop() {
	var delay time.Duration
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			// Back off on temporary errors (out of file descriptors) as
			// net/http's Server.Serve does, instead of spinning.
			if isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.s.log.Warn("smtp: accept error, retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.err = err
			close(l.failed)
			return
		}
		delay = 0
		l.s.accepted(l, raw)
	}
}

// isTemporary reports an accept error worth retrying.
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// hand gives a connection to go-smtp, or closes it if the listener closed.
func (l *listener) hand(nc net.Conn) {
	select {
	case l.conns <- nc:
	case <-l.done:
		nc.Close()
	}
}

// accepted admits or refuses one new connection.
func (s *Server) accepted(l *listener, raw net.Conn) {
	ip := guard.AddrIP(raw.RemoteAddr())
	c := newConn(s, raw, ip)
	if !s.track(c) {
		raw.Close()
		c.cancel()
		return
	}
	release, err := s.o.Guard.Admit(ip)
	if err != nil {
		c.mu.Lock()
		c.phase = phaseRefused
		c.mu.Unlock()
		s.log.Info("smtp refused", "conn", c.id, "ip", ip.String(), "reason", err.Error())
		reply := replyTooManyConns
		if errors.Is(err, guard.ErrBanned) {
			reply = replyBanned
		}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			c.refuse(reply)
		}()
		return
	}
	c.release = release
	s.log.Info("smtp connect", "conn", c.id, "ip", ip.String())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		c.lookupHost()
	}()
	if !s.implicitTLS {
		c.mu.Lock()
		c.phase, c.top = phaseCommand, c
		c.mu.Unlock()
		l.hand(c)
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		// RFC 8314 3.3: on an implicit-TLS port the handshake comes first.
		tc := tls.Server(c, s.tlsConfig)
		c.Conn.SetDeadline(time.Now().Add(s.lim.CommandTimeout.D()))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			s.log.Info("smtp tls handshake failed", "conn", c.id, "ip", ip.String(), "err", err.Error())
			c.Close()
			return
		}
		c.Conn.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		s.log.Info("smtp tls", "conn", c.id, "ip", ip.String(),
			"tls", strings.ReplaceAll(tls.VersionName(st.Version), " ", "")+" "+tls.CipherSuiteName(st.CipherSuite))
		c.mu.Lock()
		c.phase, c.top = phaseCommand, tc
		c.mu.Unlock()
		l.hand(tc)
	}()
}

// refuse answers a connection the guard did not admit (RFC 5321 3.1: a
// server may answer the connection with 421 and close).
func (c *conn) refuse(r *smtp.SMTPError) {
	c.Conn.SetDeadline(time.Now().Add(min(hangupWriteTimeout, c.s.lim.CommandTimeout.D())))
	var w net.Conn = c
	if c.s.implicitTLS {
		tc := tls.Server(c, c.s.tlsConfig)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.Close()
			return
		}
		w = tc
	}
	var b strings.Builder
	fmt.Fprintf(&b, "421 %s %s %s\r\n", enhanced(r.EnhancedCode), c.s.o.Config.Hostname, r.Message)
	io.WriteString(w, b.String())
	w.Close()
	c.Close()
}

// errorLog receives go-smtp's internal messages: recovered panics (counted,
// so tests can fail on them) and connection errors.
type errorLog struct{ s *Server }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(fmt.Sprintln(v...)) }

func (l errorLog) print(msg string) {
	if strings.HasPrefix(msg, "panic") {
		l.s.panics.Add(1)
		l.s.log.Error("smtp: session panicked", "detail", msg)
		return
	}
	l.s.log.Debug("smtp: session error", "detail", strings.TrimSpace(msg))
}
