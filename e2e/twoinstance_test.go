package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/mailauth"
	"posta/internal/postatest"
	"posta/internal/queue"
	"posta/internal/server"
	"posta/internal/tlsconf"
	"posta/internal/tlsrpt"
)

// testDNS is an authoritative-looking DNS server for the test's zones,
// over UDP and TCP on 127.0.0.1: a name it knows without records of the
// asked type answers NODATA, a name it does not know NXDOMAIN.
type testDNS struct {
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // lower-case FQDN -> records of every type
}

func startTestDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{records: map[string][]dns.RR{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.Addr = pc.LocalAddr().String()
	ln, err := net.Listen("tcp", d.Addr)
	if err != nil {
		pc.Close()
		t.Skipf("TCP port of the test DNS server (%s) is taken: %v", d.Addr, err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return d
}

// add publishes records in zone-file form ("a.test. 300 IN MX 10 mx.a.test.").
func (d *testDNS) add(t *testing.T, zone ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range zone {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("test DNS: %q: %v", line, err)
		}
		name := strings.ToLower(rr.Header().Name)
		d.records[name] = append(d.records[name], rr)
	}
}

// addTXT publishes a TXT record whose text may be longer than one
// character-string (255 octets), as DKIM RSA keys are.
func (d *testDNS) addTXT(name, text string) {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: parts}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name))
	d.records[key] = append(d.records[key], rr)
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	d.mu.Lock()
	rrs, known := d.records[strings.ToLower(q.Name)]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			rr = dns.Copy(rr)
			rr.Header().Name = q.Name
			m.Answer = append(m.Answer, rr)
		}
	}
	d.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	w.WriteMsg(m)
}

// loopback2 skips the test when 127.0.0.2 cannot be bound (Linux routes
// all of 127.0.0.0/8 to lo; other systems may only have 127.0.0.1).
func loopback2(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2 (a second loopback address): %v", err)
	}
	ln.Close()
}

// twoInstances is Posta A (a.test on 127.0.0.1, sending through its queue)
// and Posta B (b.test on 127.0.0.2, checking SPF/DKIM/DMARC of what arrives),
// with the DNS that ties them together.
type twoInstances struct {
	dns  *testDNS
	a, b *postatest.Instance
}

