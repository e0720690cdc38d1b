package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// issued is a certificate with its key, as PEM and parsed.
type issued struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// issue makes a certificate for names, signed by parent (self-signed when
// nil); isCA makes an issuer for further calls.
func issue(t *testing.T, parent *issued, isCA bool, names ...string) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "test " + strings.Join(names, ",")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{
		cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// writeAt writes a file and sets its mtime, so a rewrite in place is seen
// as a change however coarse the filesystem's timestamps are.
func writeAt(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type pairFiles struct{ dir, cert, key string }

func newPairFiles(t *testing.T) pairFiles {
	dir := t.TempDir()
	return pairFiles{dir, filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")}
}

func (p pairFiles) write(t *testing.T, certPEM, keyPEM []byte, mtime time.Time) {
	t.Helper()
	writeAt(t, p.cert, certPEM, mtime)
	writeAt(t, p.key, keyPEM, mtime)
}

func TestLoadFiles(t *testing.T) {
	ca := issue(t, nil, true)
	leaf := issue(t, ca, false, "mail.example.test", "localhost")
	p := newPairFiles(t)
	p.write(t, append(append([]byte{}, leaf.certPEM...), ca.certPEM...), leaf.keyPEM, time.Now())
	genDir := filepath.Join(t.TempDir(), "tls")

	m, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Dir: genDir, Hostname: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Generated() {
		t.Error("Generated() = true with files configured")
	}
	if !m.Leaf().Equal(leaf.cert) {
		t.Errorf("Leaf is %q, want the first certificate of the file", m.Leaf().Subject)
	}
	if m.Fingerprint() != fingerprintOf(leaf.cert.Raw) {
		t.Error("Fingerprint is not the leaf's")
	}
	if _, err := os.Stat(genDir); !os.IsNotExist(err) {
		t.Errorf("generated directory touched with files configured: %v", err)
	}

	addr := serveTLS(t, m.ServerConfig("smtp"))
	st, err := dial(addr, &tls.Config{RootCAs: m.CertPool(), ServerName: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.PeerCertificates) != 2 || peerFingerprint(st) != m.Fingerprint() {
		t.Errorf("served %d certificates, leaf %s", len(st.PeerCertificates), peerFingerprint(st))
	}
	// The pool holds the issuer, not only the leaf: a sibling certificate
	// from the same CA verifies against it.
	sibling := issue(t, ca, false, "localhost")
	if _, err := sibling.cert.Verify(x509.VerifyOptions{Roots: m.CertPool(), DNSName: "localhost"}); err != nil {
		t.Errorf("issuer missing from CertPool: %v", err)
	}
}

func TestLoadFilesWarnsAboutHostname(t *testing.T) {
	leaf := issue(t, nil, false, "localhost")
	p := newPairFiles(t)
	p.write(t, leaf.certPEM, leaf.keyPEM, time.Now())
	log, logs := testLogger(t)
	if _, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Hostname: "mail.example.test", Logger: log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "does not cover hostname") {
		t.Errorf("no warning for a certificate without the hostname:\n%s", logs)
	}
}

func TestLoadFilesErrors(t *testing.T) {
	a := issue(t, nil, false, "localhost")
	b := issue(t, nil, false, "localhost")
	garbage := []byte("this is not PEM\n")
	for _, tc := range []struct {
		name            string
		certPEM, keyPEM []byte // nil: file absent
		only            string // "cert" or "key": configure just that one
		want            []string
	}{
		{"cert only", a.certPEM, a.keyPEM, "cert", []string{"set together"}},
		{"key only", a.certPEM, a.keyPEM, "key", []string{"set together"}},
		{"cert missing", nil, a.keyPEM, "", []string{"certificate file", "fullchain.pem", "no such file"}},
		{"key missing", a.certPEM, nil, "", []string{"key file", "privkey.pem", "no such file"}},
		{"cert garbage", garbage, a.keyPEM, "", []string{"certificate file", "fullchain.pem", "no PEM CERTIFICATE"}},
		{"key garbage", a.certPEM, garbage, "", []string{"key file", "privkey.pem"}},
		{"key of another certificate", a.certPEM, b.keyPEM, "", []string{"key file", "privkey.pem", "fullchain.pem", "does not match"}},
		{"files swapped", a.keyPEM, a.certPEM, "", []string{"certificate file", "fullchain.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPairFiles(t)
			if tc.certPEM != nil {
				writeAt(t, p.cert, tc.certPEM, time.Now())
			}
			if tc.keyPEM != nil {
				writeAt(t, p.key, tc.keyPEM, time.Now())
			}
			o := Options{CertFile: p.cert, KeyFile: p.key, Dir: t.TempDir()}
			switch tc.only {
			case "cert":
				o.KeyFile = ""
			case "key":
				o.CertFile = ""
			}
			_, err := Load(o)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A renewal written over the configured files is served after the next
// check, not before, and CertPool follows it.
func TestReloadOnChange(t *testing.T) {
	a := issue(t, nil, false, "localhost")
	b := issue(t, nil, false, "localhost")
	p := newPairFiles(t)
	t0 := time.Now().Add(-time.Hour)
	p.write(t, a.certPEM, a.keyPEM, t0)
	clk := newClock(time.Now())
	log, logs := testLogger(t)
	m, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Logger: log, Now: clk.Now, CheckInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig("imap"))
	poolA := m.CertPool()
	client := func(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool, ServerName: "localhost"} }

	st, err := dial(addr, client(poolA))
	if err != nil || peerFingerprint(st) != fingerprintOf(a.cert.Raw) {
		t.Fatalf("first handshake: %v, served %s", err, peerFingerprint(st))
	}

	p.write(t, b.certPEM, b.keyPEM, t0.Add(time.Minute))
	clk.Add(59 * time.Second)
	st, err = dial(addr, client(poolA))
	if err != nil || peerFingerprint(st) != fingerprintOf(a.cert.Raw) {
		t.Fatalf("within the check interval: %v, served %s; want the old certificate", err, peerFingerprint(st))
	}

	clk.Add(2 * time.Second)
	if _, err := dial(addr, client(poolA)); err == nil {
		t.Fatal("after the interval the old pool still verifies: renewal not served")
	}
	if m.Fingerprint() != fingerprintOf(b.cert.Raw) {
		t.Fatalf("Fingerprint %s, want the new certificate", m.Fingerprint())
	}
	st, err = dial(addr, client(m.CertPool()))
	if err != nil || peerFingerprint(st) != fingerprintOf(b.cert.Raw) {
		t.Fatalf("with the new pool: %v, served %s", err, peerFingerprint(st))
	}
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Errorf("reload not logged:\n%s", logs)
	}
}

// Certbot's live/ names are symlinks switched to new files in archive/; the
// change must be seen even when size and mtime happen to match.
func TestReloadSymlinkSwitch(t *testing.T) {
	a := issue(t, nil, false, "localhost")
	b := issue(t, nil, false, "localhost")
	dir := t.TempDir()
	mtime := time.Now().Add(-time.Hour)
	for i, pair := range []*issued{a, b} {
		n := string(rune('1' + i))
		writeAt(t, filepath.Join(dir, "cert"+n+".pem"), pair.certPEM, mtime)
		writeAt(t, filepath.Join(dir, "key"+n+".pem"), pair.keyPEM, mtime)
	}
	link := func(target, name string) {
		tmp := filepath.Join(dir, name+".new")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("cert1.pem", "cert.pem")
	link("key1.pem", "key.pem")
	clk := newClock(time.Now())
	m, err := Load(Options{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig())
	link("cert2.pem", "cert.pem")
	link("key2.pem", "key.pem")
	clk.Add(DefaultCheckInterval)
	st, err := dial(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if peerFingerprint(st) != fingerprintOf(b.cert.Raw) {
		t.Error("symlink switch not noticed")
	}
}

// A renewal caught halfway (new certificate, old key) must not take the
// server down: the old pair stays until the files agree again.
func TestReloadKeepsOldPairOnMismatch(t *testing.T) {
	a := issue(t, nil, false, "localhost")
	b := issue(t, nil, false, "localhost")
	p := newPairFiles(t)
	t0 := time.Now().Add(-time.Hour)
	p.write(t, a.certPEM, a.keyPEM, t0)
	clk := newClock(time.Now())
	log, logs := testLogger(t)
	m, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig("imap"))
	client := &tls.Config{RootCAs: m.CertPool(), ServerName: "localhost"}

	writeAt(t, p.cert, b.certPEM, t0.Add(time.Minute))
	clk.Add(DefaultCheckInterval)
	st, err := dial(addr, client)
	if err != nil || peerFingerprint(st) != fingerprintOf(a.cert.Raw) {
		t.Fatalf("half-written renewal: %v, served %s; want the old pair", err, peerFingerprint(st))
	}
	if !strings.Contains(logs.String(), "keeping the current certificate") || !strings.Contains(logs.String(), p.key) {
		t.Errorf("failed reload not logged with the key file:\n%s", logs)
	}
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), p.key) {
		t.Errorf("Reload: %v, want an error naming %s", err, p.key)
	}
	if m.Fingerprint() != fingerprintOf(a.cert.Raw) {
		t.Error("failed Reload replaced the certificate")
	}

	writeAt(t, p.key, b.keyPEM, t0.Add(2*time.Minute))
	clk.Add(DefaultCheckInterval)
	st, err = dial(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil || peerFingerprint(st) != fingerprintOf(b.cert.Raw) {
		t.Fatalf("completed renewal: %v, served %s; want the new pair", err, peerFingerprint(st))
	}
}

func TestExplicitReload(t *testing.T) {
	a := issue(t, nil, false, "localhost")
	b := issue(t, nil, false, "localhost")
	p := newPairFiles(t)
	t0 := time.Now().Add(-time.Hour)
	p.write(t, a.certPEM, a.keyPEM, t0)
	clk := newClock(time.Now()) // never moves: only Reload can switch
	m, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Same mtime and size as before: Reload must not depend on them.
	p.write(t, b.certPEM, b.keyPEM, t0)
	if m.Fingerprint() != fingerprintOf(a.cert.Raw) {
		t.Fatal("switched before Reload")
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if m.Fingerprint() != fingerprintOf(b.cert.Raw) {
		t.Error("Reload did not switch to the new files")
	}
}

// Handshakes racing with non-atomic rewrites and Reload calls all succeed,
// each serving one whole pair: a torn file is never served, only skipped.
func TestReloadConcurrentWithHandshakes(t *testing.T) {
	pairs := []*issued{issue(t, nil, false, "localhost"), issue(t, nil, false, "localhost")}
	valid := map[string]bool{}
	for _, p := range pairs {
		valid[fingerprintOf(p.cert.Raw)] = true
	}
	p := newPairFiles(t)
	t0 := time.Now().Add(-time.Hour)
	p.write(t, pairs[0].certPEM, pairs[0].keyPEM, t0)
	clk := newClock(time.Now())
	m, err := Load(Options{CertFile: p.cert, KeyFile: p.key, Now: clk.Now, CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig("imap"))

	errs := make(chan error, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 20; i++ {
			pair := pairs[i%2]
			mtime := t0.Add(time.Duration(i) * time.Minute)
			// Not p.write: t.Fatal must not be called off the test goroutine.
			for path, data := range map[string][]byte{p.cert: pair.certPEM, p.key: pair.keyPEM} {
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Error(err)
				}
				if err := os.Chtimes(path, mtime, mtime); err != nil {
					t.Error(err)
				}
			}
			clk.Add(time.Second)
			m.Reload() // may fail on a torn pair: that is the point
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				st, err := dial(addr, &tls.Config{InsecureSkipVerify: true})
				if err == nil && !valid[peerFingerprint(st)] {
					err = fmt.Errorf("served unknown certificate %s", peerFingerprint(st))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
