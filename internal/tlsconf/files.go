package tlsconf

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// loadFiles reads a configured pair. Each error names the file at fault, since
// the operator's next step is to look at that file.
func loadFiles(certFile, keyFile string) (*served, error) {
	certPEM, certInfo, err := readWithInfo(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file: %w", err)
	}
	keyPEM, keyInfo, err := readWithInfo(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file: %w", err)
	}
	// Check the certificate on its own first, so tls.X509KeyPair's errors
	// below can only be about the key or the pairing.
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file %s: %w", certFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file %s with certificate file %s: %w", keyFile, certFile, err)
	}
	s, err := newServed(&pair)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file %s: %w", certFile, err)
	}
	s.certInfo, s.keyInfo = certInfo, keyInfo
	return s, nil
}

// readWithInfo returns the contents together with the FileInfo of the same
// open file, so the recorded identity is that of the bytes read even if the
// path is replaced meanwhile.
func readWithInfo(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, info, nil
}

func checkCertPEM(b []byte) error {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return nil
		}
	}
}

// reloadFiles swaps in the files if they changed since the served pair was
// read (always, with force). The served pair keeps its old FileInfo on
// failure, so the next check tries again.
func (m *Manager) reloadFiles(force bool) error {
	old := m.cur.Load()
	if !force {
		ci, err := os.Stat(m.o.CertFile)
		if err != nil {
			return fmt.Errorf("tlsconf: certificate file: %w", err)
		}
		ki, err := os.Stat(m.o.KeyFile)
		if err != nil {
			return fmt.Errorf("tlsconf: key file: %w", err)
		}
		if sameVersion(old.certInfo, ci) && sameVersion(old.keyInfo, ki) {
			return nil
		}
	}
	s, err := loadFiles(m.o.CertFile, m.o.KeyFile)
	if err != nil {
		return err
	}
	m.cur.Store(s)
	if s.fingerprint != old.fingerprint {
		m.log.Info("tls: certificate reloaded", "cert_file", m.o.CertFile,
			"fingerprint", s.fingerprint, "not_after", s.chain[0].NotAfter, "previous", old.fingerprint)
	}
	m.warnUnfit(s)
	return nil
}

// sameVersion compares more than the modification time: certbot switches a
// symlink to a new file (new inode), and a copy may preserve the old mtime.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// warnUnfit logs, without refusing, a configured certificate that clients
// will reject: the operator chose the files, and serving something beats
// serving nothing while they fix it.
func (m *Manager) warnUnfit(s *served) {
	if reason := m.unfit(s.chain[0], m.o.Now(), false); reason != "" {
		m.log.Warn("tls: configured certificate "+reason, "cert_file", m.o.CertFile,
			"not_after", s.chain[0].NotAfter, "fingerprint", s.fingerprint)
	}
}
