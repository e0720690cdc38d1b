package imapserver

// The package's TestMain (goleak.VerifyTestMain) is in view_test.go; this
// file holds the end-to-end harness every other *_test.go of the package
// that talks to a socket uses.

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/delivery"
	"posta/internal/directory"
	"posta/internal/guard"
	"posta/internal/mailstore"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

const (
	testHostname = "mail.example.test"
	testDomain   = "example.test"
	alice        = "alice@example.test"
	bob          = "bob@example.test"
	carol        = "carol@example.test"
	// ioTimeout bounds every client read and write in these tests, so a
	// broken server fails a test instead of hanging it.
	ioTimeout = 15 * time.Second
)

var testUsers = map[string]string{
	alice: "alice-password",
	bob:   "bob password with spaces",
	carol: "carol-password",
}

// testClock is the guard's clock: real time plus an offset the test moves,
// and an After that fires at once and records the wait, so a failed login's
// delay is seen without sleeping.
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

// memoDir is the real directory with successful password checks
// remembered for the whole test binary: every harness starts from the same
// directory (dirTemplate), so argon2id (~30 ms, far more under -race) is paid
// once per user and password, not once per login. Failures always go to the
// directory, so they behave exactly as in production.
type memoDir struct {
	*directory.Directory
}

var verified sync.Map // [2]string{username, password} -> account

func (m memoDir) VerifyPassword(ctx context.Context, username, password string) (string, error) {
	k := [2]string{username, password}
	if acct, ok := verified.Load(k); ok {
		return acct.(string), nil
	}
	acct, err := m.Directory.VerifyPassword(ctx, username, password)
	if err == nil {
		verified.Store(k, acct)
	}
	return acct, err
}

