// Command outload measures Posta's outbound throughput: messages per second
// from submission until a local sink server has them, with the queue's
// durability (Posta answers 250 to the submitter only once the message is
// fsynced in its queue).
//
// In one process it runs a DNS server (MX sink.test -> mx.sink.test ->
// 127.0.0.1) and a sink SMTP server that accepts everything, starts
// `posta serve` as a child with a generated configuration and data directory
// (domain bench.test and user alice@bench.test created with the CLI, queue
// pointed at the DNS server and the sink's port), submits N messages from
// alice@bench.test to rcpt@sink.test over the submission port (STARTTLS and
// AUTH PLAIN), and waits for the sink to have them all.
//
//	go build -o /tmp/posta ./cmd/posta && go run ./bench/outload -posta /tmp/posta -n 2000 -c 8 -size 4
//
// It prints machine-readable lines: accept_per_sec, outbound_per_sec,
// received, dkim_signed, duplicates, sink_sessions, queue_left.
package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

const (
	localDomain = "bench.test"
	sender      = "alice@bench.test"
	password    = "bench-password"
	sinkDomain  = "sink.test"
	recipient   = "rcpt@sink.test"
)

func main() {
	postaBin := flag.String("posta", "posta", "path to the posta binary")
	n := flag.Int("n", 2000, "messages to send")
	conc := flag.Int("c", 8, "concurrent submission connections")
	sizeKiB := flag.Int("size", 4, "message size in KiB")
	workers := flag.Int("workers", 0, "[queue] workers of Posta (0: Posta's default)")
	sinkTLS := flag.Bool("sink-starttls", false, "the sink offers STARTTLS (self-signed certificate)")
	plaintext := flag.Bool("plaintext", false, "submit with AUTH PLAIN without TLS (allow_plaintext_auth = true) instead of STARTTLS")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up waiting for the sink after this long")
	keep := flag.Bool("keep", false, "keep the temporary directory (config, data, Posta's log)")
	flag.Parse()

	if err := run(*postaBin, *n, *conc, *sizeKiB, *workers, *sinkTLS, *plaintext, *timeout, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "outload:", err)
		os.Exit(1)
	}
}

