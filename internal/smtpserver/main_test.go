package smtpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"posta/internal/config"
	"posta/internal/delivery"
	"posta/internal/guard"
	"posta/internal/sasl"
	"posta/internal/tlsconf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testDomain   = "example.test"
	testHostname = "mail.example.test"
	// ioTimeout bounds every client read and write in these tests, so a
	// broken server fails a test instead of hanging it.
	ioTimeout = 15 * time.Second
)

var testUsers = map[string]string{
	"alice@example.test": "alice-password",
	"bob@example.test":   "bob-password",
}

// memCreds is an in-memory sasl.Credentials: the directory's contract
// (prepared passwords, SCRAM keys, ErrInvalidCredentials) without argon2id,
// which is slow under -race. TestRealDirectory uses the real one.
type memCreds struct {
	pw   map[string]string
	keys map[string]sasl.SCRAMKeys
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

func (m *memCreds) VerifyPassword(_ context.Context, username, password string) (string, error) {
	if m.err != nil {
		return "", m.err
	}
	u := strings.ToLower(username)
	if pw, ok := m.pw[u]; ok && pw == sasl.PreparePassword(password) {
		return u, nil
	}
	return "", fmt.Errorf("memcreds: %w", sasl.ErrInvalidCredentials)
}

func (m *memCreds) SCRAMSHA256(_ context.Context, username string) (string, sasl.SCRAMKeys, error) {
	if m.err != nil {
		return "", sasl.SCRAMKeys{}, m.err
	}
	u := strings.ToLower(username)
	if k, ok := m.keys[u]; ok {
		return u, k, nil
	}
	return "", sasl.SCRAMKeys{}, fmt.Errorf("memcreds: %w", sasl.ErrInvalidCredentials)
}

// delivered is one message the fake Deliverer stored.
type delivered struct {
	env  delivery.Envelope
	body []byte
}

// fakeDeliverer plays internal/delivery: example.test is local with
// testUsers, other domains are relayed for authenticated senders only, and
// errors can be forced per recipient.
type fakeDeliverer struct {
	mu         sync.Mutex
	rcptErr    map[string]error
	senderErr  error
	deliverErr error
	msgs       []delivered
	// When gate is set, Deliver closes entered (once) and waits for gate
	// before reading the body, so a test can act while a message is in flight.
	gate    chan struct{}
	entered chan struct{}
}

func newFakeDeliverer() *fakeDeliverer {
	return &fakeDeliverer{rcptErr: map[string]error{}}
}

func (f *fakeDeliverer) CheckSender(_ context.Context, env *delivery.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.senderErr != nil {
		return f.senderErr
	}
	if !strings.EqualFold(env.MailFrom, env.Account) {
		return fmt.Errorf("fake: %s may not send as %s: %w", env.Account, env.MailFrom, delivery.ErrSenderNotOwned)
	}
	return nil
}

func (f *fakeDeliverer) CheckRecipient(_ context.Context, env *delivery.Envelope, rcpt delivery.Recipient) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	addr := strings.ToLower(rcpt.Address)
	if err := f.rcptErr[addr]; err != nil {
		return err
	}
	if strings.HasSuffix(addr, "@"+testDomain) {
		if _, ok := testUsers[addr]; !ok {
			return fmt.Errorf("fake: %s: %w", addr, delivery.ErrNoSuchUser)
		}
		return nil
	}
	if env.Account == "" {
		return fmt.Errorf("fake: %s: %w", addr, delivery.ErrRelayDenied)
	}
	return nil
}

func (f *fakeDeliverer) Deliver(ctx context.Context, env *delivery.Envelope, body io.Reader) error {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if gate != nil {
		close(entered)
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("fake: reading body: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deliverErr != nil {
		return f.deliverErr
	}
	f.msgs = append(f.msgs, delivered{env: *env, body: b})
	return nil
}

func (f *fakeDeliverer) messages() []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivered(nil), f.msgs...)
}

