package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/delivery"
	"posta/internal/directory"
	"posta/internal/files"
	"posta/internal/guard"
	"posta/internal/imapserver"
	"posta/internal/mailauth"
	"posta/internal/mailstore"
	"posta/internal/pop3server"
	"posta/internal/queue"
	"posta/internal/queue/mx"
	"posta/internal/tlsconf"
	"posta/internal/tlsrpt"
)

// Protocol is one protocol server on one listener. Serve blocks until
// Shutdown or Close and then returns nil. Shutdown stops accepting, lets
// sessions finish until ctx is done, then cuts them; Close cuts at once.
type Protocol interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Builder makes the protocol server for one listener.
type Builder func(s *Server, l config.Listener) (Protocol, error)

// Server is a running Posta: shared services plus the bound listeners.
type Server struct {
	Config    *config.Config
	Log       *slog.Logger
	DB        *sql.DB
	unlock    func() // the data directory's lock (database.Lock)
	Directory *directory.Directory
	TLS       *tlsconf.Manager
	Guard     *guard.Guard
	Mail      *mailstore.Store
	Queue     *queue.Queue
	Delivery  *delivery.Delivery
	// Files is the one file store FTP and SFTP share: it holds the
	// accounts' quota counters.
	Files *files.Store

	builders map[string]Builder
	// pop3Locks is shared by the pop3 and pop3s listeners, so a maildrop
	// in use on one port is in use on the other (RFC 2449 8.1.2 IN-USE).
	pop3Locks *pop3server.MaildropLocks
	// imapSessions counts each account's sessions over imap and imaps.
	imapSessions *imapserver.SessionCount

	mu      sync.Mutex
	running []*running
	serveWG sync.WaitGroup

	// The outbound queue's worker: stopped after the sessions (which may
	// still enqueue) and before the stores close.
	queueStop context.CancelFunc
	queueDone chan struct{}
	transport *mx.Transport
	// TLSReports records outbound TLS results and sends the daily reports
	// (RFC 8460); nil when [queue] tls_reports is off or the queue does
	// not run.
	TLSReports  *tlsrpt.Reporter
	reportsDone chan struct{}
	// outbound replaces the MX transport (tests).
	outbound queue.Transport
	// queueClock replaces the queue worker's clock (tests).
	queueClock queue.Clock
}

// WithQueueClock runs the queue's worker on clk instead of the real clock:
// tests move it to reach retries and expiry without waiting.
func WithQueueClock(clk queue.Clock) Option {
	return func(s *Server) { s.queueClock = clk }
}

// WithTransport sends the queue's mail through t instead of to the
// recipients' MX hosts; it also runs the queue when queue.enabled is off.
// Tests use it.
func WithTransport(t queue.Transport) Option {
	return func(s *Server) { s.outbound = t }
}

// localKeys gives the DKIM keys of our own domains, generated on first use
// (domains added before DKIM existed, or through the directory alone), and
// none for others.
type localKeys struct {
	ks  *mailauth.KeyStore
	dir *directory.Directory
}

func (k localKeys) Get(ctx context.Context, domain string) (mailauth.Keys, error) {
	local, err := k.dir.IsLocalDomain(ctx, domain)
	if err != nil {
		return mailauth.Keys{}, err
	}
	if !local {
		return mailauth.Keys{}, mailauth.ErrNoKeys
	}
	return k.ks.Ensure(ctx, domain)
}

type running struct {
	config.Listener
	ln    net.Listener
	proto Protocol
}

// verifier checks SPF, DKIM and DMARC of MX mail through queue.dns_server
// (the system resolver when unset), with our host name as the
// Authentication-Results authserv-id; nil when smtp.check_inbound is off.
func verifier(cfg *config.Config) *mailauth.Verifier {
	if !cfg.SMTP.CheckInbound {
		return nil
	}
	v := &mailauth.Verifier{Hostname: cfg.Hostname}
	if cfg.Queue.DNSServer != "" {
		v.Resolver = dnsServerResolver(cfg.Queue.DNSServer)
	}
	return v
}

