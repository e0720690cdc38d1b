package imapserver

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"posta/internal/mailstore"
)

// exampleArgs are plausible arguments for every verb of the command table,
// so each command parses and reaches the dispatcher's state checks. A verb
// added to the table without a row here fails TestCommandTableCovered.
var exampleArgs = map[string]string{
	"CAPABILITY":   "",
	"NOOP":         "",
	"LOGOUT":       "",
	"ID":           `("name" "test")`,
	"STARTTLS":     "",
	"AUTHENTICATE": "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==",
	"LOGIN":        `"alice@example.test" "alice-password"`,
	"ENABLE":       "CONDSTORE",
	"SELECT":       "INBOX",
	"EXAMINE":      "INBOX",
	"CREATE":       "Projects",
	"DELETE":       "Projects",
	"RENAME":       "Projects Done",
	"SUBSCRIBE":    "Archive",
	"UNSUBSCRIBE":  "Archive",
	"LIST":         `"" "*"`,
	"LSUB":         `"" "*"`,
	"NAMESPACE":    "",
	"STATUS":       "INBOX (MESSAGES UIDNEXT)",
	"APPEND":       "INBOX {5}", // synchronizing: refused before the "+"
	"IDLE":         "",
	"COMPRESS":     "DEFLATE",
	"GETQUOTA":     `""`,
	"GETQUOTAROOT": "INBOX",
	"SETQUOTA":     `"" (STORAGE 1000)`,
	"CHECK":        "",
	"CLOSE":        "",
	"UNSELECT":     "",
	"EXPUNGE":      "",
	"UID EXPUNGE":  "1",
	"SEARCH":       "ALL",
	"UID SEARCH":   "ALL",
	"FETCH":        "1 (UID FLAGS)",
	"UID FETCH":    "1 (FLAGS)",
	"STORE":        `1 +FLAGS (\Seen)`,
	"UID STORE":    `1 +FLAGS (\Seen)`,
	"COPY":         "1 Archive",
	"UID COPY":     "1 Archive",
	"MOVE":         "1 Archive",
	"UID MOVE":     "1 Archive",
}

