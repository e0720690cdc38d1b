package ftpserver

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestExplicitTLS(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.cmd("FEAT").is(t, 211, "AUTH TLS")
	c.cmd("AUTH KERBEROS_V4").is(t, 504)
	// Plaintext pipelined after AUTH TLS must not run inside the TLS
	// session (command injection, ARCHITECTURE.md).
	if _, err := c.nc.Write([]byte("AUTH TLS\r\nUSER " + alice + "\r\n")); err != nil {
		t.Fatal(err)
	}
	c.read().is(t, 234)
	c.cfg = h.clientTLS()
	tc := tls.Client(c.nc, c.cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc = tc
	c.tp = newTP(tc)
	c.cmd("PASS %s", passwords[alice]).is(t, 503) // the injected USER was dropped
	c.cmd("AUTH TLS").is(t, 503)
	c.cmd("CCC").is(t, 534)
	c.cmd("PROT P").is(t, 503) // PBSZ first
	c.login(alice)
	c.protP()
	c.cmd("TYPE I").is(t, 200)
	data := bytes.Repeat([]byte("tls data \x00\xff"), 200000)
	c.stor("STOR", "t.bin", data, true).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "t.bin")); !bytes.Equal(got, data) {
		t.Fatal("TLS STOR differs")
	}
	if got := c.retr("t.bin", true); !bytes.Equal(got, data) {
		t.Fatal("TLS RETR differs")
	}
	if got := c.list("NLST", "", true); got != "t.bin\r\n" {
		t.Fatalf("TLS NLST %q", got)
	}
	c.cmd("STAT").is(t, 211, "data protection: P")
	// PROT C is allowed for loopback clients by default.
	c.cmd("PROT C").is(t, 200)
	if got := c.list("NLST", "", false); got != "t.bin\r\n" {
		t.Fatalf("clear NLST %q", got)
	}
	c.cmd("PROT S").is(t, 536)
	c.cmd("PROT X").is(t, 504)
}

// A protected data connection must resume a TLS session of its own control
// connection (RFC 4217 10.2); a fresh handshake, or a session of another
// control connection, gets 522.
func TestDataTLSMustResume(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.startTLS()
	c.login(alice)
	c.protP()
	os.WriteFile(h.file(alice, "f"), []byte("payload"), 0o644)
	c.cmd("TYPE I").is(t, 200)
	if got := c.retr("f", true); string(got) != "payload" {
		t.Fatal("resumed transfer failed")
	}

	// No session to resume.
	c.dcfg = h.clientTLS()
	addr := c.epsv()
	c.send("RETR f")
	dc := c.dataDial(addr, true)
	c.read().is(t, 150)
	io.ReadAll(dc) // the server closes it
	c.read().is(t, 522, "resume")

	// A session of another control connection (same client config, so its
	// ticket is in the cache).
	other := h.dial("ftp")
	other.startTLS()
	other.cmd("NOOP").is(t, 200) // reads the session ticket
	c.dcfg = other.cfg
	addr = c.epsv()
	c.send("RETR f")
	dc = c.dataDial(addr, true)
	c.read().is(t, 150)
	io.ReadAll(dc)
	c.read().is(t, 522, "resume")
	if !strings.Contains(h.logBuf.String(), "foreign_ticket=true") {
		t.Fatal("foreign ticket not recognised")
	}
	// The session still works with its own.
	c.dcfg = nil
	if got := c.retr("f", true); string(got) != "payload" {
		t.Fatal("transfer after refusals failed")
	}

	// AllowTLSWithoutResume turns the check off.
	lax := start(t, withOptions(func(o *Options) { o.AllowTLSWithoutResume = true }))
	l := lax.dial("ftp")
	l.startTLS()
	l.login(alice)
	l.protP()
	l.dcfg = lax.clientTLS()
	if got := l.list("NLST", "", true); got != "" {
		t.Fatalf("lax NLST %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	h := start(t)
	c := h.dial("ftps")
	r := c.cmd("FEAT").is(t, 211, "PBSZ", "PROT")
	if strings.Contains(r.msg, "AUTH TLS") {
		t.Fatal("AUTH TLS offered on the implicit-TLS listener")
	}
	c.cmd("AUTH TLS").is(t, 503)
	c.login(alice)
	c.protP()
	c.cmd("TYPE I").is(t, 200)
	c.stor("STOR", "i.bin", []byte("implicit"), true).is(t, 226)
	if got := c.retr("i.bin", true); string(got) != "implicit" {
		t.Fatalf("implicit RETR %q", got)
	}
}

func TestTLSPolicy(t *testing.T) {
	h := start(t, withOptions(func(o *Options) { o.TLSLogin, o.TLSData = TLSRequired, TLSRequired }))
	c := h.dial("ftp")
	c.cmd("USER %s", alice).is(t, 530, "TLS required")
	c.cmd("PASS %s", passwords[alice]).is(t, 503)
	// Anonymous sends no secret and may log in without TLS.
	c.cmd("USER anonymous").is(t, 331)
	c.cmd("PASS x@y").is(t, 230)
	c.epsv()
	c.cmd("NLST").is(t, 521)
	c.startTLS()
	c.login(alice)
	c.epsv()
	c.cmd("RETR x").is(t, 521) // PROT C
	c.protP()
	if got := c.list("NLST", "", true); got != "" {
		t.Fatalf("NLST %q", got)
	}
	// allow_plaintext_auth lets passwords through whatever the policy.
	p := start(t, withOptions(func(o *Options) { o.TLSLogin, o.AllowPlaintextAuth = TLSRequired, true }))
	pc := p.dial("ftp")
	pc.login(alice)
}

// close_notify ends every TLS data connection (RFC 4217 and RFC 8446 6.1:
// the receiver can tell a complete transfer from a cut one). TLS 1.2 keeps
// the alert's record type visible.
func TestTLSDataCloseNotify(t *testing.T) {
	h := start(t)
	os.MkdirAll(h.file(alice, ""), 0o700)
	os.WriteFile(h.file(alice, "f"), bytes.Repeat([]byte("q"), 100000), 0o644)
	cfg := h.clientTLS()
	cfg.MaxVersion = tls.VersionTLS12
	c2 := h.dial("ftp")
	c2.cmd("AUTH TLS").is(t, 234)
	c2.cfg = cfg
	tc := tls.Client(c2.nc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c2.nc, c2.tp = tc, newTP(tc)
	c2.login(alice)
	c2.protP()
	c2.cmd("TYPE I").is(t, 200)
	addr := c2.epsv()
	c2.send("RETR f")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rec := &recorder{Conn: raw}
	dc := tls.Client(rec, cfg)
	c2.read().is(t, 150)
	b, err := io.ReadAll(dc)
	if err != nil || len(b) != 100000 {
		t.Fatalf("read %d, %v", len(b), err)
	}
	c2.read().is(t, 226)
	if !dc.ConnectionState().DidResume {
		t.Fatal("did not resume")
	}
	types := rec.recordTypes()
	if len(types) == 0 || types[len(types)-1] != 21 {
		t.Fatalf("last TLS record type %v, want an alert (21): no close_notify", types)
	}
}

// recorder keeps what was read from a connection.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.buf.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

// recordTypes parses the TLS record headers of what was read.
func (r *recorder) recordTypes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buf.Bytes()
	var out []byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		out = append(out, b[0])
		if len(b) < 5+n {
			break
		}
		b = b[5+n:]
	}
	return out
}