func run(postaBin string, n, conc, sizeKiB, workers int, sinkTLS, plaintext bool, timeout time.Duration, keep bool) error {
	dir, err := os.MkdirTemp("", "posta-outload.")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "outload: directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	dnsAddr, stopDNS, err := startDNS()
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	defer stopDNS()

	sk := newSink()
	srv := smtp.NewServer(sk)
	srv.Domain = "mx." + sinkDomain
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	if sinkTLS {
		cert, err := selfSigned("mx." + sinkDomain)
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(sinkLn)
	defer srv.Close()
	sinkPort := sinkLn.Addr().(*net.TCPAddr).Port

	// Posta: configuration, domain, user, serve.
	offset, err := portOffset()
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "posta.toml")
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\ndata_dir = %q\nbind_address = \"127.0.0.1\"\nport_offset = %d\nallow_plaintext_auth = %v\n",
		"mx."+localDomain, filepath.Join(dir, "data"), offset, plaintext)
	b.WriteString("[pop3]\nenabled = false\n[imap]\nenabled = false\n[ftp]\nenabled = false\n[sftp]\nenabled = false\n")
	b.WriteString("[guard]\nexempt_loopback = true\nmax_conns = 5000\n")
	fmt.Fprintf(&b, "[queue]\nenabled = true\ndns_server = %q\nremote_port = %d\n", dnsAddr, sinkPort)
	if workers > 0 {
		fmt.Fprintf(&b, "workers = %d\n", workers)
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(postaBin, "domain", "add", localDomain, "--config", conf).CombinedOutput(); err != nil {
		return fmt.Errorf("posta domain add: %v: %s", err, out)
	}
	cmd := exec.Command(postaBin, "user", "add", sender, "--password-stdin", "--config", conf)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("posta user add: %v: %s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "posta.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	serve := exec.Command(postaBin, "serve", "--config", conf)
	serve.Stderr = logf
	stdout, err := serve.StdoutPipe()
	if err != nil {
		return err
	}
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() {
		serve.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			serve.Process.Kill()
			<-done
		}
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "Stop with") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		return errors.New("posta serve did not start (see posta.log with -keep)")
	}
	subAddr := fmt.Sprintf("127.0.0.1:%d", 587+offset)

	// Submission.
	body := makeBody(sizeKiB<<10, 1)
	var next, accepted, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	var lastAccept atomic.Int64 // nanoseconds since start
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSubmission(subAddr, plaintext)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			for {
				k := next.Add(1)
				if k > int64(n) {
					break
				}
				msg := fmt.Sprintf("Message-ID: <%d@outload.%s>\r\n%s", k, localDomain, body)
				if err := send(c, msg); err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(1)
					if c.Reset() != nil {
						return
					}
					continue
				}
				accepted.Add(1)
				el := int64(time.Since(start))
				for {
					old := lastAccept.Load()
					if el <= old || lastAccept.CompareAndSwap(old, el) {
						break
					}
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	acceptEl := time.Duration(lastAccept.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "outload: first submission error: %v\n", e)
	}
	want := accepted.Load()

	// Wait for the sink.
	deadline := time.Now().Add(timeout)
	for sk.received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	outEl := time.Duration(sk.lastAt.Load() - start.UnixNano())
	got := sk.received.Load()

	// The queue should drain: its rows go once the sink's 250 is recorded.
	queueLeft := -1
	for end := time.Now().Add(10 * time.Second); ; {
		out, err := exec.Command(postaBin, "queue", "list", "--config", conf).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "outload: posta queue list: %v: %s\n", err, out)
			break
		}
		queueLeft = queueRows(out)
		if queueLeft == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	fmt.Printf("submitted %d\n", n)
	fmt.Printf("accepted %d\n", want)
	fmt.Printf("failed %d\n", failed.Load())
	fmt.Printf("accept_seconds %.3f\n", acceptEl.Seconds())
	fmt.Printf("accept_per_sec %.1f\n", float64(want)/acceptEl.Seconds())
	if got >= want && want > 0 {
		fmt.Printf("outbound_seconds %.3f\n", outEl.Seconds())
		fmt.Printf("outbound_per_sec %.1f\n", float64(got)/outEl.Seconds())
	} else {
		fmt.Printf("outbound_per_sec 0 # sink got %d of %d within %s\n", got, want, timeout)
	}
	fmt.Printf("received %d\n", got)
	fmt.Printf("received_bytes %d\n", sk.bytes.Load())
	fmt.Printf("dkim_signed %d\n", sk.dkim.Load())
	fmt.Printf("duplicates %d\n", sk.dups.Load())
	fmt.Printf("sink_sessions %d\n", sk.sessions.Load())
	fmt.Printf("queue_left %d\n", queueLeft)

	var problems []string
	if failed.Load() > 0 || want != int64(n) {
		problems = append(problems, fmt.Sprintf("%d of %d submissions accepted", want, n))
	}
	if got != want {
		problems = append(problems, fmt.Sprintf("sink received %d of %d", got, want))
	}
	if sk.dkim.Load() != got {
		problems = append(problems, fmt.Sprintf("%d of %d received messages DKIM-signed by %s", sk.dkim.Load(), got, localDomain))
	}
	if sk.dups.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d duplicate deliveries", sk.dups.Load()))
	}
	if queueLeft != 0 {
		problems = append(problems, fmt.Sprintf("queue not empty: %d rows", queueLeft))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// queueRows counts the message rows of `posta queue list` (lines after the
// header that start with a message id).
func queueRows(out []byte) int {
	rows := 0
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] != "" && f[0][0] >= '0' && f[0][0] <= '9' {
			rows++
		}
	}
	return rows
}