// dnsServerResolver is a Go resolver that sends every query to server
// ("host:port"), over UDP or TCP as the resolver chooses, instead of the
// nameservers of /etc/resolv.conf.
func dnsServerResolver(server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithProtocol serves proto's listeners with b, replacing any built-in
// builder; a nil b removes the builder, so the protocol opens no listener.
// Tests use it to run a stand-in protocol.
func WithProtocol(proto string, b Builder) Option {
	return func(s *Server) {
		if b == nil {
			delete(s.builders, proto)
			return
		}
		s.builders[proto] = b
	}
}

// New opens the data directory and the shared services. It binds nothing;
// Start does.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg, Log: log, builders: map[string]Builder{}, pop3Locks: pop3server.NewMaildropLocks(),
		imapSessions: imapserver.NewSessionCount()}
	for k, b := range builders {
		s.builders[k] = b
	}
	for _, o := range opts {
		o(s)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	// One server per data directory: the mail store keeps state in memory
	// that a second writer would make stale.
	if s.unlock, err = database.Lock(dataDir); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if s.DB, err = database.Open(dataDir); err != nil {
		s.unlock()
		return nil, err
	}
	if s.Directory, err = directory.Open(ctx, s.DB); err != nil {
		s.closeStores()
		return nil, err
	}
	if s.Mail, err = mailstore.Open(ctx, s.DB, dataDir, log); err != nil {
		s.closeStores()
		return nil, err
	}
	s.Mail.DeferFlagSync(cfg.Mailstore.FlagSyncDelay.D())
	if s.Queue, err = queue.Open(ctx, s.DB); err != nil {
		s.closeStores()
		return nil, err
	}
	s.Delivery = delivery.New(delivery.Options{
		Directory: s.Directory, Store: s.Mail, Queue: s.Queue, Logger: log,
		// The SMTP server enforces the configured size on what the client
		// sends; delivery's own bound leaves room for the trace headers
		// added on the way (Received, Return-Path).
		MaxSize: int64(cfg.SMTP.Limits.MaxMessageSize) + 64<<10, SenderMustOwn: cfg.SMTP.SenderMustOwn,
		Verifier: verifier(cfg),
	})
	if s.Files, err = files.Open(files.Options{Dir: filepath.Join(dataDir, "files"), AnonymousDir: cfg.FTP.AnonymousDir, Logger: log}); err != nil {
		s.closeStores()
		return nil, err
	}
	s.TLS, err = tlsconf.Load(tlsconf.Options{
		CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
		Dir: filepath.Join(dataDir, "tls"), Hostname: cfg.Hostname, Logger: log,
	})
	if err != nil {
		s.closeStores()
		return nil, err
	}
	g := cfg.Guard
	s.Guard = guard.New(guard.Limits{
		MaxConnsPerIP: g.MaxConnsPerIP, MaxConns: g.MaxConns,
		FailDelay: g.FailDelay.D(), MaxFailDelay: g.MaxFailDelay.D(),
		BanAfter: g.BanAfter, BanWindow: g.BanWindow.D(), BanDuration: g.BanDuration.D(),
		ExemptLoopback: g.ExemptLoopback,
	}, guard.WithLogger(log))
	return s, nil
}

// Start binds every listener that has a protocol server and starts serving.
// If any bind fails, nothing stays open and the error names the port and the
// setting that moves it.
func (s *Server) Start() error {
	var started []*running
	fail := func(err error) error {
		for _, r := range started {
			r.ln.Close()
			r.proto.Close()
		}
		return err
	}
	for _, l := range s.Config.Listeners() {
		b, ok := s.builders[l.Protocol]
		if !ok {
			continue
		}
		addr := s.Config.Addr(l)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(s.bindError(l, err))
		}
		proto, err := b(s, l)
		if err != nil {
			ln.Close()
			return fail(fmt.Errorf("%s: %w", l.Name, err))
		}
		started = append(started, &running{Listener: l, ln: ln, proto: proto})
	}
	s.mu.Lock()
	s.running = started
	s.mu.Unlock()
	if err := s.startQueue(); err != nil {
		return fail(err)
	}
	for _, r := range started {
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			if err := r.proto.Serve(r.ln); err != nil && !errors.Is(err, net.ErrClosed) {
				s.Log.Error("listener stopped", "listener", r.Name, "addr", r.ln.Addr().String(), "err", err)
			}
		}()
		s.Log.Info("listening", "listener", r.Name, "addr", r.ln.Addr().String())
	}
	return nil
}

