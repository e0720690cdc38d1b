package smtpserver

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"posta/internal/database"
	"posta/internal/directory"
)

func unb64(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("server sent bad base64 %q: %v", s, err)
	}
	return string(b)
}

// scramExchange runs SCRAM-SHA-256 (or -PLUS) through go-smtp's AUTH loop
// with the xdg-go/scram client and returns the final reply. RFC 4954 4: the
// server-final message ("v=...") comes as a 334 challenge and the client
// answers with an empty line before 235.
func scramExchange(t *testing.T, c *client, mech, user, pass string, initial bool,
	conv func(*scram.Client) *scram.ClientConversation) reply {
	t.Helper()
	cl, err := scram.SHA256.NewClient(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	cv := conv(cl)
	first, err := cv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	var r reply
	if initial {
		r = c.cmd("AUTH %s %s", mech, b64(first))
	} else {
		c.cmd("AUTH %s", mech).is(t, 334, "")
		r = c.cmd("%s", b64(first))
	}
	if r.code != 334 {
		return r
	}
	final, err := cv.Step(unb64(t, r.text))
	if err != nil {
		t.Fatalf("client-final: %v", err)
	}
	r = c.cmd("%s", b64(final))
	if r.code != 334 {
		return r
	}
	serverFinal := unb64(t, r.text)
	if _, err := cv.Step(serverFinal); err != nil || !cv.Valid() {
		t.Fatalf("server signature %q not accepted by the client: %v", serverFinal, err)
	}
	return c.cmd("")
}

func TestAuthSCRAM(t *testing.T) {
	h := start(t)
	plainConv := func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversation() }

	t.Run("SCRAM-SHA-256 with initial response", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		scramExchange(t, c, "SCRAM-SHA-256", "alice@example.test", testUsers["alice@example.test"], true, plainConv).
			is(t, 235, "2.0.0")
		c.send("alice@example.test", []string{"bob@example.test"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
	})
	t.Run("SCRAM-SHA-256 without initial response", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		scramExchange(t, c, "SCRAM-SHA-256", "bob@example.test", testUsers["bob@example.test"], false, plainConv).
			is(t, 235, "2.0.0")
	})
	t.Run("SCRAM-SHA-256-PLUS after STARTTLS", func(t *testing.T) {
		c := dial(t, h.addr["submission"])
		c.ehlo("x.example")
		c.starttls(h.clientTLS())
		c.ehlo("x.example")
		st := c.nc.(*tls.Conn).ConnectionState()
		cb, err := scram.NewTLSExporterBinding(&st)
		if err != nil {
			t.Fatal(err)
		}
		scramExchange(t, c, "SCRAM-SHA-256-PLUS", "alice@example.test", testUsers["alice@example.test"], true,
			func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversationWithChannelBinding(cb) }).
			is(t, 235, "2.0.0")
	})
	t.Run("PLUS with another connection's binding", func(t *testing.T) {
		other := dialTLS(t, h.addr["submissions"], h.clientTLS())
		st := other.nc.(*tls.Conn).ConnectionState()
		cb, err := scram.NewTLSExporterBinding(&st)
		if err != nil {
			t.Fatal(err)
		}
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		scramExchange(t, c, "SCRAM-SHA-256-PLUS", "alice@example.test", testUsers["alice@example.test"], true,
			func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversationWithChannelBinding(cb) }).
			is(t, 535, "5.7.8")
	})
	t.Run("wrong password", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		scramExchange(t, c, "SCRAM-SHA-256", "alice@example.test", "not-her-password", true, plainConv).
			is(t, 535, "5.7.8")
	})
	t.Run("non-empty answer to server-final", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		cl, _ := scram.SHA256.NewClient("alice@example.test", testUsers["alice@example.test"], "")
		cv := cl.NewConversation()
		first, _ := cv.Step("")
		r := c.cmd("AUTH SCRAM-SHA-256 %s", b64(first))
		r.is(t, 334, "")
		final, _ := cv.Step(unb64(t, r.text))
		c.cmd("%s", b64(final)).is(t, 334, "")
		c.cmd("%s", b64("junk")).is(t, 501, "5.5.2")
		// Not authenticated: submission still refuses MAIL.
		c.cmd("MAIL FROM:<alice@example.test>").is(t, 530, "5.7.0")
	})
	t.Run("cancelled with *", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		c.cmd("AUTH SCRAM-SHA-256").is(t, 334, "")
		c.cmd("*").is(t, 501, "")
		c.cmd("MAIL FROM:<alice@example.test>").is(t, 530, "5.7.0")
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		c.ehlo("x.example")
		c.cmd("AUTH CRAM-MD5").is(t, 504, "5.5.4")
	})
}

// TestRealDirectory runs AUTH against internal/directory over a real
// database: PLAIN and SCRAM keys as the directory stores them.
func TestRealDirectory(t *testing.T) {
	ctx := context.Background()
	db, err := database.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := directory.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddDomain(ctx, testDomain); err != nil {
		t.Fatal(err)
	}
	if err := d.AddAccount(ctx, "alice@example.test", testUsers["alice@example.test"], directory.AccountOptions{}); err != nil {
		t.Fatal(err)
	}
	h := start(t, withCreds(d))
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	c.authPlain("alice@example.test", "wrong-password").is(t, 535, "5.7.8")
	c.authPlain("Alice@Example.Test", testUsers["alice@example.test"]).is(t, 235, "2.0.0")
	c.send("alice@example.test", []string{"bob@example.test"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
	if m := h.del.messages(); len(m) != 1 || m[0].env.Account != "alice@example.test" {
		t.Fatalf("stored: %+v", m)
	}
	c2 := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c2.ehlo("x.example")
	scramExchange(t, c2, "SCRAM-SHA-256", "alice@example.test", testUsers["alice@example.test"], true,
		func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversation() }).is(t, 235, "2.0.0")
	if strings.Contains(h.log.String(), testUsers["alice@example.test"]) {
		t.Fatal("password in the log")
	}
}
