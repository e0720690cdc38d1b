package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"posta/internal/config"
	"posta/internal/database"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lineProto is a stand-in protocol: it echoes lines; "SLOW" makes the
// session busy until "DONE" arrives, so shutdown has a busy session to wait for.
type lineProto struct {
	mu     sync.Mutex
	lns    []net.Listener    // one protocol value may serve several listeners in these tests
	conns  map[net.Conn]bool // true while busy
	closed bool
	wg     sync.WaitGroup
	quit   chan struct{}
}

func newLineProto() *lineProto {
	return &lineProto{conns: map[net.Conn]bool{}, quit: make(chan struct{})}
}

func (p *lineProto) Serve(ln net.Listener) error {
	p.mu.Lock()
	p.lns = append(p.lns, ln)
	p.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.stopping() {
				return nil
			}
			return err
		}
		p.mu.Lock()
		p.conns[c] = false
		p.wg.Add(1)
		p.mu.Unlock()
		go p.session(c)
	}
}

func (p *lineProto) session(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "HELLO\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		switch line {
		case "SLOW":
			p.setBusy(c, true)
			fmt.Fprintf(c, "BUSY\n")
		case "DONE":
			p.setBusy(c, false)
			fmt.Fprintf(c, "OK\n")
			if p.stopping() {
				fmt.Fprintf(c, "BYE\n")
				return
			}
		default:
			fmt.Fprintf(c, "%s\n", line)
		}
	}
}

func (p *lineProto) setBusy(c net.Conn, b bool) {
	p.mu.Lock()
	p.conns[c] = b
	p.mu.Unlock()
}

func (p *lineProto) stopping() bool {
	select {
	case <-p.quit:
		return true
	default:
		return false
	}
}

func (p *lineProto) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
		for _, ln := range p.lns {
			ln.Close()
		}
	}
	for c, busy := range p.conns {
		if !busy {
			fmt.Fprintf(c, "BYE\n")
			c.Close()
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.Close()
		<-done
		return ctx.Err()
	}
}

func (p *lineProto) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	for _, ln := range p.lns {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	return nil
}

func testConfig(t *testing.T) *config.Config {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.BindAddress = "127.0.0.1"
	c.EphemeralPorts = true
	c.Hostname = "mail.example.test"
	return c
}

func start(t *testing.T, cfg *config.Config, protos map[string]*lineProto) *Server {
	t.Helper()
	var opts []Option
	for name, p := range protos {
		if p == nil {
			opts = append(opts, WithProtocol(name, nil)) // as if not built yet
			continue
		}
		opts = append(opts, WithProtocol(name, func(*Server, config.Listener) (Protocol, error) { return p, nil }))
	}
	s, err := New(context.Background(), cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

func dial(t *testing.T, addr net.Addr) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	expect(t, r, "HELLO")
	return c, r
}

func expect(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		t.Fatalf("read %q, %v; want %q", line, err, want)
	}
}

