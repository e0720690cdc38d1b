package imapserver

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"posta/internal/guard"
)

// stopping reports whether Shutdown has reached every open session.
func (h *harness) stopping() bool {
	cs := h.srv.conns.Conns()
	for _, c := range cs {
		if !c.(*conn).Stopping() {
			return false
		}
	}
	return len(cs) > 0
}

// TestShutdownIdle: sessions waiting for a command, before and after login,
// get "* BYE" at once and are closed (RFC 9051 7.1.5: BYE when the server
// is shutting down); Shutdown returns nil and nothing is accepted after.
func TestShutdownIdle(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.add(alice, "INBOX", testMsg(1))
	fresh := h.dial(t)
	sel := h.selectBox(t, alice, "SELECT", "INBOX")
	waitFor(t, "both sessions to be idle", func() bool { return h.srv.Idle() == 2 })
	done := h.shutdownAsync(10 * time.Second)
	for _, c := range []*tconn{fresh, sel} {
		c.bye("* BYE Server shutting down")
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if nc, err := net.Dial("tcp", h.addr); err == nil {
		nc.Close()
		t.Fatal("still accepting after Shutdown")
	}
}

// TestShutdownInIdle: a session in IDLE (RFC 2177) is idle too: it gets
// the BYE without sending DONE.
func TestShutdownInIdle(t *testing.T) {
	t.Parallel()
	h := start(t)
	c := h.selectBox(t, alice, "SELECT", "INBOX")
	c.write("i1 IDLE\r\n")
	if l := c.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	waitFor(t, "the session to be idle", func() bool { return h.srv.Idle() == 1 })
	done := h.shutdownAsync(10 * time.Second)
	c.bye("* BYE Server shutting down")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestIdleUpdates: a session in IDLE hears of another session's APPEND,
// flag change and EXPUNGE as they happen (RFC 2177 3), and DONE ends it.
func TestIdleUpdates(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.add(alice, "INBOX", testMsg(1), testMsg(2))
	c := h.selectBox(t, alice, "SELECT", "INBOX")
	other := h.selectBox(t, alice, "SELECT", "INBOX")
	c.write("i1 IDLE\r\n")
	if l := c.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	if r := other.appendMsg("INBOX", "", testMsg(3)); !strings.HasPrefix(r, "OK [APPENDUID ") {
		t.Fatal(r)
	}
	for _, want := range []string{"* 3 EXISTS", "* 0 RECENT"} {
		if l := c.line(); l != want {
			t.Fatalf("got %q, want %q", l, want)
		}
	}
	other.ok(`STORE 1 +FLAGS (\Flagged)`)
	if l := c.line(); l != `* 1 FETCH (FLAGS (\Flagged))` {
		t.Fatalf("flag update: %q", l)
	}
	other.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if l := c.line(); l != `* 2 FETCH (FLAGS (\Deleted))` {
		t.Fatalf("flag update: %q", l)
	}
	other.ok("EXPUNGE")
	if l := c.line(); l != "* 2 EXPUNGE" {
		t.Fatalf("expunge: %q", l)
	}
	c.write("DONE\r\n")
	if r := c.until("i1"); r.tagged != "OK IDLE completed" || len(r.untagged) != 0 {
		t.Fatalf("DONE: %q %q", r.untagged, r.tagged)
	}
	if r := c.ok("FETCH 1:* (UID)"); strings.Join(r, "|") != "* 1 FETCH (UID 1)|* 2 FETCH (UID 3)" {
		t.Fatalf("after IDLE: %q", r)
	}
}

// TestShutdownBusyAppend: a session in the middle of an APPEND literal is
// busy; Shutdown lets it finish (the message is stored and acknowledged,
// then BYE), or cuts it when the grace period ends (nothing stored).
func TestShutdownBusyAppend(t *testing.T) {
	t.Parallel()
	msg := testMsg(1) + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 200)
	half := len(msg) / 2
	begin := func(t *testing.T, h *harness) *tconn {
		c := h.login(t, alice)
		c.write(fmt.Sprintf("a1 APPEND INBOX (\\Seen) {%d}\r\n", len(msg)))
		if l := c.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("APPEND: %q", l)
		}
		c.write(msg[:half])
		waitFor(t, "the session to be busy", func() bool { return h.srv.Idle() == 0 })
		return c
	}
	t.Run("finishes", func(t *testing.T) {
		t.Parallel()
		h := start(t)
		c := begin(t, h)
		done := h.shutdownAsync(10 * time.Second)
		waitFor(t, "Shutdown to reach the session", h.stopping)
		c.write(msg[half:] + "\r\n")
		mb, _ := h.mailbox(alice, "INBOX")
		if l := c.line(); l != fmt.Sprintf("a1 OK [APPENDUID %d 1] APPEND completed", mb.UIDValidity) {
			t.Fatalf("APPEND: %q", l)
		}
		c.bye("* BYE Server shutting down")
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 1 || ms[0].Size != int64(len(msg)) {
			t.Fatalf("after shutdown: %+v", ms)
		}
	})
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		h := start(t)
		c := begin(t, h)
		err := <-h.shutdownAsync(300 * time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if n := h.srv.conns.Len(); n != 0 {
			t.Fatalf("%d sessions left after the cut", n)
		}
		if !c.closed() {
			t.Fatal("not closed")
		}
		if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 0 {
			t.Fatalf("a cut APPEND stored %d messages", len(ms))
		}
	})
}

