package mx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"posta/internal/queue"
)

// ---- certificates ----

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Posta Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial atomic.Int64

// issue returns a leaf for names, with the CA certificate in its chain.
func (ca *testCA) issue(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// selfSigned returns a certificate nobody vouches for.
func selfSigned(t *testing.T, name string) tls.Certificate {
	t.Helper()
	return newCA(t).issue(t, name)
}

// spkiSHA256 is the data of a "3 1 1" TLSA record for cert.
func spkiSHA256(cert tls.Certificate) []byte {
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	return sum[:]
}

// ---- a fake MX on go-smtp's server ----

type received struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	RcptOpts []smtp.RcptOptions
	Data     []byte
	TLS      *tls.ConnectionState
	Helo     string
}

type fakeMX struct {
	addr    string
	accepts atomic.Int32
	open    atomic.Int32

	mu      sync.Mutex
	msgs    []received
	mails   int // MAIL commands accepted or refused
	resets  int
	logouts int
	tlsSeen []tls.ConnectionState

	mailErr  func(from string) error
	rcptErr  func(to string) error
	dataHook func() error
}

type fakeMXConfig struct {
	cert        *tls.Certificate // STARTTLS offered when set
	dsn         bool
	smtputf8    bool
	requireTLS  bool
	maxMsgBytes int64
	binaryMIME  bool
}

// countingListener counts accepted connections, and those still open.
type countingListener struct {
	net.Listener
	n    *atomic.Int32
	open *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.n.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, open: l.open}, nil
}

type countedConn struct {
	net.Conn
	open *atomic.Int32
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

func newFakeMX(t *testing.T, cfg fakeMXConfig) *fakeMX {
	t.Helper()
	f := &fakeMX{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s := &fakeSession{mx: f, helo: c.Hostname()}
		if st, ok := c.TLSConnectionState(); ok {
			s.tls = &st
			f.mu.Lock()
			f.tlsSeen = append(f.tlsSeen, st)
			f.mu.Unlock()
		}
		return s, nil
	}))
	srv.Domain = "fake.mx.test"
	// Longer than any waitFor, so that only the client ends idle sessions.
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = 10 * time.Second
	srv.MaxRecipients = 50
	srv.MaxMessageBytes = 10 << 20
	if cfg.maxMsgBytes > 0 {
		srv.MaxMessageBytes = cfg.maxMsgBytes
	}
	srv.EnableDSN = cfg.dsn
	srv.EnableSMTPUTF8 = cfg.smtputf8
	srv.EnableREQUIRETLS = cfg.requireTLS
	srv.EnableBINARYMIME = cfg.binaryMIME
	srv.ErrorLog = discardLog{}
	if cfg.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cfg.cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(countingListener{Listener: l, n: &f.accepts, open: &f.open})
	}()
	t.Cleanup(func() {
		// Let sessions the client left end on their own first: go-smtp's
		// Server.Close races with a STARTTLS still being handled.
		deadline := time.Now().Add(5 * time.Second)
		for f.open.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		srv.Close()
		l.Close() // Close misses a listener Serve has not registered yet
		<-done
	})
	return f
}

func (f *fakeMX) messages() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.msgs...)
}

func (f *fakeMX) counts() (mails, resets, logouts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mails, f.resets, f.logouts
}

type fakeSession struct {
	mx   *fakeMX
	helo string
	tls  *tls.ConnectionState
	cur  received
}

func (s *fakeSession) Reset() {
	s.mx.mu.Lock()
	s.mx.resets++
	s.mx.mu.Unlock()
	s.cur = received{}
}

func (s *fakeSession) Logout() error {
	s.mx.mu.Lock()
	s.mx.logouts++
	s.mx.mu.Unlock()
	return nil
}

func (s *fakeSession) Mail(from string, opts *smtp.MailOptions) error {
	s.mx.mu.Lock()
	s.mx.mails++
	s.mx.mu.Unlock()
	if s.mx.mailErr != nil {
		if err := s.mx.mailErr(from); err != nil {
			return err
		}
	}
	s.cur = received{From: from, TLS: s.tls, Helo: s.helo}
	if opts != nil {
		s.cur.MailOpts = *opts
	}
	return nil
}

func (s *fakeSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.mx.rcptErr != nil {
		if err := s.mx.rcptErr(to); err != nil {
			return err
		}
	}
	s.cur.Rcpts = append(s.cur.Rcpts, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = *opts
	}
	s.cur.RcptOpts = append(s.cur.RcptOpts, o)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.mx.dataHook != nil {
		if err := s.mx.dataHook(); err != nil {
			return err
		}
	}
	s.cur.Data = b
	s.mx.mu.Lock()
	s.mx.msgs = append(s.mx.msgs, s.cur)
	s.mx.mu.Unlock()
	return nil
}

// ---- a fake resolver ----

var errNotFound = &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}

