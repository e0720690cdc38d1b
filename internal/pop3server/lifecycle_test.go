package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"posta/internal/guard"
	"posta/internal/mailstore"
)

func mustDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestSTLSDropsInjectedCommands: text sent after STLS in the same packet
// (a man in the middle's injection, CVE-2011-0411 style) is not executed
// under TLS.
func TestSTLSDropsInjectedCommands(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["pop3"])
	c.write("STLS\r\nCAPA\r\n")
	if got := c.line(); got != "+OK Begin TLS negotiation" {
		t.Fatal(got)
	}
	tc := tls.Client(c.nc, h.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	// Had the injected CAPA run, its listing would come first.
	c.is("-ERR TLS already active", "STLS")
	c.is("+OK Bye", "QUIT")
	if !strings.Contains(h.log.String(), "dropping octets sent before the handshake") {
		t.Fatal("injection not logged")
	}
}

func TestImplicitTLSNoSTLS(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	if caps := capa(t, c); hasPrefix(caps, "STLS") {
		t.Fatalf("STLS offered under implicit TLS: %q", caps)
	}
	c.is("-ERR TLS already active", "STLS")
}

func TestTooManyConnections(t *testing.T) {
	h := start(t, withGuard(guard.Limits{MaxConnsPerIP: 2}))
	a := dial(t, h.addr["pop3"])
	dialTLS(t, h.addr["pop3s"], h.clientTLS()) // one guard for both listeners
	c := newClient(t, mustDial(t, h.addr["pop3"]))
	if got := c.line(); got != "-ERR [SYS/TEMP] Too many connections, try again later" {
		t.Fatal(got)
	}
	if !c.closed() {
		t.Fatal("refused connection left open")
	}
	// Implicit TLS: the refusal comes over TLS.
	tc, err := tls.Dial("tcp", h.addr["pop3s"], h.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, tc)
	if got := c2.line(); got != "-ERR [SYS/TEMP] Too many connections, try again later" {
		t.Fatal(got)
	}
	a.is("+OK Bye", "QUIT")
	waitFor(t, "the slot to be released", func() bool { return h.guard.Stats().Conns == 1 })
	dial(t, h.addr["pop3"]).is("+OK Bye", "QUIT")
}

// TestIdleTimeout: RFC 1939 3, on autologout the connection closes with no
// reply and no UPDATE state.
func TestIdleTimeout(t *testing.T) {
	h := start(t, withLimits(Limits{IdleTimeout: 300 * time.Millisecond, WriteTimeout: ioTimeout}))
	h.add("alice@example.test", plainMsg)
	c := h.login(t, "alice@example.test")
	c.is("+OK Message 1 deleted", "DELE 1")
	start := time.Now()
	if !c.closed() {
		t.Fatal("expected the server to close the idle connection without a reply")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", el)
	}
	waitFor(t, "the lock", func() bool { return !h.locks.Held("alice@example.test") })
	if _, ms := h.inbox("alice@example.test"); len(ms) != 1 {
		t.Fatal("idle timeout deleted mail")
	}
}

func shutdownAsync(s *Server, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	return done
}