func verbs(pick func(flag) bool) []string {
	var out []string
	for v, c := range commands {
		if pick(c.flags) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func commandLine(verb string) string {
	if a := exampleArgs[verb]; a != "" {
		return verb + " " + a
	}
	return verb
}

func TestCommandTableCovered(t *testing.T) {
	for v := range commands {
		if _, ok := exampleArgs[v]; !ok {
			t.Errorf("verb %s has no row in exampleArgs", v)
		}
	}
	for v := range exampleArgs {
		if _, ok := commands[v]; !ok {
			t.Errorf("exampleArgs has %s, which the command table lacks", v)
		}
	}
}

// manyErrors lets one session collect every BAD the table walk provokes.
func manyErrors(l *Limits) { l.MaxErrors, l.MaxCommandsBeforeAuth = 1000, 1000 }

// TestCommandsNeedLogin walks the table: every verb that is not allowed in
// the Not Authenticated state (RFC 9051 6.2 lists what is) is refused
// before login with the "log in first" BAD, and the session goes on.
func TestCommandsNeedLogin(t *testing.T) {
	t.Parallel()
	h := start(t, withLimits(manyErrors))
	h.add(alice, "INBOX", testMsg(1))
	vs := verbs(func(f flag) bool { return f&(notAuth|anyState) == 0 })
	if len(vs) < 30 {
		t.Fatalf("only %d verbs need login: %v", len(vs), vs)
	}
	walk(t, vs, func() *tconn { return h.dial(t) }, "BAD [CLIENTBUG] Log in first")
	// Nothing ran: no mailbox was created, no message moved or flagged.
	if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 1 || ms[0].Flags.System != 0 {
		t.Fatalf("INBOX changed before login: %+v", ms)
	}
	if _, err := h.store.Mailbox(h.ctx, alice, "Projects"); err == nil {
		t.Fatal("CREATE ran before login")
	}
}

// walk sends each verb (with its example arguments) on one session and
// checks the exact tagged reply, with no untagged response before it (an
// APPEND's synchronizing literal must not get its "+"). A reply that does
// not come within a few seconds is an error; the walk goes on over a new
// session, so one bug does not hide the others.
func walk(t *testing.T, vs []string, open func() *tconn, want string) {
	t.Helper()
	c := open()
	for _, v := range vs {
		r, ok := c.within(replyWait, "%s", commandLine(v))
		switch {
		case !ok:
			t.Errorf("%s: no tagged reply within %v, want %q (untagged so far %q)", v, replyWait, want, r.untagged)
			c.nc.Close()
			c = open()
			continue
		case r.tagged != want:
			t.Errorf("%s: got %q, want %q", v, r.tagged, want)
		case len(r.untagged) != 0:
			t.Errorf("%s: untagged %q before the refusal", v, r.untagged)
		}
	}
	c.ok("NOOP")
}

// TestCommandsNeedSelected: in the Authenticated state every
// Selected-state verb (RFC 9051 6.4) gets "No mailbox selected", and the
// Not-Authenticated verbs get "Already logged in".
func TestCommandsNeedSelected(t *testing.T) {
	t.Parallel()
	h := start(t, withLimits(manyErrors))
	h.add(alice, "INBOX", testMsg(1))
	login := func() *tconn { return h.login(t, alice) }
	walk(t, verbs(func(f flag) bool { return f&needSelected != 0 }), login, "BAD [CLIENTBUG] No mailbox selected")
	walk(t, verbs(func(f flag) bool { return f&notAuth != 0 }), login, "BAD [CLIENTBUG] Already logged in")
	if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 1 || ms[0].Flags.System != 0 {
		t.Fatalf("INBOX changed without a selected mailbox: %+v", ms)
	}
}

// TestReadOnlyRefusesWrites: in a mailbox opened with EXAMINE, every verb
// that changes it gets NO [READ-ONLY] (RFC 9051 6.3.3, 7.1: READ-ONLY), and
// nothing changes; reading and COPY out still work.
func TestReadOnlyRefusesWrites(t *testing.T) {
	t.Parallel()
	h := start(t, withLimits(manyErrors))
	h.add(alice, "INBOX", testMsg(1), testMsg(2))
	mb, _ := h.mailbox(alice, "INBOX")
	if _, _, err := h.store.SetFlags(h.ctx, mb.ID, []uint32{1}, mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Deleted}, 0); err != nil {
		t.Fatal(err)
	}
	c := h.login(t, alice)
	r := c.is("OK [READ-ONLY] EXAMINE completed", "EXAMINE INBOX")
	if !slices.Contains(r.untagged, "* OK [PERMANENTFLAGS ()] No permanent flags permitted") {
		t.Errorf("EXAMINE: %q", r.untagged)
	}
	ws := verbs(func(f flag) bool { return f&writable != 0 })
	for _, want := range []string{"EXPUNGE", "UID EXPUNGE", "STORE", "UID STORE", "MOVE", "UID MOVE"} {
		if !slices.Contains(ws, want) {
			t.Errorf("%s is not marked writable", want)
		}
	}
	for _, v := range ws {
		c.is("NO [READ-ONLY] Mailbox is read-only", "%s", commandLine(v))
	}
	// RFC 9051 6.4.1: CLOSE on a read-only mailbox expunges nothing.
	c.ok("CLOSE")
	c.ok("EXAMINE INBOX")
	// RFC 9051 6.4.5: BODY[] does not set \Seen in a read-only mailbox.
	c.ok("FETCH 2 (BODY[])")
	c.ok("COPY 2 Archive")
	_, ms := h.mailbox(alice, "INBOX")
	if len(ms) != 2 || ms[0].Flags.System != mailstore.Deleted || ms[1].Flags.System != 0 {
		t.Fatalf("read-only INBOX changed: %+v", ms)
	}
	if _, arch := h.mailbox(alice, "Archive"); len(arch) != 1 {
		t.Fatalf("COPY out of a read-only mailbox: %d in Archive", len(arch))
	}
}

// TestUnknownCommandBeforeLogin: a verb the server does not know, before
// login, is likely another protocol speaking to the port (cross-protocol
// attacks); the session ends with BYE and no tagged reply.
func TestUnknownCommandBeforeLogin(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, line := range []string{"a1 XPIG-LATIN", "GET / HTTP/1.1", "EHLO client.example", "USER alice"} {
		c := h.dial(t)
		c.write(line + "\r\n")
		c.bye("* BYE Unknown command before login")
	}
}

// TestUnknownCommandAfterLogin: after login an unknown verb is a BAD
// (RFC 9051 7.1.5, "A442 XPIG-LATIN" in 6.5's example), sent at once, and
// the session goes on.
func TestUnknownCommandAfterLogin(t *testing.T) {
	t.Parallel()
	h := start(t)
	c := h.login(t, alice)
	r, ok := c.within(replyWait, "XPIG-LATIN")
	if !ok {
		t.Fatalf("no reply to an unknown command within %v (untagged %q)", replyWait, r.untagged)
	}
	if !strings.HasPrefix(r.tagged, "BAD [CLIENTBUG] ") || len(r.untagged) != 0 {
		t.Fatalf("got %q %q", r.untagged, r.tagged)
	}
	c.ok("NOOP")
}

// TestSyntaxErrorAnsweredAtOnce: a command the grammar rejects gets its
// BAD without the client having to send anything more (RFC 9051 2.2.2: the
// server sends a completion result for every command). Each case runs with
// a short read deadline so a BAD that waits in the server's buffer shows as
// a failure, not a hang.
func TestSyntaxErrorAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	h := start(t, withLimits(manyErrors))
	h.add(alice, "INBOX", testMsg(1))
	cases := []struct{ state, line, want string }{
		{"selected", "FETCH", "BAD [CLIENTBUG] "},
		{"selected", "FETCH 1", "BAD [CLIENTBUG] "},
		{"selected", "FETCH x (UID)", "BAD [CLIENTBUG] "},
		{"selected", "STORE 1 +FLAGS (\\Seen", "BAD [CLIENTBUG] "},
		{"selected", "SEARCH FOO", "BAD [CLIENTBUG] "},
		{"auth", "SELECT", "BAD [CLIENTBUG] "},
		{"auth", "NOOP extra", "BAD [CLIENTBUG] "},
		{"auth", "CREATE", "BAD [CLIENTBUG] "},
		{"notauth", "LOGIN onlyuser", "BAD [CLIENTBUG] "},
	}
	for _, tc := range cases {
		t.Run(tc.state+"/"+tc.line, func(t *testing.T) {
			t.Parallel()
			var c *tconn
			switch tc.state {
			case "notauth":
				c = h.dial(t)
			case "auth":
				c = h.login(t, alice)
			default:
				c = h.selectBox(t, alice, "SELECT", "INBOX")
			}
			r, ok := c.within(replyWait, "%s", tc.line)
			if !ok {
				t.Fatalf("no reply to %q within %v: the BAD is not flushed until the client sends more", tc.line, replyWait)
			}
			if !strings.HasPrefix(r.tagged, tc.want) || len(r.untagged) != 0 {
				t.Fatalf("%q: got %q %q, want %q...", tc.line, r.untagged, r.tagged, tc.want)
			}
			c.ok("NOOP")
		})
	}
}