// TestShutdownDuringHandshake: a client stuck in the implicit-TLS handshake
// does not hold up Shutdown.
func TestShutdownDuringHandshake(t *testing.T) {
	t.Parallel()
	h := start(t, withImplicitTLS())
	nc, err := net.Dial("tcp", h.addr) // never sends a ClientHello
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, "the connection to be tracked", func() bool { return h.srv.conns.Len() == 1 })
	if err := h.shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestLoginTimeout: a client that says nothing before login is logged out
// after LoginTimeout with a BYE saying why (RFC 9051 5.4: the autologout
// timer); after login the longer IdleTimeout applies, in IDLE as well.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	h := start(t, withLimits(func(l *Limits) { l.LoginTimeout = 300 * time.Millisecond; l.IdleTimeout = 900 * time.Millisecond }))
	c := h.dial(t)
	t0 := time.Now()
	c.bye("* BYE Autologout; idle for too long")
	if el := time.Since(t0); el < 250*time.Millisecond {
		t.Fatalf("logged out after %v, before LoginTimeout", el)
	}
	// Logged in: not cut at LoginTimeout, but at IdleTimeout.
	c = h.login(t, alice)
	t0 = time.Now()
	c.bye("* BYE Autologout; idle for too long")
	if el := time.Since(t0); el < 800*time.Millisecond {
		t.Fatalf("logged-in session logged out after %v, before IdleTimeout", el)
	}
	c = h.selectBox(t, alice, "SELECT", "INBOX")
	c.write("i1 IDLE\r\n")
	if l := c.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	c.bye("* BYE Autologout; idle for too long")
}

// TestStartTLSDropsPipelinedCommands: octets sent after STARTTLS before
// the handshake are a man in the middle's injection (RFC 9051 6.2.1,
// CVE-2011-0411 style) and must not run under TLS.
func TestStartTLSDropsPipelinedCommands(t *testing.T) {
	t.Parallel()
	h := start(t, noPlaintext())
	h.add(alice, "INBOX", testMsg(1))
	c := h.dial(t)
	c.write("a STARTTLS\r\nb LOGIN " + quote(alice) + " " + quote(testUsers[alice]) + "\r\nc SELECT INBOX\r\n")
	if l := c.line(); l != "a OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(c.nc, h.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.w, c.r = tc, tc, bufio.NewReader(tc)
	// Had b and c run, their replies would come first, and this session
	// would be logged in.
	c.is("BAD [CLIENTBUG] Log in first", "SELECT INBOX")
	c.loginAs(alice)
	if !strings.Contains(h.log.String(), "dropping octets sent before the handshake") {
		t.Error("injection not logged")
	}
}

// TestImplicitTLS: on the imaps port the greeting comes over TLS and
// offers no STARTTLS; passwords are accepted without AllowPlaintextAuth.
func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	h := start(t, withImplicitTLS(), noPlaintext())
	c := h.dial(t)
	caps := c.ok("CAPABILITY")
	if len(caps) != 1 || strings.Contains(caps[0], "STARTTLS") || strings.Contains(caps[0], "LOGINDISABLED") {
		t.Fatalf("CAPABILITY over implicit TLS: %q", caps)
	}
	c.is("BAD [CLIENTBUG] TLS is already active", "STARTTLS")
	c.loginAs(alice)
	// imapclient over TLS as well.
	ic := h.imapClient(t, bob, nil)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// flateConn switches a raw client to COMPRESS=DEFLATE (RFC 4978 4): raw
// deflate each way, each command flushed with a sync flush.
func (c *tconn) compress() {
	c.t.Helper()
	c.is("OK DEFLATE active", "COMPRESS DEFLATE")
	zw, err := flate.NewWriter(c.nc, flate.BestSpeed)
	if err != nil {
		c.t.Fatal(err)
	}
	c.w, c.flush = zw, zw.Flush
	// What the old reader holds already is deflate data (an empty block
	// from the server's sync flush, say).
	c.r = bufio.NewReader(flate.NewReader(c.r))
}