// bindError turns a failed listen into one line a user can act on.
func (s *Server) bindError(l config.Listener, err error) error {
	port := l.Port + s.Config.PortOffset
	setting := fmt.Sprintf("%s = %d", l.Key, l.Port)
	if s.Config.PortOffset != 0 {
		setting += fmt.Sprintf(" plus port_offset %d", s.Config.PortOffset)
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("cannot listen on port %d for %s (%s): the port is already in use; stop what uses it, or change %s or use --port-offset",
			port, l.Name, setting, l.Key)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("cannot listen on port %d for %s (%s): ports below 1024 need root or CAP_NET_BIND_SERVICE; run with --port-offset 10000 or change %s",
			port, l.Name, setting, l.Key)
	default:
		return fmt.Errorf("cannot listen on port %d for %s (%s): %v; change %s or bind_address",
			port, l.Name, setting, err, l.Key)
	}
}

// Bound describes one open listener.
type Bound struct {
	config.Listener
	Addr net.Addr
}

// Listening returns the open listeners in config order.
func (s *Server) Listening() []Bound {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Bound, 0, len(s.running))
	for _, r := range s.running {
		out = append(out, Bound{Listener: r.Listener, Addr: r.ln.Addr()})
	}
	return out
}

// Addr returns the address of the named listener ("imaps", "smtp", ...) or nil.
func (s *Server) Addr(name string) net.Addr {
	for _, b := range s.Listening() {
		if b.Name == name {
			return b.Addr
		}
	}
	return nil
}

