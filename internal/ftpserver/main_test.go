package ftpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/files"
	"posta/internal/guard"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	alice = "alice@example.test"
	bob   = "bob@example.test"
	// ioTimeout bounds every client read and write, so a broken server
	// fails a test instead of hanging it.
	ioTimeout = 20 * time.Second
)

var passwords = map[string]string{alice: "alice-password", bob: "bob-password"}

// memDir is the directory's contract (canonical address, wrapped
// ErrInvalidCredentials, Account) without argon2id, which is slow under
// -race; the e2e tests use the real one.
type memDir struct {
	mu       sync.Mutex
	accounts map[string]directory.Account
}

func newMemDir() *memDir {
	d := &memDir{accounts: map[string]directory.Account{}}
	for a := range passwords {
		d.accounts[a] = directory.Account{Address: a, Domain: "example.test"}
	}
	return d
}

func (d *memDir) VerifyPassword(_ context.Context, user, pw string) (string, error) {
	u := strings.ToLower(user)
	if p, ok := passwords[u]; ok && p == pw {
		return u, nil
	}
	return "", fmt.Errorf("memdir: %w", sasl.ErrInvalidCredentials)
}

func (d *memDir) Account(_ context.Context, a string) (directory.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	acc, ok := d.accounts[a]
	if !ok {
		return acc, fmt.Errorf("memdir: no account %s", a)
	}
	return acc, nil
}

func (d *memDir) set(a string, f func(*directory.Account)) {
	d.mu.Lock()
	acc := d.accounts[a]
	f(&acc)
	d.accounts[a] = acc
	d.mu.Unlock()
}

type harness struct {
	t      *testing.T
	srv    map[string]*Server
	addr   map[string]string
	store  *files.Store
	root   string // <data>/files
	anon   string
	guard  *guard.Guard
	tlsm   *tlsconf.Manager
	dir    *memDir
	opts   Options
	logBuf *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type option func(*harness)

func withOptions(f func(*Options)) option { return func(h *harness) { f(&h.opts) } }

func withGuard(l guard.Limits) option {
	return func(h *harness) { h.guard = guard.New(l) }
}

// start runs an "ftp" (explicit TLS) and an "ftps" (implicit) listener on
// loopback ports over a fresh file store, like internal/server would.
func start(t *testing.T, opts ...option) *harness {
	t.Helper()
	data := t.TempDir()
	h := &harness{t: t, srv: map[string]*Server{}, addr: map[string]string{}, dir: newMemDir(),
		root: filepath.Join(data, "files"), anon: filepath.Join(data, "pub"), logBuf: &syncBuf{}}
	os.MkdirAll(h.anon, 0o755)
	os.WriteFile(filepath.Join(h.anon, "welcome.txt"), []byte("hello anonymous\n"), 0o644)
	h.guard = guard.New(guard.Limits{FailDelay: time.Millisecond, MaxFailDelay: time.Millisecond})
	var err error
	h.tlsm, err = tlsconf.Load(tlsconf.Options{Dir: filepath.Join(data, "tls"), Hostname: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	h.store, err = files.Open(files.Options{Dir: h.root, AnonymousDir: h.anon})
	if err != nil {
		t.Fatal(err)
	}
	h.opts = Options{Hostname: "ftp.example.test", Limits: DefaultLimits(), Anonymous: true}
	for _, o := range opts {
		o(h)
	}
	var log *slog.Logger
	if os.Getenv("POSTA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.NewTextHandler(h.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, l := range []config.Listener{
		{Name: "ftp", Protocol: "ftp", Key: "ftp.port", Port: 21},
		{Name: "ftps", Protocol: "ftp", Key: "ftp.tls_port", Port: 990, ImplicitTLS: true},
	} {
		o := h.opts
		o.Listener, o.Directory, o.Files, o.Guard, o.TLS, o.Logger = l, h.dir, h.store, h.guard, h.tlsm, log
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h.srv[l.Name], h.addr[l.Name] = s, ln.Addr().String()
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", l.Name, err)
			}
			if err := <-done; err != nil {
				t.Errorf("serve %s: %v", l.Name, err)
			}
			if n := s.Panics(); n > 0 {
				t.Errorf("%s: %d commands panicked", l.Name, n)
			}
		})
	}
	return h
}

// clientTLS trusts the harness certificate; every client config has a
// session cache, as real FTPS clients do.
func (h *harness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.tlsm.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}
}

// file is a path in an account's tree on disk.
func (h *harness) file(account, p string) string { return filepath.Join(h.root, account, p) }

type client struct {
	t    *testing.T
	h    *harness
	nc   net.Conn
	tp   *textproto.Conn
	cfg  *tls.Config // non-nil once TLS is on
	dcfg *tls.Config // for data connections (defaults to cfg)
}

type resp struct {
	code int
	msg  string
}

func (r resp) is(t *testing.T, code int, contains ...string) resp {
	t.Helper()
	if r.code != code {
		t.Fatalf("reply %d %q, want %d", r.code, r.msg, code)
	}
	for _, c := range contains {
		if !strings.Contains(r.msg, c) {
			t.Fatalf("reply %d %q lacks %q", r.code, r.msg, c)
		}
	}
	return r
}

