package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/postatest"
	"posta/internal/queue"
	"posta/internal/server"
)

// recordingTransport stands in for the remote MX: it records what the queue
// sends and answers every recipient with code.
type recordingTransport struct {
	code     int
	enhanced string

	mu    sync.Mutex
	sent  []queue.Envelope
	bodys [][]byte
}

func (rt *recordingTransport) Send(ctx context.Context, env queue.Envelope, body func() (io.Reader, error)) []queue.Result {
	r, err := body()
	var b []byte
	if err == nil {
		b, err = io.ReadAll(r)
	}
	rt.mu.Lock()
	rt.sent = append(rt.sent, env)
	rt.bodys = append(rt.bodys, b)
	rt.mu.Unlock()
	var out []queue.Result
	for _, rc := range env.Recipients {
		res := queue.Result{Recipient: rc.Address, Code: rt.code, Enhanced: rt.enhanced, Text: "test reply", RemoteMTA: "mx.remote.test",
			Permanent: rt.code >= 500, Err: err}
		out = append(out, res)
	}
	return out
}

func (rt *recordingTransport) sends() ([]queue.Envelope, [][]byte) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]queue.Envelope(nil), rt.sent...), append([][]byte(nil), rt.bodys...)
}

// submit sends one message from alice over submission (STARTTLS, AUTH).
func submit(t *testing.T, in *postatest.Instance, to, msg string) {
	t.Helper()
	addr := in.Addr(t, "submission")
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(in.ClientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", postatest.Users["alice@example.test"], host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	c.Quit()
}

// TestOutboundQueueDeliversSigned: mail from alice to another domain leaves
// through the queue, DKIM-signed with example.test's keys, and the queue is
// empty afterwards.
func TestOutboundQueueDeliversSigned(t *testing.T) {
	rt := &recordingTransport{code: 250, enhanced: "2.0.0"}
	in := postatest.Start(t, postatest.WithServerOption(server.WithTransport(rt)))
	msg := "From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: out\r\nMessage-ID: <out1@example.test>\r\n\r\nhello remote\r\n"
	submit(t, in, "carol@remote.test", msg)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if sent, _ := rt.sends(); len(sent) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue sent nothing within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent, bodies := rt.sends()
	env := sent[0]
	if env.MailFrom != "alice@example.test" || env.Domain != "remote.test" || len(env.Recipients) != 1 || env.Recipients[0].Address != "carol@remote.test" {
		t.Fatalf("envelope %+v", env)
	}
	body := bodies[0]
	if !bytes.HasPrefix(body, []byte("DKIM-Signature: ")) || !bytes.Contains(body, []byte("d=example.test")) {
		t.Fatalf("sent message not DKIM-signed by example.test:\n%.400s", body)
	}
	if !bytes.HasSuffix(body, []byte(msg)) || bytes.Contains(body, []byte("Return-Path:")) {
		t.Fatalf("sent message does not end with what alice sent (or carries Return-Path):\n%s", body)
	}
	for {
		msgs, err := in.Queue.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message still queued after delivery: %+v", msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutboundBounceDSN: a 5xx from the remote bounces at once with a DSN
// in alice's INBOX.
func TestOutboundBounceDSN(t *testing.T) {
	rt := &recordingTransport{code: 550, enhanced: "5.1.1"}
	in := postatest.Start(t, postatest.WithServerOption(server.WithTransport(rt)))
	submit(t, in, "nobody@remote.test", "From: alice@example.test\r\nTo: nobody@remote.test\r\nSubject: doomed\r\n\r\nbye\r\n")
	msgs := in.WaitMessages(t, "alice@example.test", "INBOX", 1)
	dsn := string(msgs[0])
	for _, want := range []string{
		"Return-Path: <>",
		"multipart/report",
		"report-type=delivery-status",
		"Final-Recipient: rfc822; nobody@remote.test",
		"Action: failed",
		"Status: 5.1.1",
		"Subject: doomed",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}
