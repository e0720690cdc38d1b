package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/postatest"
)

// stored splits a stored message into the headers the server added
// (Return-Path, Authentication-Results on MX mail, Received) and the rest,
// which must be what was sent.
func stored(t *testing.T, raw []byte) (added string, rest []byte) {
	t.Helper()
	s := raw
	for _, prefix := range []string{"Return-Path: ", "Authentication-Results: ", "Received: "} {
		if !bytes.HasPrefix(s, []byte(prefix)) {
			if prefix == "Authentication-Results: " {
				continue // MX mail only (RFC 8601 5: right after Return-Path)
			}
			t.Fatalf("stored message does not start with %q:\n%s", prefix, raw[:min(len(raw), 300)])
		}
		// A header field ends at a CRLF not followed by whitespace.
		end := 0
		for {
			i := bytes.Index(s[end:], []byte("\r\n"))
			if i < 0 {
				t.Fatalf("unterminated %s", prefix)
			}
			end += i + 2
			if end >= len(s) || (s[end] != ' ' && s[end] != '\t') {
				break
			}
		}
		added += string(s[:end])
		s = s[end:]
	}
	return added, s
}

const eightBit = "From: Ålice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: =?UTF-8?Q?caf=C3=A9?= and raw café\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
	".a line that starts with a dot\r\n..two dots\r\nEuro: €\r\n.\r\nnot the end\r\n"