func startTwoInstances(t *testing.T, aOpts ...postatest.Option) *twoInstances {
	t.Helper()
	loopback2(t)
	d := startTestDNS(t)
	d.add(t,
		"a.test. 300 IN MX 10 mx.a.test.",
		"mx.a.test. 300 IN A 127.0.0.1",
		`a.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`mx.a.test. 300 IN TXT "v=spf1 a -all"`,
		`_dmarc.a.test. 300 IN TXT "v=DMARC1; p=reject"`,
		"b.test. 300 IN MX 10 mx.b.test.",
		"mx.b.test. 300 IN A 127.0.0.2",
		// RFC 7505: c.test accepts no mail.
		"c.test. 300 IN MX 0 .",
	)
	b := postatest.Start(t, postatest.WithBindAddress("127.0.0.2"), postatest.WithDomain("b.test"), postatest.WithInboundChecks(),
		postatest.WithConfig(func(c *config.Config) {
			c.Hostname = "mx.b.test"
			c.Queue.DNSServer = d.Addr
		}))
	remotePort := b.Port(t, "smtp")
	a := postatest.Start(t, append([]postatest.Option{postatest.WithDomain("a.test"), postatest.WithOutboundQueue(),
		postatest.WithConfig(func(c *config.Config) {
			c.Hostname = "mx.a.test"
			c.Queue.DNSServer = d.Addr
			c.Queue.RemotePort = remotePort
		})}, aOpts...)...)
	// Publish a.test's DKIM keys, the ones A signs with (created here
	// first if the queue has not needed them yet).
	ks, err := mailauth.Open(context.Background(), a.DB)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ks.Ensure(context.Background(), "a.test")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range mailauth.Records("a.test", "mx.a.test", keys) {
		if r.Type == "TXT" && strings.Contains(r.Name, "._domainkey.") {
			d.addTXT(r.Name, r.Value)
			n++
		}
	}
	if n == 0 {
		t.Fatal("mailauth.Records gave no DKIM records for a.test")
	}
	return &twoInstances{dns: d, a: a, b: b}
}

// submitAs sends one message over in's submission port (STARTTLS, AUTH).
func submitAs(t *testing.T, in *postatest.Instance, from, password, to, msg string) {
	t.Helper()
	addr := in.Addr(t, "submission")
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(in.ClientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", from, password, host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()
}

// waitQueueEmpty polls until in's queue holds nothing.
func waitQueueEmpty(t *testing.T, in *postatest.Instance) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs, err := in.Queue.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty: %+v", msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// headerBlock returns the header section of a message, continuation lines
// unfolded.
func headerBlock(msg []byte) string {
	h, _, _ := strings.Cut(string(msg), "\r\n\r\n")
	return strings.ReplaceAll(strings.ReplaceAll(h, "\r\n\t", " "), "\r\n ", " ")
}

// TestTwoInstancesDeliverSignedAndVerified: alice@a.test writes to
// bob@b.test; A's queue finds b.test's MX through the test DNS, delivers to
// B, DKIM-signed as a.test; B checks it on arrival and records SPF, DKIM
// and DMARC pass.
func TestTwoInstancesDeliverSignedAndVerified(t *testing.T) {
	ti := startTwoInstances(t)
	from, pw := postatest.UserAddress("alice", "a.test")
	to, _ := postatest.UserAddress("bob", "b.test")
	msg := "From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: across\r\nMessage-ID: <across1@a.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nhello b.test\r\n"
	submitAs(t, ti.a, from, pw, to, msg)
	got := ti.b.WaitMessages(t, to, "INBOX", 1)
	if len(got) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(got))
	}
	h := headerBlock(got[0])
	if !regexp.MustCompile(`(?mi)^DKIM-Signature:.*\bd=a\.test;`).MatchString(h) {
		t.Errorf("no DKIM-Signature with d=a.test:\n%s", h)
	}
	ar := regexp.MustCompile(`(?mi)^Authentication-Results: mx\.b\.test;.*$`).FindString(h)
	if ar == "" {
		t.Fatalf("no Authentication-Results by mx.b.test:\n%s", h)
	}
	for _, want := range []string{"spf=pass", "dkim=pass", "dmarc=pass", "header.d=a.test", "header.from=a.test"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %q: %s", want, ar)
		}
	}
	if !strings.HasSuffix(string(got[0]), "\r\n\r\nhello b.test\r\n") || !strings.Contains(h, "Subject: across") {
		t.Errorf("delivered message differs from what alice sent:\n%s", got[0])
	}
	waitQueueEmpty(t, ti.a)
	if n := len(ti.a.Messages(t, from, "INBOX")); n != 0 {
		t.Errorf("alice got %d messages (a bounce?) for a delivered message", n)
	}
}

// TestTwoInstancesBounces: a recipient B refuses with 5xx and a domain with
// a null MX both bounce at once, with a DSN in alice's INBOX on A.
func TestTwoInstancesBounces(t *testing.T) {
	ti := startTwoInstances(t)
	from, pw := postatest.UserAddress("alice", "a.test")
	cases := []struct{ to, status string }{
		{"nobody@b.test", "Status: 5.1.1"},
		{"carol@c.test", "Status: 5.1.10"}, // RFC 7505 4.3: null MX
	}
	for i, tc := range cases {
		submitAs(t, ti.a, from, pw, tc.to, "From: alice@a.test\r\nTo: "+tc.to+"\r\nSubject: doomed "+tc.to+"\r\n\r\nbye\r\n")
		msgs := ti.a.WaitMessages(t, from, "INBOX", i+1)
		dsn := string(msgs[i])
		for _, want := range []string{"Return-Path: <>", "report-type=delivery-status", "Final-Recipient: rfc822; " + tc.to,
			"Action: failed", tc.status, "Subject: doomed " + tc.to} {
			if !strings.Contains(dsn, want) {
				t.Errorf("DSN for %s lacks %q:\n%s", tc.to, want, dsn)
			}
		}
	}
	waitQueueEmpty(t, ti.a)
	if n := len(ti.b.Messages(t, "bob@b.test", "INBOX")); n != 0 {
		t.Errorf("bob got %d messages", n)
	}
}

// tempfailSMTP is a destination MX that answers every RCPT with
// 451 4.3.0 (a greylister, or a full disk): it counts the refusals.
type tempfailSMTP struct {
	mu    sync.Mutex
	rcpts []string
}

func startTempfailSMTP(t *testing.T, addr string) *tempfailSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s for the refusing MX: %v", addr, err)
	}
	s := &tempfailSMTP{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // A may keep an idle connection for reuse
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *tempfailSMTP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	reply := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	reply("220 mx.d.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO", "HELO":
			// SMTPUTF8: net/smtp asks for it whenever the server offers
			// it, as Posta's submission does.
			reply("250-mx.d.test\r\n250-8BITMIME\r\n250 SMTPUTF8")
		case "MAIL", "RSET", "NOOP":
			reply("250 2.0.0 OK")
		case "RCPT":
			s.mu.Lock()
			s.rcpts = append(s.rcpts, line)
			s.mu.Unlock()
			reply("451 4.3.0 try again later")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("503 5.5.1 no valid recipients")
		}
	}
}

func (s *tempfailSMTP) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rcpts)
}

// TestTwoInstancesRetryThenBounce: a destination that refuses with 4xx is
// tried again after the first backoff step, and once queue.max_age has
// passed (on the queue's fake clock) the message bounces with a DSN that
// carries the last refusal.
func TestTwoInstancesRetryThenBounce(t *testing.T) {
	loopback2(t)
	clk := queue.NewManualClock(time.Now())
	start := clk.Now()
	ti := startTwoInstances(t, postatest.WithServerOption(server.WithQueueClock(clk)),
		postatest.WithConfig(func(c *config.Config) {
			c.Queue.MaxAge = config.Duration(time.Hour)
			c.Queue.DelayNotice = config.Duration(24 * time.Hour)
		}))
	// d.test's MX is 127.0.0.3 at the port A sends to (B's MX port there).
	port := ti.b.Port(t, "smtp")
	mx := startTempfailSMTP(t, net.JoinHostPort("127.0.0.3", fmt.Sprint(port)))
	ti.dns.add(t, "d.test. 300 IN MX 10 mx.d.test.", "mx.d.test. 300 IN A 127.0.0.3")

	from, pw := postatest.UserAddress("alice", "a.test")
	submitAs(t, ti.a, from, pw, "dave@d.test", "From: alice@a.test\r\nTo: dave@d.test\r\nSubject: later\r\n\r\nretry me\r\n")

	// Move the clock a second at a time: the first attempt, then the
	// retry after the first backoff step (queue.DefaultBackoff[0]).
	tick := func(until func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s (fake clock at +%s, %d refusals)", what, clk.Now().Sub(start), mx.count())
			}
			clk.Set(clk.Now().Add(time.Second))
			time.Sleep(5 * time.Millisecond)
		}
	}
	tick(func() bool { return mx.count() >= 1 }, "first attempt")
	first := clk.Now()
	tick(func() bool { return mx.count() >= 2 }, "retry")
	if waited := clk.Now().Sub(first); waited < queue.DefaultBackoff[0]-2*time.Second {
		t.Errorf("retried after %s, before the first backoff step %s", waited, queue.DefaultBackoff[0])
	}
	if n := len(ti.a.Messages(t, from, "INBOX")); n != 0 {
		t.Fatalf("alice has %d messages before the message expired", n)
	}
	msgs, err := ti.a.Queue.List(context.Background())
	if err != nil || len(msgs) != 1 {
		t.Fatalf("queue = %+v, %v; want the message still queued", msgs, err)
	}

	// Past max_age: the next attempt, refused again, is the last.
	clk.Set(start.Add(2 * time.Hour))
	tick(func() bool { return len(ti.a.Messages(t, from, "INBOX")) >= 1 }, "bounce after max_age")
	dsn := string(ti.a.Messages(t, from, "INBOX")[0])
	for _, want := range []string{"Return-Path: <>", "report-type=delivery-status", "Final-Recipient: rfc822; dave@d.test",
		"Action: failed", "Status: 4.3.0", "Diagnostic-Code: smtp; 451 4.3.0 try again later", "Subject: later"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	waitQueueEmpty(t, ti.a)
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildPosta compiles the posta binary for tests that need a real process
// (to kill it with SIGKILL).
func buildPosta(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			t.Skip("no go command to build the posta binary with")
		}
	}
	bin := filepath.Join(t.TempDir(), "posta")
	if out, err := exec.Command(goBin, "build", "-o", bin, "posta/cmd/posta").CombinedOutput(); err != nil {
		t.Fatalf("go build posta: %v\n%s", err, out)
	}
	return bin
}

// freeLoopbackPort asks the kernel for a port nobody uses on 127.0.0.1.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// postaProcess is "posta serve" in a child process.
type postaProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

func startPostaProcess(t *testing.T, bin, cfgFile string) *postaProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &postaProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	banner := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") {
				seen = true
				banner <- true
			}
		}
		if !seen {
			banner <- false
		}
	}()
	select {
	case ok := <-banner:
		if !ok {
			cmd.Wait()
			t.Fatalf("posta serve exited before its banner; stderr:\n%s", p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("posta serve printed no banner in 30s; stderr:\n%s", p.stderr)
	}
	return p
}

// waitLog polls the child's log for a line containing s.
func (p *postaProcess) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("posta serve logged no %q in 15s; stderr:\n%s", s, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoInstancesQueueSurvivesKill9: a message deferred in A's queue
// (B is down) survives SIGKILL of A; after A's restart it reaches the
// restarted B exactly once and leaves A's queue.
func TestTwoInstancesQueueSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a posta process")
	}
	loopback2(t)
	bin := buildPosta(t)
	d := startTestDNS(t)
	d.add(t,
		"mx.a.test. 300 IN A 127.0.0.1",
		`a.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.a.test. 300 IN TXT "v=DMARC1; p=reject"`,
		"b.test. 300 IN MX 10 mx.b.test.",
		"mx.b.test. 300 IN A 127.0.0.2",
	)
	startB := func(dataDir string) *postatest.Instance {
		opts := []postatest.Option{postatest.WithBindAddress("127.0.0.2"), postatest.WithDomain("b.test"), postatest.WithInboundChecks(),
			postatest.WithConfig(func(c *config.Config) {
				c.Hostname = "mx.b.test"
				c.Queue.DNSServer = d.Addr
			})}
		if dataDir != "" {
			opts = append(opts, postatest.WithDataDir(dataDir), postatest.WithoutUsers())
		}
		return postatest.Start(t, opts...)
	}
	b := startB("")
	bData := b.DataDir

	work := t.TempDir()
	aData := filepath.Join(work, "data")
	cfgFile := filepath.Join(work, "posta.toml")
	smtpPort, subPort := freeLoopbackPort(t), freeLoopbackPort(t)
	writeConfig := func(remotePort int) {
		cfg := fmt.Sprintf("hostname = \"mx.a.test\"\ndata_dir = %q\nbind_address = \"127.0.0.1\"\n"+
			"[smtp]\nport = %d\nsubmission_port = %d\nsubmissions_port = 0\n"+
			"[pop3]\nenabled = false\n[imap]\nenabled = false\n[ftp]\nenabled = false\n[sftp]\nenabled = false\n"+
			"[queue]\ndns_server = %q\nremote_port = %d\n", aData, smtpPort, subPort, d.Addr, remotePort)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	posta := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--config", cfgFile)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("posta %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	writeConfig(b.Port(t, "smtp"))
	from, pw := postatest.UserAddress("alice", "a.test")
	posta("", "domain", "add", "a.test")
	posta(pw+"\n", "user", "add", from, "--password-stdin")

	a := startPostaProcess(t, bin, cfgFile)
	// Publish the DKIM keys A signs with.
	db, err := database.Open(aData)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := mailauth.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ks.Ensure(context.Background(), "a.test")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, r := range mailauth.Records("a.test", "mx.a.test", keys) {
		if r.Type == "TXT" && strings.Contains(r.Name, "._domainkey.") {
			d.addTXT(r.Name, r.Value)
		}
	}

	// B goes down; A accepts the message and defers it.
	b.Stop(t)
	certPEM, err := os.ReadFile(filepath.Join(aData, "tls", tlsconf.CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	subAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(subPort))
	c, err := smtp.Dial(subAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", from, pw, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@b.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: survivor\r\nMessage-ID: <survivor@a.test>\r\n\r\nstill here\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()
	a.waitLog(t, "queue: deferred")

	// SIGKILL: no shutdown, no final commit beyond what was acknowledged.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()

	// B comes back (on a new port); the deferred message is made due now
	// rather than after the first backoff step, and A restarts.
	b = startB(bData)
	writeConfig(b.Port(t, "smtp"))
	posta("", "queue", "retry", "all")
	a = startPostaProcess(t, bin, cfgFile)
	got := b.WaitMessages(t, "bob@b.test", "INBOX", 1)
	h := headerBlock(got[0])
	if !strings.Contains(h, "Message-ID: <survivor@a.test>") || !strings.Contains(h, "spf=pass") || !strings.Contains(h, "dkim=pass") {
		t.Errorf("delivered message:\n%s", h)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(a.stderr.String(), "queue: done") {
		if time.Now().After(deadline) {
			t.Fatalf("restarted A did not finish the message; stderr:\n%s", a.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("A after SIGTERM: %v\n%s", err, a.stderr)
	}
	// A is stopped: nothing more can arrive. Exactly one copy, and A's
	// queue is empty.
	if n := len(b.Messages(t, "bob@b.test", "INBOX")); n != 1 {
		t.Errorf("bob has %d messages, want exactly 1", n)
	}
	db, err = database.Open(aData)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := queue.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := q.List(context.Background()); err != nil || len(msgs) != 0 {
		t.Errorf("A's queue after delivery = %+v, %v; want empty", msgs, err)
	}
}

// TestTwoInstancesTLSReport: b.test asks for SMTP TLS reports (RFC 8460)
// by mail to bob; after A delivered to B over STARTTLS, A's report of the
// day reaches bob, DKIM-signed as a.test (RFC 8460 3), with the session
// counted as a success under no policy.
func TestTwoInstancesTLSReport(t *testing.T) {
	ti := startTwoInstances(t)
	to, _ := postatest.UserAddress("bob", "b.test")
	ti.dns.add(t, `_smtp._tls.b.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:`+to+`"`)
	from, pw := postatest.UserAddress("alice", "a.test")
	submitAs(t, ti.a, from, pw, to, "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: tls\r\n\r\nhi\r\n")
	ti.b.WaitMessages(t, to, "INBOX", 1)
	waitQueueEmpty(t, ti.a)
	if ti.a.TLSReports == nil {
		t.Fatal("the queue runs without a TLS reporter")
	}
	if err := ti.a.TLSReports.SendDay(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	got := ti.b.WaitMessages(t, to, "INBOX", 2)
	rep := got[1]
	h := headerBlock(rep)
	for _, want := range []string{"TLS-Report-Domain: b.test", "TLS-Report-Submitter: a.test", "Subject: Report Domain: b.test Submitter: a.test Report-ID: <",
		`report-type="tlsrpt"`, "From: <postmaster@a.test>"} {
		if !strings.Contains(h, want) {
			t.Errorf("report header lacks %q:\n%s", want, h)
		}
	}
	ar := regexp.MustCompile(`(?mi)^Authentication-Results: mx\.b\.test;.*$`).FindString(h)
	if !strings.Contains(ar, "dkim=pass") || !strings.Contains(ar, "header.d=a.test") {
		t.Errorf("report not DKIM-verified as a.test: %q", ar)
	}
	m, err := mail.ReadMessage(bytes.NewReader(rep))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	mr.NextPart()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
	if err != nil {
		t.Fatal(err)
	}
	var report tlsrpt.Report
	if err := json.NewDecoder(zr).Decode(&report); err != nil {
		t.Fatal(err)
	}
	if len(report.Policies) != 1 {
		t.Fatalf("report policies %+v", report.Policies)
	}
	pe := report.Policies[0]
	if pe.Policy.Type != tlsrpt.PolicyNone || pe.Policy.Domain != "b.test" || pe.Summary.Successful < 1 || pe.Summary.Failed != 0 {
		t.Errorf("report policy %+v", pe)
	}
	if report.ContactInfo != "postmaster@a.test" || report.OrganizationName != "a.test" {
		t.Errorf("report %+v", report)
	}
}