// Shutdown stops every protocol server: each stops accepting and says
// goodbye to idle sessions at once, busy sessions get until ctx is done, and
// then everything left is cut. The database is closed last, after every
// session that could write has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	rs := s.running
	s.running = nil
	s.mu.Unlock()

	// Stop accepting first, whatever state each protocol's Serve is in (it
	// may not even have started): the listeners are ours.
	for _, r := range rs {
		r.ln.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.proto.Shutdown(ctx); err != nil {
				r.proto.Close()
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					errs[i] = fmt.Errorf("%s: %w", r.Name, err)
				} else {
					s.Log.Warn("sessions cut at shutdown deadline", "listener", r.Name)
				}
			}
		}()
	}
	wg.Wait()
	s.serveWG.Wait()
	s.stopQueue()
	if err := s.closeStores(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startQueue runs the outbound queue's worker: MX delivery through
// internal/queue/mx, DKIM signing with the domain's keys, DSNs delivered
// like any other mail with a null sender.
func (s *Server) startQueue() error {
	q := s.Config.Queue
	if !q.Enabled && s.outbound == nil {
		return nil
	}
	keys, err := mailauth.Open(context.Background(), s.DB)
	if err != nil {
		return fmt.Errorf("queue: DKIM keys: %w", err)
	}
	signer := mailauth.NewSigner(localKeys{keys, s.Directory})
	var resolver mx.Resolver = mx.NetResolver{}
	if q.DNSServer != "" {
		resolver = &mx.DNSResolver{Server: q.DNSServer}
	}
	if q.TLSReports {
		if s.TLSReports, err = s.openTLSReports(resolver); err != nil {
			return err
		}
	}
	transport := s.outbound
	if transport == nil {
		mo := mx.Options{Hostname: s.Config.Hostname, Port: q.RemotePort, Logger: s.Log.With("component", "mx"), Resolver: resolver}
		if s.TLSReports != nil {
			mo.TLSReport = s.TLSReports.Record
		}
		s.transport = mx.New(mo)
		transport = s.transport
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.queueStop, s.queueDone = cancel, make(chan struct{})
	if s.TLSReports != nil {
		s.reportsDone = make(chan struct{})
		go func() {
			defer close(s.reportsDone)
			if err := s.TLSReports.Run(ctx); err != nil {
				s.Log.Warn("tls reports: last results not saved", "err", err)
			}
		}()
	}
	opts := queue.RunOptions{
		Transport: transport,
		Blobs:     s.Mail.Blobs(),
		Clock:     s.queueClock,
		Hostname:  s.Config.Hostname,
		Logger:    s.Log.With("component", "queue"),
		MaxAge:    q.MaxAge.D(), DelayNotice: q.DelayNotice.D(), Concurrency: q.Workers,
		Sign: func(ctx context.Context, domain string, body io.Reader) ([]byte, error) {
			h, err := signer.Sign(ctx, domain, body)
			if errors.Is(err, mailauth.ErrNoKeys) {
				return nil, nil // not one of our domains (a forwarded sender): unsigned
			}
			return h, err
		},
		Bounce: func(ctx context.Context, dsn []byte, to string, requireTLS bool) error {
			// RFC 3461 / RFC 5321 6.1: a DSN goes out with a null sender,
			// to a local mailbox or, for a forwarded sender, back out
			// (RFC 8689 5: with REQUIRETLS when the message had it).
			env := &delivery.Envelope{Recipients: []delivery.Recipient{{Address: to}}, Account: "MAILER-DAEMON",
				Auth: true, Listener: "queue", ReceivedAt: time.Now(), Size: int64(len(dsn)), RequireTLS: requireTLS}
			return s.Delivery.Deliver(ctx, env, bytes.NewReader(dsn))
		},
	}
	go func() {
		defer close(s.queueDone)
		if err := s.Queue.Run(ctx, opts); err != nil {
			s.Log.Error("queue stopped", "err", err)
		}
	}()
	return nil
}

func (s *Server) stopQueue() {
	if s.queueStop == nil {
		return
	}
	s.queueStop()
	<-s.queueDone
	if s.reportsDone != nil {
		<-s.reportsDone
	}
	if s.transport != nil {
		s.transport.Close()
	}
	s.queueStop = nil
}

// closeStores flushes the mail store's writer (its last group commit), then
// closes the database.
func (s *Server) closeStores() error {
	var errs []error
	if s.Mail != nil {
		if err := s.Mail.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mail store: %w", err))
		}
	}
	if err := s.DB.Close(); err != nil {
		errs = append(errs, fmt.Errorf("database: %w", err))
	}
	s.unlock()
	return errors.Join(errs...)
}

// Close cuts every session at once and closes the database: for a Server
// whose Start failed, or tests.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// openTLSReports sets up SMTP TLS Reporting: reports are mailed from
// postmaster@ the reporting domain through Delivery (to the queue, which
// DKIM-signs them as RFC 8460 3 requires).
func (s *Server) openTLSReports(resolver mx.Resolver) (*tlsrpt.Reporter, error) {
	return tlsrpt.Open(context.Background(), tlsrpt.Options{
		DB:        s.DB,
		LookupTXT: resolver.LookupTXT,
		Hostname:  s.Config.Hostname,
		Submitter: s.reportingDomain,
		Logger:    s.Log.With("component", "tlsrpt"),
		Mail: func(ctx context.Context, from, to string, msg []byte) error {
			env := &delivery.Envelope{MailFrom: from, Recipients: []delivery.Recipient{{Address: to}}, Account: "MAILER-DAEMON",
				Auth: true, Listener: "tlsrpt", ReceivedAt: time.Now(), Size: int64(len(msg))}
			return s.Delivery.Deliver(ctx, env, bytes.NewReader(msg))
		},
	})
}

// reportingDomain is the local domain the host name is in (mx.example.com
// reports as example.com), else the first local domain; "" without any.
func (s *Server) reportingDomain(ctx context.Context) string {
	h := strings.ToLower(strings.TrimSuffix(s.Config.Hostname, "."))
	for h != "" {
		if ok, err := s.Directory.IsLocalDomain(ctx, h); err == nil && ok {
			return h
		}
		_, rest, found := strings.Cut(h, ".")
		if !found {
			break
		}
		h = rest
	}
	ds, err := s.Directory.Domains(ctx)
	if err != nil || len(ds) == 0 {
		return ""
	}
	return ds[0].Name
}
