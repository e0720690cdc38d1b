package smtpserver

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"posta/internal/database"
	"posta/internal/delivery"
	"posta/internal/directory"
	"posta/internal/mailauth"
	"posta/internal/mailstore"
	"posta/internal/queue"
)

// txtDNS answers TXT queries from a map; every other name does not exist.
type txtDNS map[string][]string

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (d txtDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if t, ok := d[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return t, nil
	}
	return nil, nxdomain(name)
}

func (txtDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) { return nil, nxdomain(name) }
func (txtDNS) LookupIPAddr(_ context.Context, h string) ([]net.IPAddr, error) {
	return nil, nxdomain(h)
}
func (txtDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, nxdomain(addr)
}

// TestDMARCRejectAtDATA runs the MX listener over the real
// internal/delivery with a Verifier on a fake DNS: a message failing DMARC
// under p=reject gets 550 5.7.1 with the reason at DATA and is not stored;
// the session goes on, and a message passing DMARC is stored with the
// Authentication-Results header after Return-Path.
func TestDMARCRejectAtDATA(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	db, err := database.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(ctx, db, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before start, so it runs after the servers have stopped.
	t.Cleanup(func() { st.Close(); db.Close() })
	if err := dir.AddDomain(ctx, testDomain); err != nil {
		t.Fatal(err)
	}
	if err := dir.AddAccount(ctx, "bob@example.test", testUsers["bob@example.test"], directory.AccountOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := txtDNS{
		"rj.test": {"v=spf1 ip4:192.0.2.10 -all"}, "_dmarc.rj.test": {"v=DMARC1; p=reject"},
		// The test client connects from 127.0.0.1.
		"ok.test": {"v=spf1 ip4:127.0.0.1 -all"}, "_dmarc.ok.test": {"v=DMARC1; p=reject"},
	}
	del := delivery.New(delivery.Options{Directory: dir, Store: st, Queue: q, MaxSize: 1 << 20,
		Verifier: &mailauth.Verifier{Hostname: testHostname, Resolver: dns}})
	h := start(t, withDeliverer(del))

	c := dial(t, h.addr["smtp"])
	c.ehlo("mx.rj.test")
	r := c.send("ceo@rj.test", []string{"bob@example.test"},
		"From: CEO <ceo@rj.test>\r\nTo: bob@example.test\r\nSubject: wire the money\r\n\r\nToday.\r\n.\r\n")
	r.is(t, 550, "5.7.1")
	if !strings.Contains(r.text, "rj.test") || !strings.Contains(r.text, "reject") {
		t.Fatalf("reply %q does not say why", r)
	}
	mb, err := st.Mailbox(ctx, "bob@example.test", "INBOX")
	if err == nil {
		if metas, _ := st.Messages(ctx, mb.ID); len(metas) != 0 {
			t.Fatalf("rejected message stored: %d messages", len(metas))
		}
	}

	c.send("news@ok.test", []string{"bob@example.test"},
		"From: news@ok.test\r\nTo: bob@example.test\r\nSubject: hello\r\n\r\nHello.\r\n.\r\n").is(t, 250, "2.0.0")
	c.cmd("QUIT").is(t, 221, "2.0.0")
	mb, err = st.Mailbox(ctx, "bob@example.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	metas, err := st.Messages(ctx, mb.ID)
	if err != nil || len(metas) != 1 {
		t.Fatalf("INBOX: %d messages, %v", len(metas), err)
	}
	m, err := st.Message(ctx, mb.ID, metas[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := st.OpenBody(ctx, m.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	rest, ok := strings.CutPrefix(string(b), "Return-Path: <news@ok.test>\r\nAuthentication-Results: "+testHostname+";")
	if !ok || !strings.Contains(rest, "dmarc=pass") {
		t.Fatalf("stored %q", b)
	}
	_, rest, _ = strings.Cut(rest, "\r\nReceived: ")
	if !strings.HasSuffix(rest, "\r\nFrom: news@ok.test\r\nTo: bob@example.test\r\nSubject: hello\r\n\r\nHello.\r\n") {
		t.Fatalf("stored %q", b)
	}
}
