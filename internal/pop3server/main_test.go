package pop3server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/guard"
	"posta/internal/mailstore"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testHostname = "mail.example.test"
	// ioTimeout bounds every client read and write in these tests, so a
	// broken server fails a test instead of hanging it.
	ioTimeout = 15 * time.Second
)

var testUsers = map[string]string{
	"alice@example.test": "alice-password",
	"bob@example.test":   "bob password with spaces",
	"carol@example.test": "carol-password", // never received mail
}

// memCreds is an in-memory sasl.Credentials with the directory's contract
// (prepared passwords, SCRAM keys, ErrInvalidCredentials) without argon2id,
// which is slow under -race. The e2e tests use the real directory.
type memCreds struct {
	pw   map[string]string
	keys map[string]sasl.SCRAMKeys
	mu   sync.Mutex
	err  error // when set, every lookup fails with it (directory down)
}

func newMemCreds(t testing.TB) *memCreds {
	t.Helper()
	m := &memCreds{pw: map[string]string{}, keys: map[string]sasl.SCRAMKeys{}}
	for u, p := range testUsers {
		k, err := sasl.SCRAMSHA256Keys(p, []byte("salt-of-"+u), 4096)
		if err != nil {
			t.Fatal(err)
		}
		m.pw[u] = sasl.PreparePassword(p)
		m.keys[u] = k
	}
	return m
}

func (m *memCreds) fail(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

func (m *memCreds) failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *memCreds) VerifyPassword(_ context.Context, username, password string) (string, error) {
	if err := m.failure(); err != nil {
		return "", err
	}
	u := strings.ToLower(username)
	if pw, ok := m.pw[u]; ok && pw == sasl.PreparePassword(password) {
		return u, nil
	}
	return "", fmt.Errorf("memcreds: %w", sasl.ErrInvalidCredentials)
}

func (m *memCreds) SCRAMSHA256(_ context.Context, username string) (string, sasl.SCRAMKeys, error) {
	if err := m.failure(); err != nil {
		return "", sasl.SCRAMKeys{}, err
	}
	u := strings.ToLower(username)
	if k, ok := m.keys[u]; ok {
		return u, k, nil
	}
	return "", sasl.SCRAMKeys{}, fmt.Errorf("memcreds: %w", sasl.ErrInvalidCredentials)
}

// testClock is the clock of the guard and the server: real time plus an
// offset the test moves, and an After that fires at once and records the
// wait, so a test sees the failed-login delay without sleeping.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
	asked  []time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func (c *testClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.asked = append(c.asked, d)
	c.mu.Unlock()
	ch <- time.Now()
	return ch
}

func (c *testClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.asked...)
}

// logBuf collects log output; safe for the server's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness runs the two POP3 listeners on 127.0.0.1:0 over a real mail
// store in a temporary directory.
type harness struct {
	t      testing.TB
	ctx    context.Context
	cfg    *config.Config
	store  *mailstore.Store
	tls    *tlsconf.Manager
	guard  *guard.Guard
	clock  *testClock
	creds  *memCreds
	locks  *MaildropLocks
	log    *logBuf
	srv    map[string]*Server
	addr   map[string]string
	panics int64 // panics the test expects
}

type harnessOpts struct {
	cfg    func(*config.Config)
	limits Limits
	policy Policy
	guard  guard.Limits
	wrap   func(Store) Store
}

type hopt func(*harnessOpts)

func withConfig(f func(*config.Config)) hopt { return func(o *harnessOpts) { o.cfg = f } }
func withLimits(l Limits) hopt               { return func(o *harnessOpts) { o.limits = l } }
func withPolicy(p Policy) hopt               { return func(o *harnessOpts) { o.policy = p } }
func withGuard(l guard.Limits) hopt          { return func(o *harnessOpts) { o.guard = l } }
func withStore(w func(Store) Store) hopt     { return func(o *harnessOpts) { o.wrap = w } }