func dialSubmission(addr string, plaintext bool) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	if plaintext {
		c = smtp.NewClient(conn)
		if err := c.Hello("outload.test"); err != nil {
			c.Close()
			return nil, err
		}
	} else {
		// The benchmark measures throughput, not certificate handling.
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := c.Auth(sasl.NewPlainClient("", sender, password)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func send(c *smtp.Client, msg string) error {
	if err := c.Mail(sender, nil); err != nil {
		return err
	}
	if err := c.Rcpt(recipient, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

func makeBody(size int, seed int64) string {
	r := mrand.New(mrand.NewSource(seed))
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice <%s>\r\nTo: <%s>\r\nSubject: outbound load\r\n", sender, recipient)
	b.WriteString("Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const letters = "abcdefghijklmnopqrstuvwxyz      "
	for b.Len() < size {
		line := make([]byte, 76)
		for i := range line {
			line[i] = letters[r.Intn(len(letters))]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.String()
}

// portOffset picks an offset whose SMTP, submission and submissions ports
// (25, 587, 465 + offset) are free on 127.0.0.1 right now.
func portOffset() (int, error) {
	for try := 0; try < 50; try++ {
		off := 30000 + mrand.Intn(20000)
		ok := true
		for _, p := range []int{25, 587, 465} {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return off, nil
		}
	}
	return 0, errors.New("no free port offset")
}

// DNS: MX sink.test -> mx.sink.test, A mx.sink.test -> 127.0.0.1, and
// NXDOMAIN or NODATA for the rest.
func startDNS() (string, func(), error) {
	zone := map[string][]dns.RR{}
	for _, l := range []string{
		sinkDomain + ". 300 IN MX 10 mx." + sinkDomain + ".",
		"mx." + sinkDomain + ". 300 IN A 127.0.0.1",
	} {
		rr, err := dns.NewRR(l)
		if err != nil {
			return "", nil, err
		}
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		rrs, known := zone[strings.ToLower(q.Name)]
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		if opt := req.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), false)
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return "", nil, err
	}
	var servers []*dns.Server
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		servers = append(servers, srv)
	}
	return addr, func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}, nil
}

// sink is an SMTP backend that accepts everything and counts it.
type sink struct {
	received, bytes, dkim, dups, sessions atomic.Int64
	lastAt                                atomic.Int64 // UnixNano of the latest message

	mu   sync.Mutex
	seen map[string]bool
}

func newSink() *sink { return &sink{seen: map[string]bool{}} }

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	return &sinkSession{s: s}, nil
}

type sinkSession struct {
	s     *sink
	rcpts int
}

func (ss *sinkSession) Reset()                                    { ss.rcpts = 0 }
func (ss *sinkSession) Logout() error                             { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error { ss.rcpts++; return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return &smtp.SMTPError{Code: 554, Message: "unparsable header: " + err.Error()}
	}
	signed := false
	for _, v := range hdr.Values("Dkim-Signature") {
		if dkimDomain(v) == localDomain {
			signed = true
		}
	}
	id := hdr.Get("Message-Id")
	s := ss.s
	s.mu.Lock()
	dup := id != "" && s.seen[id]
	s.seen[id] = true
	s.mu.Unlock()
	n := int64(ss.rcpts)
	if n == 0 {
		n = 1
	}
	if dup {
		s.dups.Add(n)
	}
	if signed {
		s.dkim.Add(n)
	}
	s.bytes.Add(int64(len(data)))
	s.lastAt.Store(time.Now().UnixNano())
	s.received.Add(n)
	return nil
}

// dkimDomain is the d= tag of a DKIM-Signature header value.
func dkimDomain(v string) string {
	for _, tag := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(tag, "=")
		if ok && strings.TrimSpace(k) == "d" {
			return strings.ToLower(strings.Join(strings.Fields(val), ""))
		}
	}
	return ""
}

func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