// TestTooManyErrors: MaxErrors BADs in a row end the session with BYE
// after the last tagged BAD; a good command in between starts the count
// again.
func TestTooManyErrors(t *testing.T) {
	t.Parallel()
	h := start(t) // MaxErrors 5
	c := h.login(t, alice)
	for range 4 {
		c.bad("FETCH 1 (UID)")
	}
	c.ok("NOOP")
	for range 4 {
		c.bad("FETCH 1 (UID)")
	}
	c.bad("FETCH 1 (UID)")
	c.bye("* BYE Too many bad commands")

	// Before login too, with the "log in first" BAD.
	c = h.dial(t)
	for range 4 {
		c.is("BAD [CLIENTBUG] Log in first", "SELECT INBOX")
	}
	c.is("BAD [CLIENTBUG] Log in first", "SELECT INBOX")
	c.bye("* BYE Too many bad commands")
}

// TestTooManyCommandsBeforeLogin: MaxCommandsBeforeAuth commands without a
// login, however harmless, and the next ends the session.
func TestTooManyCommandsBeforeLogin(t *testing.T) {
	t.Parallel()
	h := start(t) // MaxCommandsBeforeAuth 20
	c := h.dial(t)
	for range 20 {
		c.ok("NOOP")
	}
	c.write("a NOOP\r\n")
	c.bye("* BYE Too many commands before login")
	// Logging in within the budget resets nothing to worry about: the
	// count stops at login.
	c = h.dial(t)
	for range 19 {
		c.ok("CAPABILITY")
	}
	c.loginAs(alice)
	for range 30 {
		c.ok("NOOP")
	}
}

