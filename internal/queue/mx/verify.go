package mx

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
)

// usable reports whether the transport can authenticate with r: DANE-TA(2)
// or DANE-EE(3), with a known selector and matching type. RFC 7672 3.1.3:
// PKIX-TA(0) and PKIX-EE(1) may be treated as unusable, and are.
func (r TLSA) usable() bool {
	return (r.Usage == 2 || r.Usage == 3) && r.Selector <= 1 && r.MatchingType <= 2
}

// matches reports whether cert is the one r names (RFC 6698 2.1.2, 2.1.3).
func (r TLSA) matches(cert *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case 0:
		data = cert.Raw
	case 1:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case 0:
		return bytes.Equal(data, r.Data)
	case 1:
		sum := sha256.Sum256(data)
		return bytes.Equal(sum[:], r.Data)
	case 2:
		sum := sha512.Sum512(data)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}

// verifyDANE authenticates the presented chain (leaf first) with the usable
// TLSA records. names are the reference identifiers for DANE-TA(2): the TLSA
// base domain (the MX host) and the next-hop domain (RFC 7672 3.2.2).
func verifyDANE(chain []*x509.Certificate, records []TLSA, names []string) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	leaf := chain[0]
	var taErr error
	for _, r := range records {
		switch {
		case !r.usable():
		case r.Usage == 3:
			// RFC 7672 3.1.1, 3.2.1: DANE-EE binds the key alone; no
			// name check, and the certificate's dates are ignored.
			if r.matches(leaf) {
				return nil
			}
		case r.Usage == 2:
			// RFC 7672 3.1.2: the trust anchor is in the chain the
			// server sent; the leaf must chain to it and carry one
			// of the reference names.
			for i := 1; i < len(chain); i++ {
				if !r.matches(chain[i]) {
					continue
				}
				if err := verifyToAnchor(chain, i, names); err != nil {
					taErr = err
					continue
				}
				return nil
			}
		}
	}
	if taErr != nil {
		return fmt.Errorf("DANE-TA: %w", taErr)
	}
	return errors.New("no TLSA record matches the certificate chain")
}

// verifyToAnchor checks that chain[0] chains to chain[ta] through the
// certificates between them, and that it is valid for one of names.
func verifyToAnchor(chain []*x509.Certificate, ta int, names []string) error {
	roots := x509.NewCertPool()
	roots.AddCert(chain[ta])
	inter := x509.NewCertPool()
	for _, c := range chain[1:ta] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return err
	}
	// RFC 7672 3.2.3: DNS-IDs, wildcard as the whole first label; Go's
	// VerifyHostname does exactly that and ignores the CN.
	var err error
	for _, n := range names {
		if err = chain[0].VerifyHostname(n); err == nil {
			return nil
		}
	}
	return err
}

// verifyPKIX checks the chain against roots (nil: the system's) and the
// host name, as MTA-STS (RFC 8461 4.2) and REQUIRETLS (RFC 8689 4.2.1 step
// 4) require.
func verifyPKIX(chain []*x509.Certificate, host string, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}