func (f *fakeDeliverer) set(fn func(f *fakeDeliverer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// testClock is the guard's clock: real time plus an offset, and an After
// that either fires at once (recording the wait) or, in manual mode, waits
// for the test to fire it. Guard.Sleep uses After, so a test sees the
// failed-login delay without sleeping.
type testClock struct {
	mu      sync.Mutex
	manual  bool
	asked   []time.Duration
	pending []chan time.Time
}

func (c *testClock) Now() time.Time { return time.Now() }

func (c *testClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, d)
	if c.manual {
		c.pending = append(c.pending, ch)
	} else {
		ch <- time.Now()
	}
	return ch
}

func (c *testClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.asked...)
}

func (c *testClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.pending {
		ch <- time.Now()
	}
	c.pending = nil
}

// logBuf collects log output; safe for the server's goroutines, which may
// log after a test's last assertion.
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

// harness runs the three SMTP listeners on 127.0.0.1:0.
type harness struct {
	t      testing.TB
	cfg    *config.Config
	tls    *tlsconf.Manager
	tlsDir string
	guard  *guard.Guard
	clock  *testClock
	del    *fakeDeliverer
	creds  sasl.Credentials
	log    *logBuf
	srv    map[string]*Server
	addr   map[string]string
}

type harnessOpts struct {
	cfg   func(*config.Config)
	guard guard.Limits
	creds sasl.Credentials
	del   Deliverer // instead of the fake, which then sees nothing
}

type hopt func(*harnessOpts)

func withConfig(f func(*config.Config)) hopt { return func(o *harnessOpts) { o.cfg = f } }
func withGuard(l guard.Limits) hopt          { return func(o *harnessOpts) { o.guard = l } }
func withCreds(c sasl.Credentials) hopt      { return func(o *harnessOpts) { o.creds = c } }
func withDeliverer(d Deliverer) hopt         { return func(o *harnessOpts) { o.del = d } }

func start(t testing.TB, opts ...hopt) *harness {
	t.Helper()
	o := harnessOpts{guard: guard.Limits{FailDelay: time.Second, MaxFailDelay: 4 * time.Second}}
	for _, f := range opts {
		f(&o)
	}
	cfg := config.Default()
	cfg.Hostname = testHostname
	cfg.SMTP.Limits.MaxMessageSize = 64 << 10
	cfg.SMTP.Limits.MaxRecipients = 5
	cfg.SMTP.Limits.CommandTimeout = config.Duration(ioTimeout)
	cfg.SMTP.Limits.DataTimeout = config.Duration(ioTimeout)
	if o.cfg != nil {
		o.cfg(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	h := &harness{t: t, cfg: cfg, clock: &testClock{}, del: newFakeDeliverer(), log: &logBuf{},
		srv: map[string]*Server{}, addr: map[string]string{}}
	h.creds = o.creds
	if h.creds == nil {
		h.creds = newMemCreds(t)
	}
	h.tlsDir = t.TempDir()
	var err error
	h.tls, err = tlsconf.Load(tlsconf.Options{Dir: h.tlsDir, Hostname: testHostname})
	if err != nil {
		t.Fatal(err)
	}
	h.guard = guard.New(o.guard, guard.WithClock(h.clock))
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var del Deliverer = h.del
	if o.del != nil {
		del = o.del
	}
	serveDone := make(chan error, 3)
	for _, l := range []config.Listener{
		{Name: "smtp", Protocol: "smtp"},
		{Name: "submission", Protocol: "smtp"},
		{Name: "submissions", Protocol: "smtp", ImplicitTLS: true},
	} {
		s, err := New(Options{Config: cfg, Listener: l, Directory: h.creds, Guard: h.guard, TLS: h.tls,
			Deliverer: del, Logger: logger,
			LookupAddr: func(context.Context, string) ([]string, error) { return []string{"client.example.net."}, nil }})
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
		for name, s := range h.srv {
			if n := s.Panics(); n != 0 {
				t.Errorf("%s: %d sessions panicked", name, n)
			}
		}
		if t.Failed() || os.Getenv("POSTA_TEST_LOG") != "" {
			t.Logf("server log:\n%s", h.log.String())
		}
	})
	return h
}

func (h *harness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.tls.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (h *harness) certFile() string { return filepath.Join(h.tlsDir, tlsconf.CertFileName) }

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

// reply is one SMTP reply: code and text (lines joined by "\n").
type reply struct {
	code int
	text string
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.text) }

// is checks the code and the enhanced status code that starts the text.
func (r reply) is(t testing.TB, code int, enh string) {
	t.Helper()
	if r.code != code || (enh != "" && !strings.HasPrefix(r.text, enh+" ")) {
		t.Fatalf("reply %q, want %d %s", r, code, enh)
	}
}

// client is a raw line client: the tests see every reply byte for byte.
type client struct {
	t  testing.TB
	nc net.Conn
	tp *textproto.Conn
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, nc)
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, nc)
}

