package smtpserver

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/guard"
)

func TestGuardTooManyConnections(t *testing.T) {
	h := start(t, withGuard(guard.Limits{MaxConnsPerIP: 2}))
	a := dial(t, h.addr["smtp"])
	dial(t, h.addr["submission"]) // one guard for every listener
	nc, err := net.Dial("tcp", h.addr["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, nc: nc}
	c.nc.SetDeadline(time.Now().Add(ioTimeout))
	c.tp = newTextproto(nc)
	c.read().is(t, 421, "4.7.0")
	if !c.closed() {
		t.Fatal("refused connection left open")
	}
	// Implicit TLS: the refusal comes over TLS.
	tc, err := tlsDialNoGreeting(h.addr["submissions"], h.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	c2 := &client{t: t, nc: tc, tp: newTextproto(tc)}
	c2.read().is(t, 421, "4.7.0")

	// Closing one frees its slot.
	a.cmd("QUIT").is(t, 221, "2.0.0")
	waitFor(t, "the slot to be released", func() bool { return h.guard.Stats().Conns == 1 })
	dial(t, h.addr["smtp"]).cmd("NOOP").is(t, 250, "2.0.0")
}

func TestGuardBan(t *testing.T) {
	h := start(t, withGuard(guard.Limits{BanAfter: 2, FailDelay: time.Millisecond, MaxFailDelay: time.Millisecond}))
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	c.authPlain("alice@example.test", "guess-1").is(t, 535, "5.7.8")
	// The second failure bans the address: 421 and close instead of 535.
	c.authPlain("alice@example.test", "guess-2").is(t, 421, "4.7.0")
	if !c.closed() {
		t.Fatal("banned session left open")
	}
	// A new connection is refused at once, on every listener.
	for _, name := range []string{"smtp", "submission"} {
		nc, err := net.Dial("tcp", h.addr[name])
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(ioTimeout))
		rc := &client{t: t, nc: nc, tp: newTextproto(nc)}
		rc.read().is(t, 421, "4.7.0")
		nc.Close()
	}
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

// TestBanStopsOtherSession: a ban placed by one session stops AUTH in
// another that was opened before it.
func TestBanStopsOtherSession(t *testing.T) {
	h := start(t, withGuard(guard.Limits{BanAfter: 2, FailDelay: time.Millisecond, MaxFailDelay: time.Millisecond}))
	early := dialTLS(t, h.addr["submissions"], h.clientTLS())
	early.ehlo("x.example")
	c := dialTLS(t, h.addr["submissions"], h.clientTLS())
	c.ehlo("x.example")
	c.authPlain("alice@example.test", "guess-1").is(t, 535, "5.7.8")
	c.authPlain("alice@example.test", "guess-2").is(t, 421, "4.7.0")
	early.authPlain("alice@example.test", testUsers["alice@example.test"]).is(t, 421, "4.7.0")
}

// shutdownAsync runs Shutdown and reports its result.
func shutdownAsync(s *Server, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	return done
}

func TestShutdownIdle(t *testing.T) {
	h := start(t)
	fresh := dial(t, h.addr["smtp"]) // greeted, nothing sent
	inTx := dial(t, h.addr["smtp"])  // idle between RCPT and DATA
	inTx.ehlo("x.example")
	inTx.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	inTx.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	tlsC := dialTLS(t, h.addr["submissions"], h.clientTLS())
	tlsC.ehlo("x.example")
	waitFor(t, "sessions to be idle", func() bool { return idleCount(h.srv["smtp"]) == 2 && idleCount(h.srv["submissions"]) == 1 })

	done := shutdownAsync(h.srv["smtp"], 10*time.Second)
	done2 := shutdownAsync(h.srv["submissions"], 10*time.Second)
	for _, c := range []*client{fresh, inTx, tlsC} {
		c.read().is(t, 421, "4.3.2")
		if !c.closed() {
			t.Fatal("not closed after 421")
		}
	}
	for _, d := range []<-chan error{done, done2} {
		if err := <-d; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if _, err := net.Dial("tcp", h.addr["smtp"]); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

// idleCount is how many sessions of s wait for a command.
func idleCount(s *Server) int {
	n := 0
	for _, c := range s.snapshot() {
		c.mu.Lock()
		if c.inRead && c.phase == phaseCommand {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

func TestShutdownMidData(t *testing.T) {
	h := start(t)
	gate, entered := make(chan struct{}), make(chan struct{})
	h.del.set(func(f *fakeDeliverer) { f.gate, f.entered = gate, entered })
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write("Subject: in flight\r\n\r\nfirst half\r\n")
	<-entered // the message is being stored

	done := shutdownAsync(h.srv["smtp"], 10*time.Second)
	// The listener closes first; then the busy session is left to finish.
	waitFor(t, "the listener to close", func() bool {
		nc, err := net.Dial("tcp", h.addr["smtp"])
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	default:
	}
	c.write("second half\r\n.\r\n")
	close(gate)
	c.read().is(t, 250, "2.0.0") // the message completes...
	c.read().is(t, 421, "4.3.2") // ...and then the session ends
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	m := h.del.messages()
	if len(m) != 1 {
		t.Fatalf("stored %d", len(m))
	}
	if _, body := bodyAfterReceived(t, m[0].body); string(body) != "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n" {
		t.Fatalf("body %q", body)
	}
}

func TestShutdownCutsAtDeadline(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write("Subject: never finished\r\n")
	waitFor(t, "the data phase", func() bool {
		for _, cc := range h.srv["smtp"].snapshot() {
			cc.mu.Lock()
			busy := cc.phase == phaseData && cc.inRead
			cc.mu.Unlock()
			if busy {
				return true
			}
		}
		return false
	})
	err := <-shutdownAsync(h.srv["smtp"], 200*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if !c.closed() {
		t.Fatal("busy session not cut")
	}
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
	waitFor(t, "guard slots released", func() bool { return h.guard.Stats().Conns == 0 })
}

func TestCloseCutsAtOnce(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	if err := h.srv["smtp"].Close(); err != nil {
		t.Fatal(err)
	}
	if !c.closed() {
		t.Fatal("session not cut")
	}
}

// TestCommandTimeout: go-smtp's ReadTimeout is set from CommandTimeout, so
// an idle client is dropped with 421 4.4.2 (RFC 5321 4.5.3.2.7).
func TestCommandTimeout(t *testing.T) {
	h := start(t, withConfig(func(c *config.Config) { c.SMTP.Limits.CommandTimeout = config.Duration(300 * time.Millisecond) }))
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.read().is(t, 421, "4.4.2")
	if !c.closed() {
		t.Fatal("idle session not closed")
	}
	waitFor(t, "the slot to be released", func() bool { return h.guard.Stats().Conns == 0 })
}
