package smtpserver

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"posta/internal/config"
	"posta/internal/delivery"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

const simpleMessage = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"

func hasKeyword(caps []string, kw string) bool {
	return slices.ContainsFunc(caps, func(c string) bool { return c == kw })
}

func authLine(caps []string) string {
	for _, c := range caps {
		if strings.HasPrefix(c, "AUTH ") || c == "AUTH" {
			return c
		}
	}
	return ""
}

func TestEHLOAdvertisement(t *testing.T) {
	h := start(t)
	want := []string{"PIPELINING", "8BITMIME", "SMTPUTF8", fmt.Sprintf("SIZE %d", 64<<10), "CHUNKING",
		"ENHANCEDSTATUSCODES", "DSN"}

	for _, name := range []string{"smtp", "submission"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, h.addr[name])
			caps := c.ehlo("client.example.net")
			for _, kw := range append(want, "STARTTLS") {
				if !hasKeyword(caps, kw) {
					t.Errorf("plaintext EHLO lacks %q: %q", kw, caps)
				}
			}
			if a := authLine(caps); a != "" {
				t.Errorf("AUTH offered without TLS: %q", a)
			}
			c.starttls(h.clientTLS())
			caps = c.ehlo("client.example.net")
			for _, kw := range want {
				if !hasKeyword(caps, kw) {
					t.Errorf("EHLO after STARTTLS lacks %q: %q", kw, caps)
				}
			}
			if hasKeyword(caps, "STARTTLS") {
				t.Errorf("STARTTLS offered again under TLS: %q", caps)
			}
			if a := authLine(caps); a != "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN" {
				t.Errorf("AUTH line after STARTTLS = %q", a)
			}
		})
	}
	t.Run("submissions", func(t *testing.T) {
		c := dialTLS(t, h.addr["submissions"], h.clientTLS())
		caps := c.ehlo("client.example.net")
		if hasKeyword(caps, "STARTTLS") {
			t.Errorf("STARTTLS offered on implicit TLS: %q", caps)
		}
		if a := authLine(caps); a != "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN" {
			t.Errorf("AUTH line = %q", a)
		}
		c.cmd("STARTTLS").is(t, 502, "5.5.1")
	})
	t.Run("HELO", func(t *testing.T) {
		c := dial(t, h.addr["smtp"])
		// Control characters in the argument would be echoed back by
		// go-smtp's "250 Hello ..." (RFC 5321 4.1.1.1: a domain or literal).
		c.cmd("HELO bad\x01name").is(t, 501, "5.5.2")
		c.cmd("MAIL FROM:<s@remote.example>").is(t, 502, "5.5.1") // no greeting accepted
		c.cmd("HELO client.example.net").is(t, 250, "")
		c.send("sender@remote.example", []string{"bob@example.test"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
		msgs := h.del.messages()
		if len(msgs) != 1 || msgs[0].env.ESMTP {
			t.Fatalf("HELO session: %+v", msgs)
		}
		rec, _ := bodyAfterReceived(t, msgs[0].body)
		if !strings.Contains(rec, " with SMTP id ") {
			t.Errorf("Received after HELO: %q", rec)
		}
	})
}

func TestAuthPlaintextPolicy(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		h := start(t)
		c := dial(t, h.addr["submission"])
		c.ehlo("client.example.net")
		// RFC 4954 4 / 6: 538 5.7.11 when the mechanism needs encryption.
		c.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 538, "5.7.11")
		// RFC 3207 4: MAIL without TLS on submission.
		c.cmd("MAIL FROM:<alice@example.test>").is(t, 530, "5.7.0")
		if len(h.del.messages()) != 0 {
			t.Fatal("message stored")
		}
	})
	t.Run("allowed by config", func(t *testing.T) {
		h := start(t, withConfig(func(c *config.Config) { c.AllowPlaintextAuth = true }))
		c := dial(t, h.addr["submission"])
		caps := c.ehlo("client.example.net")
		if a := authLine(caps); a != "AUTH SCRAM-SHA-256 PLAIN LOGIN" {
			t.Fatalf("AUTH line with allow_plaintext_auth = %q", a)
		}
		c.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 235, "2.0.0")
		r := c.send("alice@example.test", []string{"bob@example.test"}, simpleMessage+".\r\n")
		r.is(t, 250, "2.0.0")
		rec, _ := bodyAfterReceived(t, h.del.messages()[0].body)
		if !strings.Contains(rec, "with ESMTPA id") {
			t.Errorf("Received: %q", rec)
		}
	})
}