type fakeResolver struct {
	mu         sync.Mutex
	mx         map[string][]*net.MX
	mxErr      map[string]error
	mxSecure   bool
	addrs      map[string][]net.IPAddr
	addrSecure bool
	txt        map[string][]string
	tlsa       map[string][]TLSA // by host
	tlsaSecure bool
	tlsaErr    error
	tlsaAsked  []string
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{mx: map[string][]*net.MX{}, mxErr: map[string]error{}, addrs: map[string][]net.IPAddr{},
		txt: map[string][]string{}, tlsa: map[string][]TLSA{}}
}

func (r *fakeResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.mxErr[domain]; err != nil {
		return nil, r.mxSecure, err
	}
	mx, ok := r.mx[domain]
	if !ok {
		return nil, r.mxSecure, errNotFound
	}
	// a copy: Send sorts it
	out := make([]*net.MX, len(mx))
	for i, m := range mx {
		c := *m
		out[i] = &c
	}
	return out, r.mxSecure, nil
}

func (r *fakeResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.addrs[host]
	if !ok {
		return nil, r.addrSecure, errNotFound
	}
	return a, r.addrSecure, nil
}

func (r *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	txt, ok := r.txt[name]
	if !ok {
		return nil, errNotFound
	}
	return txt, nil
}

func (r *fakeResolver) LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tlsaAsked = append(r.tlsaAsked, fmt.Sprintf("_%d._tcp.%s", port, host))
	if r.tlsaErr != nil {
		return nil, false, r.tlsaErr
	}
	return r.tlsa[host], r.tlsaSecure, nil
}

func ips(s ...string) []net.IPAddr {
	var out []net.IPAddr
	for _, x := range s {
		out = append(out, net.IPAddr{IP: net.ParseIP(x)})
	}
	return out
}

// ---- a dialer mapping fake addresses to listeners ----

type fakeDialer struct {
	mu     sync.Mutex
	routes map[string]string // "192.0.2.1:25" -> "127.0.0.1:port"
	dialed []string
}

func (d *fakeDialer) route(from, to string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.routes == nil {
		d.routes = map[string]string{}
	}
	d.routes[from] = to
}

func (d *fakeDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	to, ok := d.routes[addr]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake dialer: no route to %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *fakeDialer) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

// closedAddr returns a 127.0.0.1 address where nothing listens: connecting
// is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ---- the MTA-STS policy host ----

// stsServer serves policy at https://mta-sts.<any>/.well-known/mta-sts.txt
// with a certificate for host from ca, and returns a client that reaches
// it for any name and trusts ca.
func stsServer(t *testing.T, ca *testCA, host, policy string) (*http.Client, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != host {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, policy)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, host)}}
	srv.StartTLS()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
		},
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &http.Client{Transport: tr}, &hits
}

// ---- transport and envelope helpers ----

// syncBuffer is a log sink for tests that read it while Sends write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var shortTimeouts = Timeouts{Connect: 5 * time.Second, Greeting: 5 * time.Second, Mail: 5 * time.Second,
	Rcpt: 5 * time.Second, DataInit: 5 * time.Second, DataBlock: 5 * time.Second, DataTerm: 5 * time.Second}

type env struct {
	tr   *Transport
	res  *fakeResolver
	dial *fakeDialer
	log  *syncBuffer
}

// newEnv builds a Transport over a fake resolver and dialer; edit adjusts
// the options first.
func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	e := &env{res: newFakeResolver(), dial: &fakeDialer{}, log: &syncBuffer{}}
	o := Options{Hostname: "posta.sender.test", Resolver: e.res, Dial: e.dial.Dial, Timeouts: shortTimeouts,
		IdleTime: -1, Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&o)
	}
	e.tr = New(o)
	t.Cleanup(func() { e.tr.Close() })
	return e
}

// oneMX points domain at one MX host, at fake address ip, served by mx.
func (e *env) oneMX(domain, host, ip string, mx *fakeMX) {
	e.res.mu.Lock()
	e.res.mx[domain] = []*net.MX{{Host: host + ".", Pref: 10}}
	e.res.addrs[host] = ips(ip)
	e.res.mu.Unlock()
	e.dial.route(net.JoinHostPort(ip, "25"), mx.addr)
}

const testBody = "From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\nBODY-MARKER-7f3a\r\n"

func bodyOf(s string) func() (io.Reader, error) {
	return func() (io.Reader, error) { return strings.NewReader(s), nil }
}

func envelope(rcpts ...string) queue.Envelope {
	e := queue.Envelope{ID: 42, MailFrom: "alice@sender.test", Domain: "example.test", Size: int64(len(testBody)),
		BodyType: "8BITMIME"}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, queue.Recipient{Address: r})
	}
	return e
}

func send(t *testing.T, e *env, en queue.Envelope) []queue.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := e.tr.Send(ctx, en, bodyOf(testBody))
	if len(res) != len(en.Recipients) {
		t.Fatalf("got %d results for %d recipients: %+v", len(res), len(en.Recipients), res)
	}
	for i, r := range res {
		if r.Recipient != en.Recipients[i].Address {
			t.Fatalf("result %d is for %q, want %q", i, r.Recipient, en.Recipients[i].Address)
		}
	}
	return res
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func smtpErr(code int, ec smtp.EnhancedCode, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}