// TestShutdownIdle: idle sessions get -ERR [SYS/TEMP] and are closed at
// once; a logged-in one deletes nothing (no QUIT) but its RETRs are \Seen
// before Shutdown returns.
func TestShutdownIdle(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg, dottedMsg)
	fresh := dial(t, h.addr["pop3"])
	in := h.login(t, "alice@example.test")
	in.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	in.raw()
	in.is("+OK Message 2 deleted", "DELE 2")
	waitFor(t, "sessions to be idle", func() bool { return h.srv["pop3"].Idle() == 1 && h.srv["pop3s"].Idle() == 1 })
	d1, d2 := shutdownAsync(h.srv["pop3"], 10*time.Second), shutdownAsync(h.srv["pop3s"], 10*time.Second)
	for _, c := range []*client{fresh, in} {
		if got := c.line(); got != "-ERR [SYS/TEMP] Server shutting down, try again later" {
			t.Fatal(got)
		}
		if !c.closed() {
			t.Fatal("not closed")
		}
	}
	for _, d := range []<-chan error{d1, d2} {
		if err := <-d; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	_, ms := h.inbox("alice@example.test")
	if len(ms) != 2 || ms[0].Flags.System != mailstore.Seen || ms[1].Flags.System != 0 {
		t.Fatalf("after shutdown: %+v", ms)
	}
	if _, err := net.Dial("tcp", h.addr["pop3"]); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// TestShutdownBusy: a RETR in progress finishes, then the session gets the
// goodbye; a client that never reads is cut when the grace period ends.
func TestShutdownBusy(t *testing.T) {
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 128<<10)
	t.Run("finishes", func(t *testing.T) {
		h := start(t)
		h.add("alice@example.test", big)
		c := slowReader(t, h, "alice@example.test")
		c.write("RETR 1\r\n")
		if got := c.line(); got != fmt.Sprintf("+OK %d octets", len(big)) {
			t.Fatal(got)
		}
		// The session is busy writing (the client does not read yet).
		waitFor(t, "the session to be busy", func() bool { return h.srv["pop3s"].Idle() == 0 })
		done := shutdownAsync(h.srv["pop3s"], 10*time.Second)
		waitFor(t, "shutdown to reach the session", func() bool {
			for _, cn := range h.srv["pop3s"].conns.Conns() {
				return cn.(*conn).Stopping()
			}
			return false
		})
		if got := unstuff(c.raw()); string(got) != big {
			t.Fatalf("message cut short: %d octets", len(got))
		}
		if got := c.line(); got != "-ERR [SYS/TEMP] Server shutting down, try again later" {
			t.Fatal(got)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Fully sent, so \Seen.
		if _, ms := h.inbox("alice@example.test"); ms[0].Flags.System != mailstore.Seen {
			t.Fatalf("flags %v", ms[0].Flags)
		}
	})
	t.Run("cut", func(t *testing.T) {
		h := start(t)
		h.add("alice@example.test", big)
		c := slowReader(t, h, "alice@example.test")
		c.write("RETR 1\r\n")
		if got := c.line(); got != fmt.Sprintf("+OK %d octets", len(big)) {
			t.Fatal(got)
		}
		err := <-shutdownAsync(h.srv["pop3s"], 200*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if n := h.srv["pop3s"].conns.Len(); n != 0 {
			t.Fatalf("%d sessions left after the cut", n)
		}
		// Not fully sent: not \Seen, and not deleted.
		if _, ms := h.inbox("alice@example.test"); len(ms) != 1 || ms[0].Flags.System != 0 {
			t.Fatalf("after the cut: %+v", ms)
		}
	})
}

// TestShutdownDuringHandshake: a client stuck in the implicit-TLS
// handshake does not hold up Shutdown.
func TestShutdownDuringHandshake(t *testing.T) {
	h := start(t)
	nc := mustDial(t, h.addr["pop3s"]) // never sends a ClientHello
	waitFor(t, "the connection to be tracked", func() bool { return h.srv["pop3s"].conns.Len() == 1 })
	if err := <-shutdownAsync(h.srv["pop3s"], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// slowReader logs in over implicit TLS with a small receive buffer, so a
// large reply it does not read keeps the server blocked in its write.
func slowReader(t testing.TB, h *harness, user string) *client {
	t.Helper()
	// The buffer is set before connect: shrinking it on an established
	// connection stalls Linux's window updates.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", h.addr["pop3s"])
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, h.clientTLS())
	c := newClient(t, tc)
	c.greeting()
	c.is("+OK Send PASS", "USER %s", user)
	if got := c.cmd("PASS %s", testUsers[user]); !strings.HasPrefix(got, "+OK Logged in") {
		t.Fatal(got)
	}
	return c
}