// TestCompress: after COMPRESS DEFLATE both directions are deflated; a
// large FETCH and an APPEND go through, and a second COMPRESS gets NO
// [COMPRESSIONACTIVE] (RFC 4978 3).
func TestCompress(t *testing.T) {
	t.Parallel()
	h := start(t)
	big := testMsg(1) + strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 2000)
	h.add(alice, "INBOX", big)
	c := h.login(t, alice)
	caps := c.ok("CAPABILITY")
	if !strings.Contains(caps[0], " COMPRESS=DEFLATE") {
		t.Fatalf("no COMPRESS=DEFLATE after login: %q", caps)
	}
	c.compress()
	c.is("OK NOOP completed", "NOOP")
	c.ok("SELECT INBOX")
	r := c.ok("FETCH 1 (BODY.PEEK[])")
	if len(r) != 1 || !strings.Contains(r[0], big) {
		t.Fatalf("FETCH over DEFLATE: %d responses, %d octets", len(r), len(strings.Join(r, "")))
	}
	if got := c.appendMsg("INBOX", `\Seen`, testMsg(2)); !strings.HasPrefix(got, "OK [APPENDUID ") {
		t.Fatalf("APPEND over DEFLATE: %q", got)
	}
	c.is("NO [COMPRESSIONACTIVE] Compression is already active", "COMPRESS DEFLATE")
	caps = c.ok("CAPABILITY")
	if strings.Contains(caps[0], "COMPRESS=") {
		t.Errorf("COMPRESS still offered while active: %q", caps)
	}
	c.ok("LOGOUT")
	if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 2 {
		t.Fatalf("%d messages", len(ms))
	}
}

// TestMaxSessionsPerUser: one account may have MaxSessionsPerUser sessions;
// the next login gets NO [LIMIT] and may try again once one ends. Other
// accounts are not affected.
func TestMaxSessionsPerUser(t *testing.T) {
	t.Parallel()
	h := start(t) // MaxSessionsPerUser 4
	var cs []*tconn
	for range 4 {
		cs = append(cs, h.login(t, alice))
	}
	c := h.dial(t)
	c.is("NO [LIMIT] Too many sessions for this account", "LOGIN %s %s", quote(alice), quote(testUsers[alice]))
	h.login(t, bob)
	cs[0].ok("LOGOUT")
	// The slot is free once the session has ended.
	waitFor(t, "the slot to be released", func() bool {
		h.srv.sessions.mu.Lock()
		defer h.srv.sessions.mu.Unlock()
		return h.srv.sessions.n[alice] == 3
	})
	c.loginAs(alice)
	// A client that just drops the connection frees its slot too.
	cs[1].nc.Close()
	waitFor(t, "the dropped session's slot", func() bool {
		h.srv.sessions.mu.Lock()
		defer h.srv.sessions.mu.Unlock()
		return h.srv.sessions.n[alice] == 3
	})
	h.login(t, alice)
}

// TestGuardBan: failed logins are delayed (growing), the BanAfter-th ends
// the session and bans the address; a banned address is refused with BYE
// instead of a greeting (RFC 9051 7.1.5) until the ban expires.
func TestGuardBan(t *testing.T) {
	t.Parallel()
	h := start(t, withGuard(guard.Limits{FailDelay: time.Second, MaxFailDelay: 8 * time.Second, BanAfter: 3,
		BanWindow: time.Hour, BanDuration: time.Hour}))
	c := h.dial(t)
	for range 2 {
		c.is("NO [AUTHENTICATIONFAILED] Authentication failed", "LOGIN %s %s", quote(alice), quote("guess"))
	}
	if w := h.clock.waits(); len(w) != 2 || w[0] <= 0 || w[1] <= w[0] {
		t.Fatalf("delays %v, want growing", w)
	}
	c.write("a3 LOGIN " + quote(alice) + " " + quote("guess") + "\r\n")
	c.bye("* BYE Too many failed logins from your address")
	if banned, _ := h.guard.Banned(guard.AddrIP(c.nc.LocalAddr())); !banned {
		t.Fatal("not banned")
	}
	// A new connection is refused outright, even with the right password.
	c = h.dialRaw(t)
	c.bye("* BYE [UNAVAILABLE] Too many failed logins from your address; try again later")
	h.clock.advance(2 * time.Hour)
	h.login(t, alice)
}

// TestNoTLSConfigured: without a certificate the server offers no STARTTLS
// and refuses it with NO, not BAD (the command is valid; the server cannot).
func TestNoTLSConfigured(t *testing.T) {
	t.Parallel()
	h := start(t, withoutTLS())
	c := h.dial(t)
	caps := c.ok("CAPABILITY")
	if len(caps) != 1 || strings.Contains(caps[0], "STARTTLS") {
		t.Fatalf("CAPABILITY without TLS: %q", caps)
	}
	c.is("NO [UNAVAILABLE] TLS is not available", "STARTTLS")
	c.loginAs(alice)
}
