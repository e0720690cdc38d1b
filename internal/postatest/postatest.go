// Package postatest starts a whole Posta in-process for end-to-end tests:
// every enabled listener on an ephemeral 127.0.0.1 port (WithBindAddress
// for another loopback address), a temporary data directory, a domain with
// users, and a CA pool that trusts the generated certificate. Every protocol's end-to-end tests use it.
package postatest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/server"
	"posta/internal/tlsconf"
)

// Domain is the local domain every Instance has.
const Domain = "example.test"

// Users are the accounts every Instance has, address to password.
var Users = map[string]string{
	"alice@example.test": "alice-password",
	"bob@example.test":   "bob-password",
}

// Instance is a running Posta.
type Instance struct {
	*server.Server
	DataDir string
	// CAs trusts the instance's certificate.
	CAs *x509.CertPool
}

// Option adjusts an Instance before it starts.
type Option func(*options)

type options struct {
	cfg     []func(*config.Config)
	srv     []server.Option
	log     bool
	noStart bool
	noUsers bool
	dataDir string
	bind    string
	domain  string
	inbound bool
	queue   bool
}

// WithConfig changes the configuration before start (ports are ephemeral
// whatever it sets).
func WithConfig(f func(*config.Config)) Option { return func(o *options) { o.cfg = append(o.cfg, f) } }

// WithServerOption passes an option to server.New.
func WithServerOption(so server.Option) Option { return func(o *options) { o.srv = append(o.srv, so) } }

// WithDataDir reuses a data directory, e.g. to restart over the same data.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithBindAddress binds the listeners to ip instead of 127.0.0.1, e.g.
// 127.0.0.2 for a second instance that other instances reach as another
// host.
func WithBindAddress(ip string) Option { return func(o *options) { o.bind = ip } }

// WithDomain creates domain instead of Domain, with the local parts of Users
// (alice, bob) and their passwords; UserAddress gives the addresses.
func WithDomain(domain string) Option { return func(o *options) { o.domain = domain } }

// WithInboundChecks keeps smtp.check_inbound on: SPF, DKIM and DMARC of MX
// mail are checked through queue.dns_server, which the test must point at
// its own DNS server (WithConfig).
func WithInboundChecks() Option { return func(o *options) { o.inbound = true } }

// WithOutboundQueue keeps queue.enabled on: queued mail goes to the
// recipients' MX hosts as found through queue.dns_server (point it at the
// test's DNS server, and queue.remote_port at the other instance).
func WithOutboundQueue() Option { return func(o *options) { o.queue = true } }

// UserAddress returns the address of a user of Users ("alice", "bob") in
// domain, and its password.
func UserAddress(local, domain string) (addr, password string) {
	return local + "@" + domain, Users[local+"@"+Domain]
}

// WithoutUsers skips creating Domain and Users (e.g. on a restart).
func WithoutUsers() Option { return func(o *options) { o.noUsers = true } }

// Start runs a Posta until the test ends. Logs go to the test log when
// POSTA_TEST_LOG is set, so a failing run can be read.
func Start(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	cfg := config.Default()
	cfg.Hostname = "mail.example.test"
	cfg.DataDir = o.dataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	// Failed-login delays would only slow tests that fail logins on purpose;
	// tests of throttling set their own.
	cfg.Guard.FailDelay = config.Duration(time.Millisecond)
	cfg.Guard.MaxFailDelay = config.Duration(10 * time.Millisecond)
	cfg.Shutdown.Grace = config.Duration(5 * time.Second)
	for _, f := range o.cfg {
		f(cfg)
	}
	cfg.BindAddress = "127.0.0.1"
	if o.bind != "" {
		cfg.BindAddress = o.bind
	}
	// No DNS from tests: the machine may have none, and SPF/DKIM/DMARC
	// are tested with their own resolvers in delivery and mailauth (or
	// through the test's own DNS server: WithInboundChecks).
	cfg.SMTP.CheckInbound = o.inbound
	// Nor delivery to other servers: mail for remote domains stays queued
	// where tests can see it (unless WithOutboundQueue).
	cfg.Queue.Enabled = o.queue
	cfg.EphemeralPorts = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("postatest: config: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("POSTA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx := context.Background()
	hostKeys.restore(t, cfg.DataDir)
	s, err := server.New(ctx, cfg, log, o.srv...)
	if err != nil {
		t.Fatalf("postatest: new: %v", err)
	}
	if !o.noUsers {
		domain := Domain
		if o.domain != "" {
			domain = o.domain
		}
		if err := s.Directory.AddDomain(ctx, domain); err != nil {
			s.Close()
			t.Fatalf("postatest: %v", err)
		}
		for addr, pw := range Users {
			addr = strings.TrimSuffix(addr, "@"+Domain) + "@" + domain
			if err := s.Directory.AddAccount(ctx, addr, pw, directoryOptions()); err != nil {
				s.Close()
				t.Fatalf("postatest: %v", err)
			}
		}
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatalf("postatest: start: %v", err)
	}
	hostKeys.save(cfg.DataDir)
	in := &Instance{Server: s, DataDir: cfg.DataDir, CAs: s.TLS.CertPool()}
	t.Cleanup(func() { in.Stop(t) })
	return in
}

// Stop shuts the instance down gracefully (Start registers it as cleanup; a
// second call does nothing).
func (in *Instance) Stop(t testing.TB) {
	t.Helper()
	if in.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Server.Shutdown(ctx); err != nil {
		t.Errorf("postatest: shutdown: %v", err)
	}
	in.Server = nil
}

// Addr returns host:port of a listener ("smtp", "imaps", ...); the test
// fails if it is not listening.
func (in *Instance) Addr(t testing.TB, name string) string {
	t.Helper()
	if in.Server.Addr(name) == nil {
		t.Fatalf("postatest: listener %s is not open", name)
	}
	return in.Server.Addr(name).String()
}

// Port returns the port of a listener.
func (in *Instance) Port(t testing.TB, name string) int {
	t.Helper()
	in.Addr(t, name)
	return in.Server.Addr(name).(*net.TCPAddr).Port
}

// ClientTLS is a client configuration that trusts the instance's certificate
// for the name "localhost".
func (in *Instance) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: in.CAs, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// CertFile is the path of the served certificate in PEM, for clients such as
// curl (--cacert) and Python (cafile).
func (in *Instance) CertFile() string {
	return filepath.Join(in.DataDir, "tls", tlsconf.CertFileName)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func directoryOptions() directory.AccountOptions { return directory.AccountOptions{} }

// hostKeys keeps the first instance's SSH host keys in memory and gives
// them to every later instance of the test process: generating an RSA 3072
// key can take seconds on a busy machine, and nothing is tested by doing it
// again. "ssh" is the directory the SFTP server keeps them in.
var hostKeys keyCache

type keyCache struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (c *keyCache) save(dataDir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files != nil {
		return
	}
	ents, err := os.ReadDir(filepath.Join(dataDir, "ssh"))
	if err != nil || len(ents) == 0 {
		return
	}
	files := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dataDir, "ssh", e.Name()))
		if err != nil {
			return
		}
		files[e.Name()] = b
	}
	c.files = files
}

func (c *keyCache) restore(t testing.TB, dataDir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		return
	}
	dir := filepath.Join(dataDir, "ssh")
	if _, err := os.Stat(dir); err == nil {
		return // a restart over existing data keeps its own keys
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("postatest: %v", err)
	}
	for name, b := range c.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatalf("postatest: %v", err)
		}
	}
}
