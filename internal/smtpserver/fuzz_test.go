package smtpserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/guard"
	"posta/internal/pipenet"
)

// replyLine is what every line the server writes must look like. A bare CR
// may appear: go-smtp echoes an unknown verb (its first four bytes) verbatim
// in its 500 reply, which only sends the client's own bytes back to it.
var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -][^\n]*$`)

// FuzzSession drives a whole MX session (plaintext, AUTH allowed) with
// arbitrary client bytes. It checks what must hold whatever the client
// sends: no panic, replies well formed, no internal error text, and no
// stored message with a bare CR or LF or a broken Received header.
//
// Seeds are the C: lines of RFC 5321 D.1 and D.3, RFC 3030 4.1, RFC 4954 4
// and 5, and the smuggling variants of TestBareLineEndingsRejected.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		// RFC 5321 D.1
		"EHLO bar.com\r\nMAIL FROM:<Smith@bar.com>\r\nRCPT TO:<Jones@foo.com>\r\nRCPT TO:<Green@foo.com>\r\nRCPT TO:<Brown@foo.com>\r\nDATA\r\nBlah blah blah...\r\n...etc. etc. etc.\r\n.\r\nQUIT\r\n",
		// Local delivery with DSN parameters and dot-stuffing.
		"EHLO x\r\nMAIL FROM:<a@b.example> RET=HDRS ENVID=x+2By SIZE=40\r\nRCPT TO:<bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;bob@example.test\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\n",
		// RFC 3030 4.1
		"EHLO x\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<bob@example.test>\r\nBDAT 20\r\nSubject: chunked\r\n\r\nBDAT 6 LAST\r\nbody\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 0\r\nRSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 3 LAST\r\nx\r\n",
		// RFC 4954 4 and 5
		"EHLO x\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nhi\r\n.\r\n",
		"EHLO x\r\nAUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS50ZXN0\r\nd3Jvbmc=\r\nAUTH PLAIN\r\n=\r\n",
		"EHLO x\r\nAUTH SCRAM-SHA-256 biwsbj1hbGljZUBleGFtcGxlLnRlc3Qscj1hYmM=\r\n*\r\n",
		// Smuggling.
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\n.\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nevil\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\r.\rQUIT\r\n.\r\n",
		// SMTPUTF8, odd addresses, garbage.
		"EHLO x\r\nMAIL FROM:<jörg@exämple.example> SMTPUTF8\r\nRCPT TO:<bøb@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: ü\r\n\r\n\xff\r\n.\r\n",
		"HELO \x00\r\nMAIL FROM:<\"a\r b\"@x>\r\nRCPT TO:<@route:bob@example.test>\r\nVRFY bob\r\nEXPN x\r\nNOOP\r\nRSET\r\nSTARTTLS\r\n",
		"EHLO (evil)\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}

	cfg := config.Default()
	cfg.Hostname = testHostname
	cfg.AllowPlaintextAuth = true
	cfg.SMTP.Limits = config.SMTPLimits{MaxMessageSize: 4096, MaxRecipients: 3, MaxLineLength: 512,
		CommandTimeout: config.Duration(time.Second), DataTimeout: config.Duration(time.Second), MaxErrors: 8}
	del := newFakeDeliverer()
	logs := &logBuf{}
	s, err := New(Options{Config: cfg, Listener: config.Listener{Name: "smtp", Protocol: "smtp"},
		Directory: newMemCreds(f), Guard: guard.New(guard.Limits{ExemptLoopback: true}), Deliverer: del,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})),
		LookupAddr: func(context.Context, string) ([]string, error) { return []string{"localhost"}, nil }})
	if err != nil {
		f.Fatal(err)
	}
	ln := pipenet.Listen(25)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			f.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			f.Errorf("Serve: %v", err)
		}
	})

	f.Fuzz(func(t *testing.T, in []byte) {
		before := len(del.messages())
		// The server serves every input: count this one's panics only (a
		// sticky total would blame, and minimize to, later inputs).
		panicsBefore := s.Panics()
		cc, _, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cc.SetDeadline(time.Now().Add(10 * time.Second))
		out := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(cc)
			out <- b
		}()
		// Whatever state the input leaves, end data and quit; a session
		// stuck in a BDAT chunk times out (CommandTimeout).
		if _, err := cc.Write(in); err == nil {
			cc.Write([]byte("\r\n.\r\nQUIT\r\n"))
		}
		got := <-out
		if testing.Verbose() {
			t.Logf("%s\nstored %d", got, len(del.messages())-before)
		}
		if n := s.Panics() - panicsBefore; n != 0 {
			t.Fatalf("%d sessions panicked:\n%s", n, logs.String())
		}
		for _, line := range bytes.SplitAfter(got, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			l, ok := bytes.CutSuffix(line, []byte("\r\n"))
			if !ok || !replyLine.Match(l) {
				t.Fatalf("malformed reply line %q in\n%s", line, got)
			}
			if bytes.Contains(l, []byte("fake:")) {
				t.Fatalf("internal error text in reply %q", line)
			}
		}
		for _, m := range del.messages()[before:] {
			rec, body := bodyAfterReceived(t, m.body)
			checkReceived(t, rec, m.env.SMTPUTF8)
			for i, c := range body {
				if (c == '\n' && (i == 0 || body[i-1] != '\r')) || (c == '\r' && (i+1 == len(body) || body[i+1] != '\n')) {
					t.Fatalf("stored body with a bare CR or LF at %d: %q", i, body)
				}
			}
		}
	})
}
