package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// leafOnDisk parses cert.pem as written.
func leafOnDisk(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("cert.pem: no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func TestGenerateCreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	log, logs := testLogger(t)
	// Upper case and a trailing dot: the certificate must carry the
	// normalised name, or clients comparing "mail.example.test" would fail.
	m, err := Load(Options{Dir: dir, Hostname: "Mail.Example.Test.", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Generated() {
		t.Error("Generated() = false for a generated certificate")
	}
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("dir mode %o, want 700", got)
	}
	if got := perm(t, filepath.Join(dir, CertFileName)); got != 0o644 {
		t.Errorf("cert.pem mode %o, want 644", got)
	}
	if got := perm(t, filepath.Join(dir, KeyFileName)); got != 0o600 {
		t.Errorf("key.pem mode %o, want 600", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("dir holds %d entries, want cert.pem and key.pem only (temp files left?)", len(ents))
	}

	leaf := m.Leaf()
	if !slices.Equal(leaf.DNSNames, []string{"mail.example.test", "localhost"}) {
		t.Errorf("DNSNames %q", leaf.DNSNames)
	}
	if got := ipStrings(leaf.IPAddresses); !slices.Equal(got, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IPAddresses %q", got)
	}
	if !leaf.IsCA || !leaf.BasicConstraintsValid || leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not usable as a trust anchor: IsCA=%v BasicConstraintsValid=%v KeyUsage=%b",
			leaf.IsCA, leaf.BasicConstraintsValid, leaf.KeyUsage)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage %v lacks serverAuth", leaf.ExtKeyUsage)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if v := leaf.NotAfter.Sub(leaf.NotBefore); v < 300*24*time.Hour || v >= 365*24*time.Hour {
		t.Errorf("validity %v, want just under a year", v)
	}
	if m.Fingerprint() != fingerprintOf(leaf.Raw) {
		t.Errorf("Fingerprint %s, want %s", m.Fingerprint(), fingerprintOf(leaf.Raw))
	}
	if disk := leafOnDisk(t, dir); !disk.Equal(leaf) {
		t.Error("cert.pem differs from the served leaf")
	}
	// The pool must verify every name, through the name constraints the
	// certificate puts on itself.
	for _, name := range []string{"mail.example.test", "localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: m.CertPool()}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if !strings.Contains(logs.String(), "no certificate yet") {
		t.Error("first generation not logged with its reason")
	}
}

func TestGeneratedIPHostname(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"[2001:DB8::1]", "2001:db8::1"},
		{"127.0.0.1", ""}, // already a fixed name: not listed twice
	} {
		t.Run(tc.host, func(t *testing.T) {
			m, err := Load(Options{Dir: t.TempDir(), Hostname: tc.host})
			if err != nil {
				t.Fatal(err)
			}
			leaf := m.Leaf()
			if !slices.Equal(leaf.DNSNames, []string{"localhost"}) {
				t.Errorf("DNSNames %q, want only localhost", leaf.DNSNames)
			}
			want := []string{"127.0.0.1", "::1"}
			if tc.want != "" {
				want = append(want, tc.want)
			}
			slices.Sort(want)
			if got := ipStrings(leaf.IPAddresses); !slices.Equal(got, want) {
				t.Errorf("IPAddresses %q, want %q", got, want)
			}
			if err := leaf.VerifyHostname(tc.host); err != nil {
				t.Errorf("VerifyHostname(%s): %v", tc.host, err)
			}
		})
	}
}

