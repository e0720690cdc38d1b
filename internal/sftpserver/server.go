package sftpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/guard"
)

// ServerVersion is the identification string (RFC 4253 4.2:
// "SSH-protoversion-softwareversion").
const ServerVersion = "SSH-2.0-Posta"

func init() {
	// Advertise only what the handlers implement: hardlink@openssh.com
	// would need a files API that keeps the quota counter right (a second
	// name for a file is counted twice at the next start and subtracted
	// once at a delete). fsync@openssh.com is not known to pkg/sftp's
	// request server; every upload is fsynced at close anyway.
	if err := sftp.SetSFTPExtensions("posix-rename@openssh.com", "statvfs@openssh.com"); err != nil {
		panic(err)
	}
}

// Server is the SFTP protocol server for one listener. It implements
// internal/server's Protocol: Serve, Shutdown, Close.
type Server struct {
	o        Options
	lim      Limits
	log      *slog.Logger
	hostKeys []HostKey

	// stopping is cancelled when Shutdown or Close begins: waits that only
	// slow a client (failed-login delays) end then.
	stopping context.Context
	stop     context.CancelFunc

	nextID atomic.Uint64
	panics atomic.Int64

	mu        sync.Mutex
	closing   bool
	listeners []net.Listener
	conns     map[*conn]struct{}
	changed   chan struct{} // capacity 1: a connection was forgotten (a full channel already says so)
	wg        sync.WaitGroup
}

// New builds the server: it loads the host keys (generating them on first
// run) and prepares the authorized keys table. It binds nothing.
func New(o Options) (*Server, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	keys, err := HostKeys(o.Config.DataDir)
	if err != nil {
		return nil, err
	}
	if err := migrateKeys(context.Background(), o.DB); err != nil {
		return nil, err
	}
	s := &Server{o: o, lim: o.Limits, log: o.Logger, hostKeys: keys,
		conns: map[*conn]struct{}{}, changed: make(chan struct{}, 1)}
	s.stopping, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// HostKeys returns the keys this server presents.
func (s *Server) HostKeys() []HostKey { return s.hostKeys }

// Panics is how many handler panics were recovered; tests fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var delay time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			// Back off on temporary errors (out of file descriptors), as
			// net/http's Server.Serve does, instead of spinning.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("sftp: accept error, retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-s.stopping.Done():
					return nil
				}
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		delay = 0
		c := s.newConn(raw)
		if !s.track(c) {
			c.raw.abort()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.forget(c)
			c.serve()
		}()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting and closes idle connections at once (those in
// the SSH handshake, and sessions with no request unanswered and no file
// open); a connection with a transfer in flight is closed as soon as it
// becomes idle. When ctx is done the rest are cut and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx)
}

// Close cuts every connection at once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.shutdown(ctx)
	return nil
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	lns := s.listeners
	s.mu.Unlock()
	s.stop()
	for _, l := range lns {
		l.Close()
	}
	for _, c := range s.snapshot() {
		c.goodbye()
	}
	err := s.waitConns(ctx)
	if err != nil {
		for _, c := range s.snapshot() {
			c.cut()
		}
		s.waitConns(context.Background())
	}
	s.wg.Wait()
	if n := s.panics.Load(); n > 0 {
		s.log.Error("sftp: handlers panicked", "count", n)
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

// sshConfig is one connection's SSH configuration: its callbacks know the
// connection, for the guard and for cutting a banned peer.
func (s *Server) sshConfig(c *conn) *ssh.ServerConfig {
	algs := ssh.SupportedAlgorithms() // the library's list without the insecure ones
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: algs.KeyExchanges,
			// aes128-gcm@openssh.com and chacha20-poly1305@openssh.com are
			// both in; RFC 4253 7.1: the client's order decides.
			Ciphers: algs.Ciphers,
			MACs:    algs.MACs,
		},
		ServerVersion:     ServerVersion,
		MaxAuthTries:      s.lim.MaxAuthTries,
		PasswordCallback:  c.password,
		PublicKeyCallback: c.publicKey,
	}
	for _, k := range s.hostKeys {
		cfg.AddHostKey(k.signer)
	}
	return cfg
}

func (s *Server) newConn(raw net.Conn) *conn {
	ip := guard.AddrIP(raw.RemoteAddr())
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s: s, ip: ip, start: time.Now(), ctx: ctx, cancel: cancel,
		id:  fmt.Sprintf("%s-%d", s.listenerName(), s.nextID.Add(1)),
		raw: newDeadlineConn(raw, s.lim.IdleTimeout),
	}
	return c
}

func (s *Server) listenerName() string {
	if s.o.Listener.Name != "" {
		return s.o.Listener.Name
	}
	return "sftp"
}