// TestLoginDisabledWithoutTLS: without AllowPlaintextAuth, the greeting
// says LOGINDISABLED and STARTTLS (RFC 9051 6.2.3, 7.2.2), LOGIN gets NO
// [PRIVACYREQUIRED], and after STARTTLS the same LOGIN works.
func TestLoginDisabledWithoutTLS(t *testing.T) {
	t.Parallel()
	h := start(t, noPlaintext())
	c := h.dialRaw(t)
	g := c.line()
	if !strings.Contains(g, " STARTTLS ") || !strings.Contains(g, " LOGINDISABLED ") || strings.Contains(g, "AUTH=PLAIN") {
		t.Fatalf("greeting %q", g)
	}
	c.is("NO [PRIVACYREQUIRED] Use STARTTLS (or port 993) before sending a password",
		"LOGIN %s %s", quote(alice), quote(testUsers[alice]))
	c.is("NO [PRIVACYREQUIRED] Use STARTTLS (or port 993) before sending a password",
		"AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==")
	c.starttls(h.clientTLS())
	caps := c.ok("CAPABILITY")
	if len(caps) != 1 || strings.Contains(caps[0], "STARTTLS") || strings.Contains(caps[0], "LOGINDISABLED") ||
		!strings.Contains(caps[0], " AUTH=PLAIN ") {
		t.Fatalf("capabilities under TLS: %q", caps)
	}
	c.is("BAD [CLIENTBUG] TLS is already active", "STARTTLS")
	c.loginAs(alice)
}

// TestLogin covers LOGIN and AUTHENTICATE outcomes: wrong password, unknown
// user, quoted and literal arguments, SASL PLAIN with and without an
// initial response, and a cancelled exchange.
func TestLogin(t *testing.T) {
	t.Parallel()
	h := start(t)
	c := h.dial(t)
	c.is("NO [AUTHENTICATIONFAILED] Authentication failed", "LOGIN %s %s", quote(alice), quote("wrong"))
	c.is("NO [AUTHENTICATIONFAILED] Authentication failed", "LOGIN %s %s", quote("nobody@example.test"), quote("x"))
	if w := h.clock.waits(); len(w) != 2 || w[0] <= 0 {
		t.Fatalf("failed logins waited %v", w)
	}
	// A password with spaces as a synchronizing literal (RFC 9051 4.3).
	pw := testUsers[bob]
	tag := c.nextTag()
	c.write(tag + " LOGIN " + quote(bob) + " {" + strconv.Itoa(len(pw)) + "}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("literal: %q", l)
	}
	c.write(pw + "\r\n")
	if r := c.until(tag); !strings.HasSuffix(r.tagged, "] Logged in") {
		t.Fatalf("LOGIN with literal: %q", r.tagged)
	}
	c.is("BAD [CLIENTBUG] Already logged in", "LOGIN %s %s", quote(alice), quote(testUsers[alice]))

	// AUTHENTICATE PLAIN without initial response: an empty challenge.
	c = h.dial(t)
	tag = c.nextTag()
	c.write(tag + " AUTHENTICATE PLAIN\r\n")
	if l := c.line(); l != "+ " && l != "+" {
		t.Fatalf("challenge %q", l)
	}
	c.write("AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==\r\n")
	if r := c.until(tag); !strings.HasSuffix(r.tagged, "] Logged in") {
		t.Fatalf("AUTHENTICATE PLAIN: %q", r.tagged)
	}
	// Cancelled (RFC 9051 6.2.2: "*" gets BAD).
	c = h.dial(t)
	tag = c.nextTag()
	c.write(tag + " AUTHENTICATE PLAIN\r\n")
	c.line()
	c.write("*\r\n")
	if r := c.until(tag); r.tagged != "BAD [CLIENTBUG] Authentication cancelled" {
		t.Fatalf("cancel: %q", r.tagged)
	}
	c.is("NO [CANNOT] Unsupported authentication mechanism", "AUTHENTICATE X-UNKNOWN")
	c.is("OK [CAPABILITY "+strings.TrimPrefix(capsAfterLogin(t, h), "* CAPABILITY ")+"] Logged in",
		"AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==")
}

// capsAfterLogin is the CAPABILITY response of a logged-in session.
func capsAfterLogin(t *testing.T, h *harness) string {
	c := h.login(t, carol)
	caps := c.ok("CAPABILITY")
	if len(caps) != 1 {
		t.Fatalf("CAPABILITY: %q", caps)
	}
	return caps[0]
}