func TestOnlyBuiltProtocolsListen(t *testing.T) {
	cfg := testConfig(t)
	cfg.SMTP.SubmissionsPort = 0 // one listener of the protocol turned off
	// Other built protocols are turned off; IMAP is on but has no server.
	cfg.POP3.Enabled, cfg.FTP.Enabled, cfg.SFTP.Enabled = false, false, false
	s := start(t, cfg, map[string]*lineProto{"smtp": newLineProto(), "imap": nil})
	defer s.Close()
	var names []string
	for _, b := range s.Listening() {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "smtp,submission" {
		t.Fatalf("listening on %v; want smtp,submission only (imap has no builder, submissions and the rest off)", names)
	}
	if s.Addr("imap") != nil {
		t.Fatal("imap listens without a protocol server")
	}
	c, r := dial(t, s.Addr("submission"))
	fmt.Fprintf(c, "ping\n")
	expect(t, r, "ping")
}

func TestDisabledProtocolDoesNotListen(t *testing.T) {
	cfg := testConfig(t)
	cfg.POP3.Enabled = false
	s := start(t, cfg, map[string]*lineProto{"pop3": newLineProto(), "imap": newLineProto()})
	defer s.Close()
	if s.Addr("pop3") != nil || s.Addr("pop3s") != nil || s.Addr("imap") == nil {
		t.Fatalf("listening = %+v", s.Listening())
	}
}

func TestPortInUseNamesPortAndSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port

	cfg := testConfig(t)
	cfg.EphemeralPorts = false
	cfg.IMAP.Enabled = false
	cfg.POP3.Port = port
	cfg.POP3.TLSPort = 0
	// smtp binds first (config order) on a kernel-chosen port, then pop3 fails:
	// smtp's listener must not stay open.
	cfg.SMTP.Port, cfg.SMTP.SubmissionPort, cfg.SMTP.SubmissionsPort = 0, 0, 0
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	cfg.SMTP.SubmissionPort = freePort

	smtp := newLineProto()
	s, err := New(context.Background(), cfg, nil,
		WithProtocol("smtp", func(*Server, config.Listener) (Protocol, error) { return smtp, nil }),
		WithProtocol("pop3", func(*Server, config.Listener) (Protocol, error) { return newLineProto(), nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start()
	want := fmt.Sprintf("cannot listen on port %d for pop3 (pop3.port = %d): the port is already in use", port, port)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Start error = %v; want one line containing %q", err, want)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", freePort)); err == nil {
		c.Close()
		t.Fatal("the listener opened before the failure is still open")
	}
}

func TestBindErrorPrivileged(t *testing.T) {
	cfg := testConfig(t)
	cfg.PortOffset = 0
	s := &Server{Config: cfg}
	err := s.bindError(config.Listener{Name: "smtp", Key: "smtp.port", Port: 25}, &net.OpError{Op: "listen", Err: syscall.EACCES})
	want := "cannot listen on port 25 for smtp (smtp.port = 25): ports below 1024 need root or CAP_NET_BIND_SERVICE; run with --port-offset 10000 or change smtp.port"
	if err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}
	cfg.PortOffset = 10000
	err = s.bindError(config.Listener{Name: "imap", Key: "imap.port", Port: 143}, syscall.EADDRINUSE)
	if !strings.Contains(err.Error(), "port 10143 for imap (imap.port = 143 plus port_offset 10000)") {
		t.Fatalf("got %q", err)
	}
}

func TestShutdownWaitsForBusyThenCuts(t *testing.T) {
	cfg := testConfig(t)
	p := newLineProto()
	s := start(t, cfg, map[string]*lineProto{"imap": p})
	imapAddr := s.Addr("imap")
	_, idleR := dial(t, imapAddr)
	busy, busyR := dial(t, s.Addr("imaps"))
	fmt.Fprintf(busy, "SLOW\n")
	expect(t, busyR, "BUSY")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	// The idle session is told goodbye at once.
	expect(t, idleR, "BYE")
	// New connections are refused once shutdown started.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", imapAddr.String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The busy one may finish its command, then it is let go.
	fmt.Fprintf(busy, "DONE\n")
	expect(t, busyR, "OK")
	expect(t, busyR, "BYE")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the busy session ended")
	}
}

func TestShutdownDeadlineCutsBusySessions(t *testing.T) {
	cfg := testConfig(t)
	p := newLineProto()
	s := start(t, cfg, map[string]*lineProto{"imap": p})
	busy, busyR := dial(t, s.Addr("imap"))
	fmt.Fprintf(busy, "SLOW\n")
	expect(t, busyR, "BUSY")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v (a deadline cut is not an error)", err)
	}
	if _, err := busyR.ReadString('\n'); err == nil {
		t.Fatal("busy session still open after the deadline")
	}
	if err := s.DB.Ping(); err == nil {
		t.Fatal("database still open after shutdown")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneServerPerDataDir: a second server on the same data directory is
// refused while the first runs, and starts once it closed.
func TestOneServerPerDataDir(t *testing.T) {
	cfg := testConfig(t)
	first, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := *cfg
	if s, err := New(context.Background(), &cfg2, nil); !errors.Is(err, database.ErrLocked) {
		if s != nil {
			s.Close()
		}
		first.Close()
		t.Fatalf("second server on the same data directory: %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := New(context.Background(), &cfg2, nil)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