func (h *harness) dial(name string) *client {
	h.t.Helper()
	nc, err := net.Dial("tcp", h.addr[name])
	if err != nil {
		h.t.Fatal(err)
	}
	return h.wrap(nc, name)
}

func (h *harness) wrap(nc net.Conn, name string) *client {
	h.t.Helper()
	h.t.Cleanup(func() { nc.Close() })
	c := &client{t: h.t, h: h, nc: nc}
	if name == "ftps" {
		c.cfg = h.clientTLS()
		tc := tls.Client(nc, c.cfg)
		c.nc = tc
	}
	c.nc.SetDeadline(time.Now().Add(ioTimeout))
	c.tp = textproto.NewConn(c.nc)
	c.read().is(h.t, 220)
	return c
}

func (c *client) read() resp {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return resp{code, msg}
}

func (c *client) send(line string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *client) cmd(format string, a ...any) resp {
	c.t.Helper()
	c.send(fmt.Sprintf(format, a...))
	return c.read()
}

// closed reports whether the server closes the control connection (after
// any replies still on their way).
func (c *client) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		if _, err := c.tp.ReadLine(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

func (c *client) login(user string) {
	c.t.Helper()
	c.cmd("USER %s", user).is(c.t, 331)
	c.cmd("PASS %s", passwords[user]).is(c.t, 230)
}

// startTLS runs AUTH TLS and PBSZ/PROT P.
func (c *client) startTLS() {
	c.t.Helper()
	c.cmd("AUTH TLS").is(c.t, 234)
	c.cfg = c.h.clientTLS()
	tc := tls.Client(c.nc, c.cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.nc = tc
	c.nc.SetDeadline(time.Now().Add(ioTimeout))
	c.tp = textproto.NewConn(tc)
}

func (c *client) protP() {
	c.t.Helper()
	c.cmd("PBSZ 0").is(c.t, 200)
	c.cmd("PROT P").is(c.t, 200)
}

// epsv asks for a passive port and returns the address to connect to.
func (c *client) epsv() string {
	c.t.Helper()
	r := c.cmd("EPSV").is(c.t, 229)
	i := strings.Index(r.msg, "(|||")
	j := strings.LastIndex(r.msg, "|)")
	if i < 0 || j < i {
		c.t.Fatalf("EPSV reply %q", r.msg)
	}
	host, _, _ := net.SplitHostPort(c.h.addr["ftp"])
	return net.JoinHostPort(host, r.msg[i+4:j])
}

func (c *client) pasv() string {
	c.t.Helper()
	r := c.cmd("PASV").is(c.t, 227)
	i, j := strings.Index(r.msg, "("), strings.Index(r.msg, ")")
	ap, err := ParsePORT(r.msg[i+1 : j])
	if err != nil {
		c.t.Fatalf("PASV reply %q: %v", r.msg, err)
	}
	return ap.String()
}

// dataDial connects to a passive address, with TLS when prot is set.
func (c *client) dataDial(addr string, prot bool) net.Conn {
	c.t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(ioTimeout))
	if !prot {
		return nc
	}
	cfg := c.dcfg
	if cfg == nil {
		cfg = c.cfg
	}
	return tls.Client(nc, cfg)
}

// retr downloads p over a new passive connection; the reply to RETR and
// the final reply are checked.
func (c *client) retr(p string, prot bool) []byte {
	c.t.Helper()
	addr := c.epsv()
	c.send("RETR " + p)
	dc := c.dataDial(addr, prot)
	c.read().is(c.t, 150)
	b, err := io.ReadAll(dc)
	if err != nil {
		c.t.Fatalf("RETR %s data: %v", p, err)
	}
	dc.Close()
	c.read().is(c.t, 226)
	return b
}

func (c *client) stor(verb, p string, data []byte, prot bool) resp {
	c.t.Helper()
	addr := c.epsv()
	c.send(verb + " " + p)
	dc := c.dataDial(addr, prot)
	r := c.read()
	if r.code != 150 {
		return r
	}
	if _, err := dc.Write(data); err != nil {
		c.t.Fatalf("%s data: %v", verb, err)
	}
	dc.Close()
	return c.read()
}

func (c *client) list(verb, arg string, prot bool) string {
	c.t.Helper()
	addr := c.epsv()
	if arg != "" {
		verb += " " + arg
	}
	c.send(verb)
	dc := c.dataDial(addr, prot)
	c.read().is(c.t, 150)
	b, err := io.ReadAll(dc)
	if err != nil {
		c.t.Fatal(err)
	}
	c.read().is(c.t, 226)
	return string(b)
}

// activeListener listens for an active-mode data connection and returns
// the PORT argument for it.
func (c *client) activeListener() (net.Listener, string) {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { ln.Close() })
	ap := netip.MustParseAddrPort(ln.Addr().String())
	return ln, FormatPASV(ap)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func readAllString(t *testing.T, r io.Reader) string {
	b, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func atoi(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

type directoryAccount = directory.Account

func guardLimits(perIP, banAfter int) guard.Limits {
	return guard.Limits{MaxConnsPerIP: perIP, BanAfter: banAfter, FailDelay: time.Millisecond, MaxFailDelay: time.Millisecond}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func newTP(c net.Conn) *textproto.Conn { return textproto.NewConn(c) }