// TestAppendRefused: an APPEND that cannot succeed is refused before the
// message is sent: with a synchronizing literal the client gets the tagged
// NO instead of "+" (RFC 9051 7.5; RFC 7889 for TOOBIG, RFC 9208 4.3 for
// OVERQUOTA, RFC 9051 6.3.12 for TRYCREATE); with LITERAL+ it has sent the
// data anyway, which the server skips (RFC 7888 4), and the session goes
// on. Nothing is stored.
func TestAppendRefused(t *testing.T) {
	t.Parallel()
	h := start(t, withQuota(alice, 1000), withLimits(func(l *Limits) { l.Wire.MaxAppend = 4000; l.MaxSessionsPerUser = 20 }))
	cases := []struct{ name, cmd, want string }{
		{"overquota", "APPEND INBOX {3000", "NO [OVERQUOTA] Quota exceeded"},
		{"toobig", "APPEND INBOX {5000", "NO [TOOBIG] message larger than the APPENDLIMIT"},
		{"trycreate", "APPEND Nosuch {10", "NO [TRYCREATE] No such mailbox; create it first"},
		{"badname", "APPEND \"a//b\" {10", "NO [CANNOT] Bad mailbox name"},
	}
	for _, tc := range cases {
		for _, plus := range []bool{false, true} {
			name := tc.name
			if plus {
				name += "/literal+"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := h.login(t, alice)
				n, _ := strconv.Atoi(tc.cmd[strings.LastIndexByte(tc.cmd, '{')+1:])
				tag := c.nextTag()
				if plus {
					c.write(tag + " " + tc.cmd + "+}\r\n" + strings.Repeat("x", n) + "\r\n")
				} else {
					c.write(tag + " " + tc.cmd + "}\r\n")
				}
				c.nc.SetReadDeadline(time.Now().Add(replyWait))
				l, err := c.next()
				c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
				if err != nil {
					t.Fatalf("no reply within %v: %v", replyWait, err)
				}
				if l != tag+" "+tc.want {
					t.Fatalf("got %q, want %q", l, tag+" "+tc.want)
				}
				c.ok("NOOP")
			})
		}
	}
	t.Cleanup(func() {
		if _, ms := h.mailbox(alice, "INBOX"); len(ms) != 0 {
			t.Errorf("%d messages stored", len(ms))
		}
	})
}

// TestNoExpungeDuringSeqCommands: while FETCH, STORE and SEARCH by sequence
// number run, the server must not send EXPUNGE (RFC 9051 7.5.1: it would
// change the numbers the command uses); NOOP, or a UID command, brings
// it.
func TestNoExpungeDuringSeqCommands(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.add(alice, "INBOX", testMsg(1), testMsg(2), testMsg(3))
	s1 := h.selectBox(t, alice, "SELECT", "INBOX")
	s2 := h.selectBox(t, alice, "SELECT", "INBOX")
	s2.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	s2.ok("EXPUNGE")
	for _, cmd := range []string{"FETCH 2:3 (UID)", `STORE 3 +FLAGS (\Seen)`, "SEARCH ALL", "FETCH 1:* (FLAGS)"} {
		for _, l := range s1.ok("%s", cmd) {
			if expungeRE.MatchString(l) {
				t.Fatalf("%s: %q during a command by sequence number", cmd, l)
			}
		}
	}
	// The numbers still mean what s1 was told: 3 is UID 3.
	if r := s1.ok("FETCH 3 (UID)"); len(r) != 1 || r[0] != "* 3 FETCH (UID 3)" {
		t.Fatalf("FETCH 3 (UID): %q", r)
	}
	if r := s1.ok("NOOP"); !slices.Contains(r, "* 1 EXPUNGE") {
		t.Fatalf("NOOP: %q, want * 1 EXPUNGE", r)
	}
	if r := s1.ok("FETCH 1:* (UID)"); strings.Join(r, "|") != "* 1 FETCH (UID 2)|* 2 FETCH (UID 3)" {
		t.Fatalf("after NOOP: %q", r)
	}
	// A UID command may carry the EXPUNGE.
	s2.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	s2.ok("EXPUNGE")
	if r := s1.ok("UID FETCH 3 (UID)"); !slices.Contains(r, "* 1 EXPUNGE") {
		t.Fatalf("UID FETCH: %q, want * 1 EXPUNGE", r)
	}
}