func TestSubmissionSTARTTLSAuthNetSMTP(t *testing.T) {
	in := postatest.Start(t)
	addr := in.Addr(t, "submission")
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before TLS on submission")
	}
	cfg := in.ClientTLS()
	if err := c.StartTLS(cfg); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "ENHANCEDSTATUSCODES", "DSN"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO lacks %s", ext)
		}
	}
	if ok, size := c.Extension("SIZE"); !ok || size != fmt.Sprint(50<<20) {
		t.Errorf("SIZE = %v %q", ok, size)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "SCRAM-SHA-256") {
		t.Errorf("AUTH after TLS = %v %q", ok, mechs)
	}
	// A wrong password is refused (net/smtp then ends that session itself).
	bad, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.StartTLS(in.ClientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := bad.Auth(smtp.PlainAuth("", "alice@example.test", "wrong-password", host)); !hasReply(err, "535", "5.7.8") {
		t.Fatalf("wrong password: %v", err)
	}
	bad.Close()
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", postatest.Users["alice@example.test"], host)); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := c.Mail("bob@example.test"); !hasReply(err, "550", "5.7.1") {
		t.Fatalf("MAIL FROM someone else's address: %v", err)
	}
	if err := c.Mail("alice+out@example.test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"bob@example.test", "friend@remote.test"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	if err := c.Rcpt("nobody@example.test"); !hasReply(err, "550", "5.1.1") {
		t.Fatalf("unknown local user: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, eightBit)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()

	msgs := in.WaitMessages(t, "bob@example.test", "INBOX", 1)
	added, rest := stored(t, msgs[0])
	if string(rest) != eightBit {
		t.Fatalf("body not byte-exact:\n got %q\nwant %q", rest, eightBit)
	}
	if !strings.HasPrefix(added, "Return-Path: <alice+out@example.test>\r\n") || !strings.Contains(added, "by mail.example.test") ||
		!regexp.MustCompile(`with (ESMTPSA|UTF8SMTPSA) id`).MatchString(added) {
		t.Fatalf("added headers:\n%s", added)
	}
	qs, err := in.Queue.List(context.Background())
	if err != nil || len(qs) != 1 || qs[0].Recipients[0].Address != "friend@remote.test" || qs[0].MailFrom != "alice+out@example.test" {
		t.Fatalf("queue %+v %v", qs, err)
	}
}

func TestMXRelayAndUnknownUser(t *testing.T) {
	in := postatest.Start(t)
	c, err := gosmtp.Dial(in.Addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("victim@elsewhere.test", nil)
	if e, ok := err.(*gosmtp.SMTPError); !ok || e.Code != 550 || e.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("relay: %v", err)
	}
	err = c.Rcpt("nobody@example.test", nil)
	if e, ok := err.(*gosmtp.SMTPError); !ok || e.Code != 550 || e.EnhancedCode != (gosmtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := c.Rcpt("ALICE+news@Example.TEST", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\nhello\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := in.WaitMessages(t, "alice@example.test", "INBOX", 1)
	if _, rest := stored(t, msgs[0]); string(rest) != "Subject: hi\r\n\r\nhello\r\n" {
		t.Fatalf("stored %q", rest)
	}
	if qs, _ := in.Queue.List(context.Background()); len(qs) != 0 {
		t.Fatalf("MX mail queued for relay: %+v", qs)
	}
}

func TestCurlSMTP(t *testing.T) {
	curl := requireTool(t, "curl")
	in := postatest.Start(t)
	body := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: via curl\r\n\r\nsent by curl\r\n.leading dot\r\n"
	file := filepath.Join(t.TempDir(), "mail.txt")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(curl, append([]string{"-sS", "--cacert", in.CertFile(), "--max-time", "30"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	user := "alice@example.test:" + postatest.Users["alice@example.test"]
	// Submission with STARTTLS required.
	if out, err := run("--ssl-reqd", "smtp://localhost:"+fmt.Sprint(in.Port(t, "submission")), "--user", user,
		"--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test", "--upload-file", file); err != nil {
		t.Fatalf("curl smtp --ssl-reqd: %v\n%s", err, out)
	}
	// Implicit TLS.
	if out, err := run("smtps://localhost:"+fmt.Sprint(in.Port(t, "submissions")), "--user", user,
		"--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test", "--upload-file", file); err != nil {
		t.Fatalf("curl smtps: %v\n%s", err, out)
	}
	// MX without authentication, plain.
	if out, err := run("smtp://127.0.0.1:"+fmt.Sprint(in.Port(t, "smtp")), "--mail-from", "x@remote.test",
		"--mail-rcpt", "bob@example.test", "--upload-file", file); err != nil {
		t.Fatalf("curl smtp MX: %v\n%s", err, out)
	}
	// Wrong password: curl fails with a login error (67).
	out, err := run("--ssl-reqd", "smtp://localhost:"+fmt.Sprint(in.Port(t, "submission")), "--user", "alice@example.test:nope-nope",
		"--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test", "--upload-file", file)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 67 {
		t.Fatalf("wrong password via curl: %v\n%s", err, out)
	}
	msgs := in.WaitMessages(t, "bob@example.test", "INBOX", 3)
	for i, m := range msgs {
		if _, rest := stored(t, m); string(rest) != body {
			t.Fatalf("message %d stored %q", i, rest)
		}
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
}

func TestPythonSMTPLibSMTPUTF8(t *testing.T) {
	py := requireTool(t, "python3")
	in := postatest.Start(t)
	script := `
import smtplib, ssl, sys
port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
msg = "From: alice@example.test\r\nTo: bøb@example.test\r\nSubject: grüße\r\n\r\nUTF-8 body: 日本語\r\n".encode()
with smtplib.SMTP_SSL("localhost", port, context=ctx) as s:
    s.login("alice@example.test", password)
    refused = s.sendmail("alice@example.test", ["bob@example.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert not refused, refused
    try:
        s.sendmail("alice@example.test", ["nobody@example.test"], b"Subject: x\r\n\r\nx\r\n")
        print("unknown user accepted"); sys.exit(1)
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["nobody@example.test"][0]
        assert code == 550, code
print("ok")
`
	cmd := exec.Command(py, "-c", script, fmt.Sprint(in.Port(t, "submissions")), in.CertFile(), postatest.Users["alice@example.test"])
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	msgs := in.WaitMessages(t, "bob@example.test", "INBOX", 1)
	want := "From: alice@example.test\r\nTo: bøb@example.test\r\nSubject: grüße\r\n\r\nUTF-8 body: 日本語\r\n"
	added, rest := stored(t, msgs[0])
	if string(rest) != want {
		t.Fatalf("stored %q", rest)
	}
	if !strings.Contains(added, "UTF8SMTPSA") {
		t.Errorf("Received lacks UTF8SMTPSA (RFC 6531 4.3): %s", added)
	}
	_ = tls.VersionTLS13
}

// hasReply reports whether err is an SMTP reply with that code and enhanced
// code (net/smtp quotes the text, go-smtp does not: compare the parts).
func hasReply(err error, code, enhanced string) bool {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		e := se.EnhancedCode
		return fmt.Sprint(se.Code) == code && fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) == enhanced
	}
	return err != nil && strings.HasPrefix(err.Error(), code+" ") && strings.Contains(err.Error(), enhanced+" ")
}

func TestQuotaAndSizeOverSMTP(t *testing.T) {
	in := postatest.Start(t, postatest.WithConfig(func(c *config.Config) { c.SMTP.Limits.MaxMessageSize = 64 << 10 }))
	ctx := context.Background()
	q := int64(4 << 10)
	if err := in.Directory.UpdateAccount(ctx, "bob@example.test", directory.AccountUpdate{QuotaBytes: &q}); err != nil {
		t.Fatal(err)
	}
	c, err := gosmtp.Dial(in.Addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(rcpt string, size int, opts *gosmtp.MailOptions) error {
		if err := c.Mail("x@remote.test", opts); err != nil {
			return err
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			c.Reset()
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		line := strings.Repeat("x", 78) + "\r\n"
		w.Write([]byte("Subject: sized\r\n\r\n" + strings.Repeat(line, size/len(line)+1)))
		return w.Close()
	}
	// Declared SIZE over the server's limit: refused at MAIL.
	if err := send("bob@example.test", 10, &gosmtp.MailOptions{Size: 100 << 10}); !hasReply(err, "552", "5.3.4") {
		t.Fatalf("declared SIZE over the limit: %v", err)
	}
	// Actual data over the limit: refused at the end of DATA, nothing stored.
	if err := send("alice@example.test", 70<<10, nil); !hasReply(err, "552", "5.3.4") {
		t.Fatalf("data over the limit: %v", err)
	}
	// Declared SIZE that cannot fit bob's quota: 552 5.2.2 at RCPT.
	if err := send("bob@example.test", 10, &gosmtp.MailOptions{Size: 8 << 10}); !hasReply(err, "552", "5.2.2") {
		t.Fatalf("declared size over quota: %v", err)
	}
	// Under quota, a message that ends over it is taken (one message of grace)...
	if err := send("bob@example.test", 6<<10, nil); err != nil {
		t.Fatalf("last message under quota: %v", err)
	}
	// ...and then the mailbox is full: 452 4.2.2, the sender retries later.
	if err := send("bob@example.test", 10, nil); !hasReply(err, "452", "4.2.2") {
		t.Fatalf("full mailbox: %v", err)
	}
	if got := len(in.Messages(t, "bob@example.test", "INBOX")); got != 1 {
		t.Fatalf("bob has %d messages, want 1", got)
	}
	if got := len(in.Messages(t, "alice@example.test", "INBOX")); got != 0 {
		t.Fatalf("oversized message stored for alice (%d)", got)
	}
}

func TestPipelinedTransactions(t *testing.T) {
	in := postatest.Start(t)
	conn, err := net.Dial("tcp", in.Addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	readReply := func() string {
		t.Helper()
		var all string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (so far %q)", err, all)
			}
			all += line
			if len(line) >= 4 && line[3] == ' ' {
				return all
			}
		}
	}
	readReply() // greeting
	fmt.Fprintf(conn, "EHLO pipeliner.test\r\n")
	if ehlo := readReply(); !strings.Contains(ehlo, "PIPELINING") {
		t.Fatalf("EHLO: %q", ehlo)
	}
	// RFC 2920 3.1: MAIL, RCPT... and DATA in one write; replies in order.
	fmt.Fprintf(conn, "MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	for i, want := range []string{"250", "250", "550", "250", "354"} {
		if got := readReply(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %d = %q, want %s", i, got, want)
		}
	}
	fmt.Fprintf(conn, "Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	for i, want := range []string{"250", "250", "250", "354"} {
		if got := readReply(); !strings.HasPrefix(got, want) {
			t.Fatalf("second batch reply %d = %q, want %s", i, got, want)
		}
	}
	fmt.Fprintf(conn, "Subject: second\r\n\r\nagain\r\n.\r\nQUIT\r\n")
	if got := readReply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("second DATA: %q", got)
	}
	readReply()
	if n := len(in.Messages(t, "bob@example.test", "INBOX")); n != 2 {
		t.Fatalf("bob has %d messages", n)
	}
	if n := len(in.Messages(t, "alice@example.test", "INBOX")); n != 1 {
		t.Fatalf("alice has %d messages", n)
	}
}