func TestGeneratedReusedOnLaterStart(t *testing.T) {
	dir := t.TempDir()
	first, err := Load(Options{Dir: dir, Hostname: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger(t)
	second, err := Load(Options{Dir: dir, Hostname: "MAIL.example.test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if first.Fingerprint() != second.Fingerprint() {
		t.Errorf("second start served %s, first %s", second.Fingerprint(), first.Fingerprint())
	}
	if strings.Contains(logs.String(), "generating") {
		t.Errorf("second start regenerated:\n%s", logs)
	}
}

func TestGeneratedRegenerates(t *testing.T) {
	otherKey := func(t *testing.T) []byte {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name string
		// spoil changes the directory and returns the second start's
		// hostname and clock time.
		spoil  func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time)
		reason string // "" means the certificate must be reused
	}{
		{"hostname changed", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			return "other.example.test", time.Now()
		}, "does not cover hostname"},
		{"31 days left", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			return "mail.example.test", leaf.NotAfter.Add(-31 * 24 * time.Hour)
		}, ""},
		{"29 days left", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			return "mail.example.test", leaf.NotAfter.Add(-29 * 24 * time.Hour)
		}, "expires within 30 days"},
		{"expired", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			return "mail.example.test", leaf.NotAfter.Add(time.Hour)
		}, "expired on"},
		{"corrupt cert", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			b := []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
			if err := os.WriteFile(filepath.Join(dir, CertFileName), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return "mail.example.test", time.Now()
		}, "unparsable"},
		{"truncated cert", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			p := filepath.Join(dir, CertFileName)
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			return "mail.example.test", time.Now()
		}, "unparsable"},
		{"key of another pair", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			if err := os.WriteFile(filepath.Join(dir, KeyFileName), otherKey(t), 0o600); err != nil {
				t.Fatal(err)
			}
			return "mail.example.test", time.Now()
		}, "unparsable"},
		{"key missing", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			if err := os.Remove(filepath.Join(dir, KeyFileName)); err != nil {
				t.Fatal(err)
			}
			return "mail.example.test", time.Now()
		}, "key file missing"},
		{"cert missing", func(t *testing.T, dir string, leaf *x509.Certificate) (string, time.Time) {
			if err := os.Remove(filepath.Join(dir, CertFileName)); err != nil {
				t.Fatal(err)
			}
			return "mail.example.test", time.Now()
		}, "no certificate yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := Load(Options{Dir: dir, Hostname: "mail.example.test"})
			if err != nil {
				t.Fatal(err)
			}
			host, now := tc.spoil(t, dir, first.Leaf())
			log, logs := testLogger(t)
			second, err := Load(Options{Dir: dir, Hostname: host, Logger: log, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if second.Fingerprint() != first.Fingerprint() {
					t.Errorf("regenerated; log:\n%s", logs)
				}
				return
			}
			if second.Fingerprint() == first.Fingerprint() {
				t.Fatal("certificate not regenerated")
			}
			if !strings.Contains(logs.String(), "level=INFO msg=\"tls: generating self-signed certificate\"") ||
				!strings.Contains(logs.String(), tc.reason) {
				t.Errorf("log lacks the info line with reason %q:\n%s", tc.reason, logs)
			}
			leaf := second.Leaf()
			if err := leaf.VerifyHostname(host); err != nil {
				t.Errorf("new certificate: %v", err)
			}
			if leaf.NotAfter.Before(now.Add(300 * 24 * time.Hour)) {
				t.Errorf("new certificate ends %v, clock at %v", leaf.NotAfter, now)
			}
			if !leafOnDisk(t, dir).Equal(leaf) {
				t.Error("new certificate not written to cert.pem")
			}
			// And the written pair is what a third start reuses.
			third, err := Load(Options{Dir: dir, Hostname: host, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if third.Fingerprint() != second.Fingerprint() {
				t.Error("regenerated pair not reused on the next start")
			}
		})
	}
}

// A server running for most of a year must replace the certificate before it
// expires, without a restart.
func TestGeneratedRenewedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(time.Now())
	log, logs := testLogger(t)
	m, err := Load(Options{Dir: dir, Hostname: "mail.example.test", Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m.ServerConfig("imap"))
	client := func() *tls.Config {
		// The client verifies against the fake clock too, and trusts what
		// the manager serves now.
		return &tls.Config{RootCAs: m.CertPool(), ServerName: "localhost", Time: clk.Now}
	}
	st, err := dial(addr, client())
	if err != nil {
		t.Fatal(err)
	}
	old := peerFingerprint(st)

	clk.Set(m.Leaf().NotAfter.Add(-31 * 24 * time.Hour))
	st, err = dial(addr, client())
	if err != nil {
		t.Fatal(err)
	}
	if peerFingerprint(st) != old {
		t.Fatal("renewed before the 30-day window")
	}

	clk.Set(m.Leaf().NotAfter.Add(-10 * 24 * time.Hour))
	oldPool := client()
	st, err = dial(addr, oldPool) // this handshake triggers the renewal
	if err == nil && peerFingerprint(st) == old {
		t.Fatal("still serving the expiring certificate")
	}
	st, err = dial(addr, client())
	if err != nil {
		t.Fatal(err)
	}
	if peerFingerprint(st) == old || peerFingerprint(st) != m.Fingerprint() {
		t.Errorf("served %s, old %s, manager says %s", peerFingerprint(st), old, m.Fingerprint())
	}
	if !strings.Contains(logs.String(), "expires within 30 days") {
		t.Errorf("renewal reason not logged:\n%s", logs)
	}
	if !leafOnDisk(t, dir).Equal(m.Leaf()) {
		t.Error("renewed certificate not written to disk")
	}
}

func TestGenerateNeedsDir(t *testing.T) {
	if _, err := Load(Options{Hostname: "mail.example.test"}); err == nil {
		t.Fatal("Load without files or Dir succeeded")
	}
}