// dirTemplate is posta.db with the domain and testUsers in it, made once:
// hashing three passwords takes about a second under -race, too long for
// every test. Each harness starts from a copy.
var dirTemplate = sync.OnceValues(func() ([]byte, error) {
	tmp, err := os.MkdirTemp("", "imapserver-dir-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	db, err := database.Open(tmp)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	dir, err := directory.Open(ctx, db)
	if err == nil {
		err = dir.AddDomain(ctx, testDomain)
	}
	for u, pw := range testUsers {
		if err == nil {
			err = dir.AddAccount(ctx, u, pw, directory.AccountOptions{})
		}
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(tmp, database.FileName))
})

var _ sasl.Credentials = (*memoDir)(nil)

// harness runs one IMAP Server on 127.0.0.1:0 over a real mail store,
// directory and spool in a temporary directory.
type harness struct {
	t      testing.TB
	ctx    context.Context
	cfg    *config.Config
	db     *sql.DB
	store  *mailstore.Store
	dir    *directory.Directory
	spool  *delivery.Delivery
	tls    *tlsconf.Manager
	guard  *guard.Guard
	clock  *testClock
	log    *logBuf
	srv    *Server
	addr   string
	panics int64 // panics the test expects
	served chan error
	down   bool // Shutdown already ran (by the test)
}

type harnessOpts struct {
	cfg         func(*config.Config)
	limits      Limits
	guard       guard.Limits
	implicitTLS bool
	noTLS       bool
	quota       map[string]int64
}

type hopt func(*harnessOpts)

func withConfig(f func(*config.Config)) hopt { return func(o *harnessOpts) { o.cfg = f } }
func withGuard(l guard.Limits) hopt          { return func(o *harnessOpts) { o.guard = l } }
func withQuota(account string, bytes int64) hopt {
	return func(o *harnessOpts) {
		if o.quota == nil {
			o.quota = map[string]int64{}
		}
		o.quota[account] = bytes
	}
}
func withImplicitTLS() hopt { return func(o *harnessOpts) { o.implicitTLS = true } }
func withoutTLS() hopt      { return func(o *harnessOpts) { o.noTLS = true } }

// withLimits changes the test limits (which start from testLimits).
func withLimits(f func(*Limits)) hopt { return func(o *harnessOpts) { f(&o.limits) } }

// noPlaintext turns Config.AllowPlaintextAuth off (the harness allows
// passwords without TLS by default, so most tests can speak plain text).
func noPlaintext() hopt {
	return withConfig(func(c *config.Config) { c.AllowPlaintextAuth = false })
}

// testLimits are short enough that a stuck session fails a test, long
// enough that a slow -race run does not trip them.
func testLimits() Limits {
	return Limits{IdleTimeout: ioTimeout, LoginTimeout: ioTimeout, WriteTimeout: ioTimeout,
		MaxErrors: 5, MaxCommandsBeforeAuth: 20, MaxSessionsPerUser: 4}
}

func start(t testing.TB, opts ...hopt) *harness {
	t.Helper()
	o := harnessOpts{
		guard:  guard.Limits{FailDelay: time.Second, MaxFailDelay: 4 * time.Second},
		limits: testLimits(),
	}
	for _, f := range opts {
		f(&o)
	}
	cfg := config.Default()
	cfg.Hostname = testHostname
	cfg.AllowPlaintextAuth = true
	if o.cfg != nil {
		o.cfg(cfg)
	}
	ctx := context.Background()
	data := t.TempDir()
	tmpl, err := dirTemplate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, database.FileName), tmpl, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(ctx, db, data, nil)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, cfg: cfg, db: db, store: st, clock: &testClock{}, log: &logBuf{},
		served: make(chan error, 1)}
	// Closed last (registered first).
	t.Cleanup(func() {
		st.Close()
		db.Close()
	})
	h.dir, err = directory.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for u, q := range o.quota {
		if err := h.dir.UpdateAccount(ctx, u, directory.AccountUpdate{QuotaBytes: &q}); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.spool = delivery.New(delivery.Options{Directory: h.dir, Store: st, Logger: logger})
	if !o.noTLS {
		h.tls, err = tlsconf.Load(tlsconf.Options{Dir: t.TempDir(), Hostname: testHostname})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.guard = guard.New(o.guard, guard.WithClock(h.clock))
	l := config.Listener{Name: "imap", Protocol: "imap"}
	if o.implicitTLS {
		l = config.Listener{Name: "imaps", Protocol: "imap", ImplicitTLS: true}
	}
	h.srv, err = New(Options{Config: cfg, Listener: l, Directory: memoDir{h.dir},
		Guard: h.guard, TLS: h.tls, Store: st, Spool: h.spool, Limits: o.limits, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go func() { h.served <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		if !h.down {
			h.shutdown(10 * time.Second)
		}
		if err := <-h.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if n := h.srv.Panics(); n != h.panics {
			t.Errorf("%d commands panicked, want %d", n, h.panics)
		}
		if t.Failed() || os.Getenv("POSTA_TEST_LOG") != "" {
			t.Logf("server log:\n%s", h.log.String())
		}
	})
	return h
}

// shutdown runs Shutdown with a grace period and returns its error.
func (h *harness) shutdown(grace time.Duration) error {
	h.down = true
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return h.srv.Shutdown(ctx)
}

// shutdownAsync runs Shutdown in the background.
func (h *harness) shutdownAsync(grace time.Duration) <-chan error {
	h.down = true
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	return done
}

func (h *harness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.tls.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// testMsg is a small well-formed message; n makes it unique.
func testMsg(n int) string {
	return "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: message " + strconv.Itoa(n) +
		"\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <" + strconv.Itoa(n) + "@example.test>\r\n\r\nHello " + strconv.Itoa(n) + ".\r\n"
}

// add appends messages to a mailbox of an account through the spool, as
// APPEND would, and returns their UIDs.
func (h *harness) add(account, mailbox string, bodies ...string) []uint32 {
	h.t.Helper()
	if err := h.store.EnsureAccount(h.ctx, account); err != nil {
		h.t.Fatal(err)
	}
	var msgs []mailstore.NewMessage
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	for _, b := range bodies {
		m, release, err := h.spool.Spool(strings.NewReader(b), int64(len(b)), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
		if err != nil {
			h.t.Fatal(err)
		}
		releases = append(releases, release)
		msgs = append(msgs, m)
	}
	res, err := h.store.Append(h.ctx, account, mailbox, msgs...)
	if err != nil {
		h.t.Fatal(err)
	}
	return res.UIDs
}

// mailbox returns a mailbox and its messages, read from the store.
func (h *harness) mailbox(account, name string) (mailstore.Mailbox, []mailstore.MessageMeta) {
	h.t.Helper()
	if err := h.store.EnsureAccount(h.ctx, account); err != nil {
		h.t.Fatal(err)
	}
	mb, err := h.store.Mailbox(h.ctx, account, name)
	if err != nil {
		h.t.Fatalf("mailbox %s/%s: %v", account, name, err)
	}
	ms, err := h.store.Messages(h.ctx, mb.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return mb, ms
}

// storeUIDs is the UIDs of a mailbox in the store, ascending.
func (h *harness) storeUIDs(account, name string) []uint32 {
	h.t.Helper()
	_, ms := h.mailbox(account, name)
	out := make([]uint32, len(ms))
	for i, m := range ms {
		out[i] = m.UID
	}
	return out
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
