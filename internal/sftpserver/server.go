package sftpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/conntrack"
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

	// conns runs the accept loops and holds the open connections; its
	// Stopping is done when Shutdown or Close begins: waits that only slow
	// a client (failed-login delays) end then.
	conns *conntrack.Tracker

	nextID atomic.Uint64
	panics atomic.Int64
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
	s := &Server{o: o, lim: o.Limits, log: o.Logger, hostKeys: keys}
	s.conns = conntrack.New("sftp", s.log)
	return s, nil
}

// HostKeys returns the keys this server presents.
func (s *Server) HostKeys() []HostKey { return s.hostKeys }

// Panics is how many handler panics were recovered; tests fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.Serve(l, func(raw net.Conn) conntrack.Conn { return s.newConn(raw) })
}

// Shutdown stops accepting and closes idle connections at once (those in
// the SSH handshake, and sessions with no request unanswered and no file
// open); a connection with a transfer in flight is closed as soon as it
// becomes idle. When ctx is done the rest are cut and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.conns.Shutdown(ctx)
	s.reportPanics()
	return err
}

// Close cuts every connection at once. Idle ones are first closed as
// Shutdown closes them (the client sees its sessions end), so it is a
// Shutdown whose deadline has already passed.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.conns.Shutdown(ctx)
	s.reportPanics()
	return nil
}

func (s *Server) reportPanics() {
	if n := s.panics.Load(); n > 0 {
		s.log.Error("sftp: handlers panicked", "count", n)
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