func newClient(t testing.TB, nc net.Conn) *client {
	t.Helper()
	nc.SetDeadline(time.Now().Add(ioTimeout))
	c := &client{t: t, nc: nc, tp: textproto.NewConn(nc)}
	t.Cleanup(func() { nc.Close() })
	c.read().is(t, 220, "")
	return c
}

func (c *client) read() reply {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return reply{code, msg}
}

// readErr reads a reply or returns the error (e.g. the server closed).
func (c *client) readErr() (reply, error) {
	code, msg, err := c.tp.ReadResponse(0)
	return reply{code, msg}, err
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) cmd(format string, args ...any) reply {
	c.t.Helper()
	c.write(fmt.Sprintf(format, args...) + "\r\n")
	return c.read()
}

// closed reports whether the server has closed the connection (after any
// replies already read).
func (c *client) closed() bool {
	c.t.Helper()
	_, err := c.tp.ReadLine()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func (c *client) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.cmd("STARTTLS").is(c.t, 220, "2.0.0")
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.nc = tc
	c.tp = textproto.NewConn(tc)
}

// ehlo returns the EHLO keywords.
func (c *client) ehlo(name string) []string {
	c.t.Helper()
	r := c.cmd("EHLO %s", name)
	r.is(c.t, 250, "")
	return strings.Split(r.text, "\n")[1:]
}

// authPlain authenticates with AUTH PLAIN and an initial response.
func (c *client) authPlain(user, pass string) reply {
	c.t.Helper()
	return c.cmd("AUTH PLAIN %s", b64("\x00"+user+"\x00"+pass))
}

// submissionClient is an authenticated alice on the STARTTLS submission port.
func (h *harness) submissionClient(t testing.TB) *client {
	t.Helper()
	c := dial(t, h.addr["submission"])
	c.ehlo("client.example.net")
	c.starttls(h.clientTLS())
	c.ehlo("client.example.net")
	c.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 235, "2.0.0")
	return c
}

// send runs one transaction and returns the final reply.
func (c *client) send(from string, to []string, data string) reply {
	c.t.Helper()
	c.cmd("MAIL FROM:<%s>", from).is(c.t, 250, "2.0.0")
	for _, r := range to {
		c.cmd("RCPT TO:<%s>", r).is(c.t, 250, "2.0.0")
	}
	c.cmd("DATA").is(c.t, 354, "")
	c.write(data)
	return c.read()
}

// bodyAfterReceived strips the Received header Posta prepends and checks it
// is there.
func bodyAfterReceived(t testing.TB, b []byte) (received string, rest []byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("Received: ")) {
		t.Fatalf("body does not start with Received: %q", b)
	}
	// The header ends at the first CRLF not followed by folding whitespace.
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && (i+2 >= len(b) || (b[i+2] != '\t' && b[i+2] != ' ')) {
			return string(b[:i+2]), b[i+2:]
		}
	}
	t.Fatalf("unterminated Received header: %q", b)
	return "", nil
}

func newTextproto(nc net.Conn) *textproto.Conn { return textproto.NewConn(nc) }

// tlsDialNoGreeting opens an implicit-TLS connection without reading.
func tlsDialNoGreeting(addr string, cfg *tls.Config) (*tls.Conn, error) {
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	tc.SetDeadline(time.Now().Add(ioTimeout))
	return tc, nil
}
