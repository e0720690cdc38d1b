package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Names of the generated files inside Options.Dir.
const (
	CertFileName = "cert.pem"
	KeyFileName  = "key.pem"
)

// selfSignedValidity stays under a year: clients cap what they accept
// (Apple: 825 days for user-trusted certificates, 398 for public ones), and
// the 30-day renewal window replaces it well before the end anyway.
const selfSignedValidity = 364 * 24 * time.Hour

// fixedNames are covered by every generated certificate besides the
// configured hostname, so local clients and tests can verify without
// knowing that hostname.
var fixedNames = []string{"localhost", "127.0.0.1", "::1"}

// loadOrGenerate reuses the pair in Dir if it is still fit, otherwise writes a
// new one.
func (m *Manager) loadOrGenerate() (*served, error) {
	if m.o.Dir == "" {
		return nil, errors.New("tlsconf: no certificate files and no directory for a generated certificate")
	}
	if err := os.MkdirAll(m.o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	s, reason := m.readGenerated()
	if reason == "" {
		m.log.Debug("tls: reusing self-signed certificate", "dir", m.o.Dir, "fingerprint", s.fingerprint)
		return s, nil
	}
	m.log.Info("tls: generating self-signed certificate", "reason", reason, "dir", m.o.Dir)
	return m.generate()
}

// readGenerated returns the stored pair, or why it cannot be used.
func (m *Manager) readGenerated() (*served, string) {
	certPEM, err := os.ReadFile(filepath.Join(m.o.Dir, CertFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "no certificate yet"
	}
	if err != nil {
		return nil, "unreadable: " + err.Error()
	}
	keyPEM, err := os.ReadFile(filepath.Join(m.o.Dir, KeyFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "key file missing"
	}
	if err != nil {
		return nil, "unreadable: " + err.Error()
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "unparsable: " + err.Error()
	}
	s, err := newServed(&pair)
	if err != nil {
		return nil, "unparsable: " + err.Error()
	}
	if reason := m.unfit(s.chain[0], m.o.Now(), true); reason != "" {
		return nil, reason
	}
	return s, ""
}

// unfit says why leaf should not be served at now, or "". The generated
// certificate must also cover fixedNames; configured files need not.
func (m *Manager) unfit(leaf *x509.Certificate, now time.Time, generated bool) string {
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Add(renewBefore).After(leaf.NotAfter):
		return fmt.Sprintf("expires within 30 days, on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	names := []string{}
	if m.o.Hostname != "" {
		names = append(names, m.o.Hostname)
	}
	if generated {
		names = append(names, fixedNames...)
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return fmt.Sprintf("does not cover hostname %q", n)
		}
	}
	return ""
}

// renewGenerated replaces the served self-signed certificate if it became
// unfit while the server ran (a year-long uptime reaches the renewal window).
func (m *Manager) renewGenerated(now time.Time) error {
	reason := m.unfit(m.cur.Load().chain[0], now, true)
	if reason == "" {
		return nil
	}
	m.log.Info("tls: generating self-signed certificate", "reason", reason, "dir", m.o.Dir)
	s, err := m.generate()
	if err != nil {
		return err
	}
	m.cur.Store(s)
	return nil
}

// generate creates and stores a new pair. The key is written first: a crash
// between the two renames leaves a key that does not match the old
// certificate, which the next start detects and regenerates.
func (m *Manager) generate() (*served, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tlsconf: generating serial: %w", err)
	}

	var dnsNames []string
	var ips []net.IP
	var ipRanges []*net.IPNet
	names := fixedNames
	if m.o.Hostname != "" && !slices.Contains(fixedNames, m.o.Hostname) {
		names = append([]string{m.o.Hostname}, fixedNames...)
	}
	for _, n := range names {
		// An IP literal belongs in IPAddresses (RFC 5280 4.2.1.6 iPAddress):
		// Go, OpenSSL and browsers match an IP against those alone.
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			bits := 8 * len(ip)
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			ipRanges = append(ipRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	cn := m.o.Hostname
	if cn == "" {
		cn = "localhost"
	}

	now := m.o.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Posta self-signed"}},
		// An hour back so a client whose clock lags a little still accepts it.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(selfSignedValidity),
		DNSNames:    dnsNames,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A CA with certSign so the certificate can be imported as a trust
		// anchor: OpenSSL only treats a self-signed certificate as its own
		// issuer when its key usage allows signing certificates.
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// A trusted CA could vouch for any name if its key leaked from the
		// data directory. Name constraints limit it to the names it serves.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         dnsNames,
		PermittedIPRanges:           ipRanges,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: encoding key: %w", err)
	}

	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(filepath.Join(m.o.Dir, KeyFileName), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(m.o.Dir, CertFileName), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	s, err := newServed(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	if err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	m.log.Info("tls: self-signed certificate written", "dir", m.o.Dir,
		"fingerprint", s.fingerprint, "not_after", s.chain[0].NotAfter)
	return s, nil
}

// writeFileAtomic replaces path so that a reader, or a crash, sees either the
// old contents or the new, never a torn file: temp file in the same directory,
// fsync, rename, fsync the directory so the rename itself is durable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Chmod, not the umask-filtered create mode, so the result is exactly
	// perm; CreateTemp starts at 0600 so the key is never briefly readable.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