func start(t testing.TB, opts ...hopt) *harness {
	t.Helper()
	o := harnessOpts{
		guard:  guard.Limits{FailDelay: time.Second, MaxFailDelay: 4 * time.Second},
		limits: Limits{IdleTimeout: ioTimeout, WriteTimeout: ioTimeout},
	}
	for _, f := range opts {
		f(&o)
	}
	cfg := config.Default()
	cfg.Hostname = testHostname
	if o.cfg != nil {
		o.cfg(cfg)
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(ctx, db, dir, nil)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, cfg: cfg, store: st, clock: &testClock{}, creds: newMemCreds(t),
		locks: NewMaildropLocks(), log: &logBuf{}, srv: map[string]*Server{}, addr: map[string]string{}}
	h.tls, err = tlsconf.Load(tlsconf.Options{Dir: t.TempDir(), Hostname: testHostname})
	if err != nil {
		t.Fatal(err)
	}
	h.guard = guard.New(o.guard, guard.WithClock(h.clock))
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var store Store = st
	if o.wrap != nil {
		store = o.wrap(st)
	}
	serveDone := make(chan error, 2)
	for _, l := range []config.Listener{
		{Name: "pop3", Protocol: "pop3"},
		{Name: "pop3s", Protocol: "pop3", ImplicitTLS: true},
	} {
		s, err := New(Options{Config: cfg, Listener: l, Directory: h.creds, Guard: h.guard, TLS: h.tls,
			Store: store, Locks: h.locks, Limits: o.limits, Policy: o.policy, Logger: logger, Now: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h.srv[l.Name] = s
		h.addr[l.Name] = ln.Addr().String()
		go func() { serveDone <- s.Serve(ln) }()
	}
	t.Cleanup(func() {
		for name, s := range h.srv {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("%s: Shutdown: %v", name, err)
			}
			cancel()
		}
		for range h.srv {
			if err := <-serveDone; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
		var panics int64
		for _, s := range h.srv {
			panics += s.Panics()
		}
		if panics != h.panics {
			t.Errorf("%d commands panicked, want %d", panics, h.panics)
		}
		st.Close()
		db.Close()
		if t.Failed() || os.Getenv("POSTA_TEST_LOG") != "" {
			t.Logf("server log:\n%s", h.log.String())
		}
	})
	return h
}

func (h *harness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.tls.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// add appends messages to an account's INBOX and returns their UIDs.
// Bodies over 4 KiB go to a blob file (the *os.File path), others inline.
func (h *harness) add(account string, bodies ...string) []uint32 {
	h.t.Helper()
	if err := h.store.EnsureAccount(h.ctx, account); err != nil {
		h.t.Fatal(err)
	}
	var msgs []mailstore.NewMessage
	for _, b := range bodies {
		m := mailstore.NewMessage{Size: int64(len(b)), InternalDate: time.Now()}
		if len(b) > 4096 {
			w, err := h.store.Blobs().Create()
			if err != nil {
				h.t.Fatal(err)
			}
			if _, err := io.WriteString(w, b); err != nil {
				h.t.Fatal(err)
			}
			dir, err := w.Commit()
			if err != nil {
				h.t.Fatal(err)
			}
			m.Body, m.BlobDir = mailstore.FileBody(w.ID()), dir
		} else {
			m.Inline = []byte(b)
		}
		msgs = append(msgs, m)
	}
	res, err := h.store.Append(h.ctx, account, "INBOX", msgs...)
	if err != nil {
		h.t.Fatal(err)
	}
	return res.UIDs
}

// inbox returns the metadata of an account's INBOX.
func (h *harness) inbox(account string) (mailstore.Mailbox, []mailstore.MessageMeta) {
	h.t.Helper()
	return h.mailbox(account, "INBOX")
}

func (h *harness) mailbox(account, name string) (mailstore.Mailbox, []mailstore.MessageMeta) {
	h.t.Helper()
	mb, err := h.store.Mailbox(h.ctx, account, name)
	if err != nil {
		h.t.Fatal(err)
	}
	ms, err := h.store.Messages(h.ctx, mb.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return mb, ms
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a synchronisation
	}
}

// client is a raw line client: tests see every reply byte for byte.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, nc)
	c.greeting()
	return c
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, nc)
	c.greeting()
	return c
}

func newClient(t testing.TB, nc net.Conn) *client {
	nc.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) greeting() {
	c.t.Helper()
	if g := c.line(); g != "+OK "+testHostname+" Posta POP3 server ready" {
		c.t.Fatalf("greeting %q", g)
	}
}

// line reads one line without its CRLF; it fails the test on a bare LF.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (partial %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command and returns the first reply line.
func (c *client) cmd(format string, args ...any) string {
	c.t.Helper()
	c.write(fmt.Sprintf(format, args...) + "\r\n")
	return c.line()
}

// is sends a command and checks its first reply line exactly.
func (c *client) is(want, format string, args ...any) {
	c.t.Helper()
	if got := c.cmd(format, args...); got != want {
		c.t.Fatalf("%s: got %q, want %q", fmt.Sprintf(format, args...), got, want)
	}
}

// multi reads the rest of a multi-line response, un-stuffed (RFC 1939 3).
func (c *client) multi() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

// raw reads the rest of a multi-line response as sent: every octet up to
// and including the terminating ".\r\n".
func (c *client) raw() []byte {
	c.t.Helper()
	var b []byte
	for {
		l, err := c.r.ReadBytes('\n')
		if err != nil {
			c.t.Fatalf("reading body: %v", err)
		}
		b = append(b, l...)
		if string(l) == ".\r\n" && (len(b) == 3 || b[len(b)-4] == '\n') {
			return b
		}
	}
}

// unstuff is what a client does with a raw multi-line body: drop the
// terminator and one leading dot of each line.
func unstuff(raw []byte) []byte {
	raw = bytes.TrimSuffix(raw, []byte(".\r\n"))
	var out []byte
	for _, l := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		out = append(out, l...)
	}
	return out
}

// closed reports whether the server has closed the connection (after any
// replies already read).
func (c *client) closed() bool {
	c.t.Helper()
	_, err := c.r.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func (c *client) stls(cfg *tls.Config) {
	c.t.Helper()
	c.is("+OK Begin TLS negotiation", "STLS")
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.nc = tc
	c.r = bufio.NewReader(tc)
}

// login logs in with USER/PASS over implicit TLS.
func (h *harness) login(t testing.TB, user string) *client {
	t.Helper()
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.is("+OK Send PASS", "USER %s", user)
	if got := c.cmd("PASS %s", testUsers[user]); !strings.HasPrefix(got, "+OK Logged in") {
		t.Fatalf("PASS: %q", got)
	}
	return c
}
