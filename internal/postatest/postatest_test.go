package postatest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"posta/internal/config"
	"posta/internal/server"
)

// The harness must give a running server with the users in place, a CA pool
// that verifies a real handshake, and a data dir that survives a restart.
func TestHarness(t *testing.T) {
	ctx := context.Background()
	in := Start(t, WithServerOption(server.WithProtocol("imap", newTLSEcho)))
	for addr, pw := range Users {
		if got, err := in.Directory.VerifyPassword(ctx, addr, pw); err != nil || got != addr {
			t.Fatalf("VerifyPassword(%s) = %q, %v", addr, got, err)
		}
	}
	c, err := tls.Dial("tcp", in.Addr(t, "imaps"), in.ClientTLS())
	if err != nil {
		t.Fatalf("TLS to imaps with the harness pool: %v", err)
	}
	c.Close()
	if in.Port(t, "imaps") == 0 {
		t.Fatal("no port")
	}

	// The PEM file for outside clients holds the same certificate.
	b, err := os.ReadFile(in.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: in.CAs, DNSName: "localhost"}); err != nil {
		t.Fatalf("cert file not trusted by CAs: %v", err)
	}

	dir, fp := in.DataDir, in.TLS.Fingerprint()
	in.Stop(t)
	again := Start(t, WithDataDir(dir), WithoutUsers(), WithConfig(func(c *config.Config) { c.IMAP.Enabled = false }))
	if _, err := again.Directory.VerifyPassword(ctx, "alice@example.test", Users["alice@example.test"]); err != nil {
		t.Fatalf("user lost across restart: %v", err)
	}
	if again.TLS.Fingerprint() != fp {
		t.Fatal("certificate regenerated across restart")
	}
}