func TestSubmissionNetSMTP(t *testing.T) {
	h := start(t)
	c, err := smtp.Dial(h.addr["submission"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("laptop.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(h.clientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", testUsers["alice@example.test"], "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"bob@example.test", "someone@elsewhere.example"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, simpleMessage)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := h.del.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	env := msgs[0].env
	if env.Account != "alice@example.test" || !env.Auth || env.Listener != "submission" || env.MailFrom != "alice@example.test" ||
		!strings.HasPrefix(env.TLS, "TLS1.3 ") || env.HELO != "laptop.example.net" || !env.ESMTP ||
		len(env.Recipients) != 2 || env.Recipients[1].Address != "someone@elsewhere.example" || env.ID == "" {
		t.Fatalf("envelope: %+v", env)
	}
	rec, rest := bodyAfterReceived(t, msgs[0].body)
	if string(rest) != simpleMessage {
		t.Errorf("body %q, want %q", rest, simpleMessage)
	}
	for _, want := range []string{
		"Received: from laptop.example.net (client.example.net [127.0.0.1])\r\n",
		"\t(using TLS1.3)\r\n",
		// net/smtp adds SMTPUTF8 to MAIL whenever the server offers it, so
		// the RFC 6531 keyword applies.
		"\tby " + testHostname + " with UTF8SMTPSA id " + env.ID + "\r\n",
		"\ttls TLS_AES_128_GCM_SHA256; ", // RFC 8314 4.3
	} {
		if !strings.Contains(rec, want) {
			t.Errorf("Received header %q lacks %q", rec, want)
		}
	}
	// Two recipients: no "for" clause (RFC 5321 4.4), and never the login.
	if strings.Contains(rec, " for ") || strings.Contains(rec, "alice") {
		t.Errorf("Received header reveals recipients or login: %q", rec)
	}
}

func TestSubmissionsGoSMTPClient(t *testing.T) {
	h := start(t)
	c, err := gosmtp.DialTLS(h.addr["submissions"], h.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(gosasl.NewPlainClient("", "alice@example.test", testUsers["alice@example.test"])); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@example.test", []string{"bob@example.test"}, strings.NewReader(simpleMessage)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := h.del.messages()
	if len(msgs) != 1 || msgs[0].env.Listener != "submissions" || msgs[0].env.Account != "alice@example.test" {
		t.Fatalf("stored: %+v", msgs)
	}
	rec, _ := bodyAfterReceived(t, msgs[0].body)
	if !strings.Contains(rec, "\tfor <bob@example.test>\r\n\ttls TLS_") || !strings.Contains(rec, "with ESMTPSA") {
		t.Errorf("Received: %q", rec)
	}
}

func TestAuthLogin(t *testing.T) {
	h := start(t)
	c, err := gosmtp.DialStartTLS(h.addr["submission"], h.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(gosasl.NewLoginClient("bob@example.test", testUsers["bob@example.test"])); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("bob@example.test", []string{"alice@example.test"}, strings.NewReader(simpleMessage)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if m := h.del.messages(); len(m) != 1 || m[0].env.Account != "bob@example.test" {
		t.Fatalf("stored: %+v", m)
	}

	// The same by hand, to see the RFC 4954 exchange: two 334 prompts.
	raw := dialTLS(t, h.addr["submissions"], h.clientTLS())
	raw.ehlo("x.example")
	r := raw.cmd("AUTH LOGIN")
	r.is(t, 334, "")
	if r.text != b64("Username:") {
		t.Errorf("first LOGIN prompt %q", r.text)
	}
	raw.cmd("%s", b64("bob@example.test")).is(t, 334, "")
	raw.cmd("%s", b64(testUsers["bob@example.test"])).is(t, 235, "2.0.0")
}

func TestWrongPassword(t *testing.T) {
	h := start(t)
	h.clock.mu.Lock()
	h.clock.manual = true
	h.clock.mu.Unlock()
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	c.write("AUTH PLAIN " + b64("\x00alice@example.test\x00wrong") + "\r\n")
	// The server waits the guard's delay (FailDelay 1s) before answering.
	waitFor(t, "the failed-login delay", func() bool { return len(h.clock.waits()) == 1 })
	if w := h.clock.waits()[0]; w.Seconds() != 1 {
		t.Fatalf("delay %v, want 1s", w)
	}
	// A bounded negative check: nothing may be answered while the guard's
	// wait is pending.
	c.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if r, err := c.readErr(); err == nil {
		t.Fatalf("reply %v arrived before the delay was over", r)
	}
	c.nc.SetDeadline(time.Now().Add(ioTimeout))
	h.clock.fire()
	c.read().is(t, 535, "5.7.8")
	// The second failure doubles the delay.
	h.clock.mu.Lock()
	h.clock.manual = false
	h.clock.mu.Unlock()
	c.authPlain("nobody@example.test", "whatever").is(t, 535, "5.7.8")
	if w := h.clock.waits(); len(w) != 2 || w[1].Seconds() != 2 {
		t.Fatalf("delays %v, want [1s 2s]", w)
	}
	// Still usable: the right password works.
	c.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 235, "2.0.0")
	if !strings.Contains(h.log.String(), `msg="smtp auth failed"`) || strings.Contains(h.log.String(), "wrong") {
		t.Errorf("log must record the failure without the password:\n%s", h.log.String())
	}
}

func TestAuthInternalErrorIs454(t *testing.T) {
	h := start(t, withCreds(&memCreds{err: errors.New("database is locked at /secret/path")}))
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	r := c.authPlain("alice@example.test", "x")
	r.is(t, 454, "4.7.0")
	if strings.Contains(r.text, "secret") || strings.Contains(r.text, "locked") {
		t.Fatalf("internal error shown to client: %q", r)
	}
	if len(h.clock.waits()) != 0 {
		t.Fatal("our own failure must not be throttled as a guess")
	}
}

func TestSubmissionRequiresAuth(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["submission"])
	c.ehlo("x.example")
	c.starttls(h.clientTLS())
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<alice@example.test>").is(t, 530, "5.7.0")
	c2 := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c2.ehlo("x.example")
	c2.cmd("MAIL FROM:<alice@example.test>").is(t, 530, "5.7.0")
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

// TestCommandTable walks the verb table: every verb flagged needAuth is
// refused with 530 on submission before AUTH (those go-smtp sequences after
// MAIL are refused earlier, which the table documents by having MAIL first).
func TestCommandTable(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	for verb, cmd := range commands {
		if cmd.flags&needAuth == 0 {
			continue
		}
		var r reply
		switch verb {
		case "MAIL":
			r = c.cmd("MAIL FROM:<alice@example.test>")
			r.is(t, 530, "5.7.0")
		default:
			// Without an accepted MAIL, go-smtp refuses these before any hook.
			line := map[string]string{"RCPT": "RCPT TO:<bob@example.test>", "DATA": "DATA", "BDAT": "BDAT 0 LAST"}[verb]
			r = c.cmd("%s", line)
			if r.code/100 != 5 {
				t.Errorf("%s before AUTH: %v", verb, r)
			}
		}
	}
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

func TestMXPolicy(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("mx.remote.example")
	c.cmd("MAIL FROM:<sender@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<someone@elsewhere.example>").is(t, 550, "5.7.1") // no relaying
	c.cmd("RCPT TO:<nobody@example.test>").is(t, 550, "5.1.1")       // unknown local user
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write(simpleMessage + ".\r\n")
	c.read().is(t, 250, "2.0.0")
	c.cmd("QUIT").is(t, 221, "2.0.0")
	msgs := h.del.messages()
	if len(msgs) != 1 || len(msgs[0].env.Recipients) != 1 || msgs[0].env.Account != "" || msgs[0].env.Listener != "smtp" {
		t.Fatalf("stored: %+v", msgs)
	}
	rec, _ := bodyAfterReceived(t, msgs[0].body)
	if !strings.Contains(rec, "with ESMTP id") || !strings.Contains(rec, "for <bob@example.test>") {
		t.Errorf("Received: %q", rec)
	}

	// AUTH on port 25 after STARTTLS, and then relaying is allowed.
	c2 := dial(t, h.addr["smtp"])
	c2.ehlo("x.example")
	c2.starttls(h.clientTLS())
	caps := c2.ehlo("x.example")
	if authLine(caps) == "" {
		t.Fatalf("no AUTH on port 25 after STARTTLS: %q", caps)
	}
	c2.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 235, "2.0.0")
	c2.send("alice@example.test", []string{"friend@elsewhere.example"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
}

func TestRecipientErrorsMapped(t *testing.T) {
	h := start(t)
	h.del.set(func(f *fakeDeliverer) {
		f.rcptErr["full@example.test"] = fmt.Errorf("over quota: %w", delivery.ErrMailboxFull)
		f.rcptErr["quota@example.test"] = fmt.Errorf("x: %w", delivery.ErrQuotaExceeded)
		f.rcptErr["bad@example.test"] = delivery.ErrBadAddress
		f.rcptErr["broken@example.test"] = errors.New("sqlite: disk I/O error at /var/lib/posta")
	})
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<full@example.test>").is(t, 452, "4.2.2")
	c.cmd("RCPT TO:<quota@example.test>").is(t, 552, "5.2.2")
	c.cmd("RCPT TO:<bad@example.test>").is(t, 553, "5.1.3")
	r := c.cmd("RCPT TO:<broken@example.test>")
	r.is(t, 451, "4.3.0")
	if strings.Contains(r.text, "sqlite") || strings.Contains(r.text, "/var") {
		t.Fatalf("internal error text shown: %q", r)
	}
	if !strings.Contains(h.log.String(), "disk I/O error") {
		t.Error("internal error not logged")
	}
	// Syntax Posta checks beyond go-smtp.
	c.cmd("RCPT TO:<a\x01b@example.test>").is(t, 553, "5.1.3")
	c.cmd("RCPT TO:<%s@example.test>", strings.Repeat("x", 65)).is(t, 553, "5.1.3")
	c.cmd("RCPT TO:<bob@exa_mple.test>").is(t, 553, "5.1.3")
	c.cmd("RCPT TO:<bøb@example.test>").is(t, 553, "5.6.7") // RFC 6531 3.5 without SMTPUTF8
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")

	// Errors at DATA.
	h.del.set(func(f *fakeDeliverer) { f.deliverErr = fmt.Errorf("x: %w", delivery.ErrQuotaExceeded) })
	c.cmd("DATA").is(t, 354, "")
	c.write(simpleMessage + ".\r\n")
	c.read().is(t, 552, "5.2.2")
	h.del.set(func(f *fakeDeliverer) { f.deliverErr = errors.New("fsync: input/output error") })
	r = c.send("", []string{"bob@example.test"}, simpleMessage+".\r\n")
	r.is(t, 451, "4.3.0")
	if strings.Contains(r.text, "fsync") {
		t.Fatalf("internal error text shown: %q", r)
	}
}

func TestSenderMustOwn(t *testing.T) {
	h := start(t)
	c := h.submissionClient(t)
	c.cmd("MAIL FROM:<bob@example.test>").is(t, 550, "5.7.1")
	c.cmd("MAIL FROM:<alice@example.test>").is(t, 250, "2.0.0")
	c.cmd("MAIL FROM:<alice@example.test>").is(t, 503, "5.5.1") // RFC 5321 4.1.4
	c.cmd("RSET").is(t, 250, "2.0.0")

	h2 := start(t, withConfig(func(c *config.Config) { c.SMTP.SenderMustOwn = false }))
	c2 := h2.submissionClient(t)
	c2.cmd("MAIL FROM:<bob@example.test>").is(t, 250, "2.0.0")
}

func TestSizeLimit(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	// RFC 1870 6.1: a declared SIZE over the limit is refused at MAIL.
	c.cmd("MAIL FROM:<s@remote.example> SIZE=%d", 64<<10+1).is(t, 552, "5.3.4")
	c.cmd("MAIL FROM:<s@remote.example> SIZE=100").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 70) // 70000 > 65536
	c.write("Subject: big\r\n\r\n" + big + ".\r\n")
	c.read().is(t, 552, "5.3.4")
	c.cmd("NOOP").is(t, 250, "2.0.0") // the session goes on
	if len(h.del.messages()) != 0 {
		t.Fatal("oversized message stored")
	}
	c.send("s@remote.example", []string{"bob@example.test"}, "Subject: small\r\n\r\nok\r\n.\r\n").is(t, 250, "2.0.0")
	if m := h.del.messages(); len(m) != 1 || m[0].env.Size != 0 {
		t.Fatalf("stored: %+v", m)
	}
}

func TestTooManyRecipients(t *testing.T) {
	h := start(t)
	c := h.submissionClient(t)
	c.cmd("MAIL FROM:<alice@example.test>").is(t, 250, "2.0.0")
	for i := range 5 {
		c.cmd("RCPT TO:<r%d@elsewhere.example>", i).is(t, 250, "2.0.0")
	}
	c.cmd("RCPT TO:<r5@elsewhere.example>").is(t, 452, "4.5.3")
	c.cmd("DATA").is(t, 354, "")
	c.write(simpleMessage + ".\r\n")
	c.read().is(t, 250, "2.0.0")
	if m := h.del.messages(); len(m) != 1 || len(m[0].env.Recipients) != 5 {
		t.Fatalf("stored: %+v", m)
	}
}

func TestVRFYandEXPN(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	// RFC 5321 3.5.3: 252 reveals nothing, for users that exist or not.
	a := c.cmd("VRFY alice@example.test")
	a.is(t, 252, "2.5.0")
	b := c.cmd("VRFY nobody@example.test")
	if a != b {
		t.Fatalf("VRFY differs between a user and a non-user: %v / %v", a, b)
	}
	c.cmd("EXPN staff").is(t, 502, "5.5.1")
}

func TestPipelining(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	// RFC 2920 3.1: the client may send the whole envelope in one write.
	c.write("MAIL FROM:<s@remote.example>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\n" +
		"RCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 550, "5.1.1")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 354, "")
	c.write(simpleMessage + ".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 221, "2.0.0")
	if m := h.del.messages(); len(m) != 1 || len(m[0].env.Recipients) != 2 {
		t.Fatalf("stored: %+v", m)
	}
}

func TestEightBitAndUTF8(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	msg := "From: Jöran <jöran@exämple.example>\r\nTo: bob@example.test\r\nSubject: Grüße 🎉\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Ünïcödé bödy\r\n\xff\xfe raw 8-bit bytes\r\n"
	c.cmd("MAIL FROM:<jöran@exämple.example> SMTPUTF8 BODY=8BITMIME").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write(msg + ".\r\n")
	c.read().is(t, 250, "2.0.0")
	m := h.del.messages()
	if len(m) != 1 {
		t.Fatalf("stored %d", len(m))
	}
	env := m[0].env
	if !env.SMTPUTF8 || env.Body != "8BITMIME" || env.MailFrom != "jöran@exämple.example" {
		t.Fatalf("envelope: %+v", env)
	}
	rec, rest := bodyAfterReceived(t, m[0].body)
	if !bytes.Equal(rest, []byte(msg)) {
		t.Fatalf("body not byte-exact:\n got %q\nwant %q", rest, msg)
	}
	if !strings.Contains(rec, " with UTF8SMTP id ") {
		t.Errorf("Received: %q", rec)
	}
	// Without SMTPUTF8 a non-ASCII sender is refused (RFC 6531 3.5).
	c.cmd("MAIL FROM:<jöran@exämple.example>").is(t, 550, "5.6.7")
}

func TestDSNParameters(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<s@remote.example> RET=HDRS ENVID=QQ+2B314 SIZE=500").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.test").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS").is(t, 501, "5.5.4")
	c.cmd("DATA").is(t, 354, "")
	c.write(simpleMessage + ".\r\n")
	c.read().is(t, 250, "2.0.0")
	env := h.del.messages()[0].env
	if env.Ret != "HDRS" || env.EnvID != "QQ+314" || env.Size != 500 {
		t.Fatalf("MAIL parameters: %+v", env)
	}
	r0, r1 := env.Recipients[0], env.Recipients[1]
	if !slices.Equal(r0.Notify, []string{"SUCCESS", "FAILURE"}) || r0.ORCPT != "RFC822;bob+x@example.test" ||
		!slices.Equal(r1.Notify, []string{"NEVER"}) || r1.ORCPT != "" {
		t.Fatalf("RCPT parameters: %+v", env.Recipients)
	}
}

func TestMaxErrors(t *testing.T) {
	h := start(t, withConfig(func(c *config.Config) { c.SMTP.Limits.MaxErrors = 3 }))
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<a@elsewhere.example>").is(t, 550, "5.7.1")
	c.cmd("RCPT TO:<b@elsewhere.example>").is(t, 550, "5.7.1")
	c.cmd("RCPT TO:<c@elsewhere.example>").is(t, 550, "5.7.1")
	c.read().is(t, 421, "4.7.0")
	if !c.closed() {
		t.Fatal("connection still open after too many errors")
	}

	// Failed logins count too (the guard's ban is a separate, per-address
	// limit: BanAfter is 10 here).
	a := dialTLS(t, h.addr["submissions"], h.clientTLS())
	a.ehlo("x.example")
	a.authPlain("alice@example.test", "guess-1").is(t, 535, "5.7.8")
	a.authPlain("alice@example.test", "guess-2").is(t, 535, "5.7.8")
	a.authPlain("alice@example.test", "guess-3").is(t, 535, "5.7.8")
	a.read().is(t, 421, "4.7.0")
	if !a.closed() {
		t.Fatal("connection still open after too many failed logins")
	}
}

// RFC 8689 4.1: REQUIRETLS is offered only under TLS, refused without it,
// and recorded in the envelope when given over TLS.
func TestREQUIRETLS(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	if caps := c.ehlo("mx.remote.example"); hasKeyword(caps, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered without TLS: %q", caps)
	}
	c.cmd("MAIL FROM:<s@remote.example> REQUIRETLS").is(t, 530, "5.7.10")
	// The refusal left no transaction behind.
	c.cmd("RCPT TO:<bob@example.test>").is(t, 502, "5.5.1") // go-smtp: "Missing MAIL FROM command"

	c.starttls(h.clientTLS())
	if caps := c.ehlo("mx.remote.example"); !hasKeyword(caps, "REQUIRETLS") {
		t.Errorf("EHLO under TLS lacks REQUIRETLS: %q", caps)
	}
	c.cmd("MAIL FROM:<s@remote.example> REQUIRETLS").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write(simpleMessage + ".\r\n")
	c.read().is(t, 250, "2.0.0")
	// The next transaction does not inherit it.
	c.send("s@remote.example", []string{"bob@example.test"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
	msgs := h.del.messages()
	if len(msgs) != 2 || !msgs[0].env.RequireTLS || msgs[1].env.RequireTLS {
		t.Fatalf("RequireTLS of the two messages: %+v", msgs)
	}

	s := dialTLS(t, h.addr["submissions"], h.clientTLS())
	if caps := s.ehlo("client.example.net"); !hasKeyword(caps, "REQUIRETLS") {
		t.Errorf("EHLO on implicit TLS lacks REQUIRETLS: %q", caps)
	}
}
