package pop3server

import (
	"slices"
	"strings"
	"testing"

	"posta/internal/config"
)

// sample arguments that are valid for each verb, so a refusal can only come
// from the state rules.
var sampleArgs = map[string]string{
	"USER": " alice@example.test", "PASS": " x", "AUTH": " PLAIN", "LIST": " 1", "RETR": " 1", "DELE": " 1",
	"TOP": " 1 0", "UIDL": " 1",
}

// TestTableBeforeLogin walks the command table: every verb that is not
// valid in the AUTHORIZATION state, sent before login, gets "-ERR Log in
// first", and the session goes on.
func TestTableBeforeLogin(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	checked := 0
	for _, verb := range sortedVerbs() {
		if commands[verb].flags&authorization != 0 {
			continue
		}
		c.is("-ERR Log in first", "%s%s", verb, sampleArgs[verb])
		// Lower case too: keywords are case-insensitive (RFC 1939 3).
		c.is("-ERR Log in first", "%s%s", strings.ToLower(verb), sampleArgs[verb])
		checked++
	}
	if checked < 8 {
		t.Fatalf("only %d TRANSACTION verbs in the table", checked)
	}
	c.is("+OK Bye", "QUIT")
}

// TestTableAfterLogin: every verb valid only before login is refused after
// it (RFC 5034 4: a second AUTH must get -ERR), and every TRANSACTION verb
// is accepted.
func TestTableAfterLogin(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", "Subject: a\r\n\r\nbody\r\n")
	c := h.login(t, "alice@example.test")
	// DELE last: it would make the others' message 1 deleted.
	verbs := slices.DeleteFunc(sortedVerbs(), func(v string) bool { return v == "DELE" })
	for _, verb := range append(verbs, "DELE") {
		f := commands[verb].flags
		if f&transaction == 0 {
			c.is("-ERR Already logged in", "%s%s", verb, sampleArgs[verb])
			continue
		}
		if verb == "QUIT" || verb == "CAPA" {
			continue
		}
		got := c.cmd("%s%s", verb, sampleArgs[verb])
		if !strings.HasPrefix(got, "+OK") {
			t.Fatalf("%s after login: %q", verb, got)
		}
		if verb == "RETR" || verb == "TOP" || (verb == "LIST" || verb == "UIDL") && sampleArgs[verb] == "" {
			c.multi()
		}
	}
}

// TestPlaintextRefusedBeforeTLS: on port 110 without STLS, USER, PASS and
// AUTH are refused (RFC 2595 2.2, RFC 5034 4), unless the configuration
// allows plaintext passwords.
func TestPlaintextRefusedBeforeTLS(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["pop3"])
	for _, verb := range sortedVerbs() {
		if commands[verb].flags&needsTLS == 0 {
			continue
		}
		c.is("-ERR Authentication requires TLS: use STLS first", "%s%s", verb, sampleArgs[verb])
	}
	caps := capa(t, c)
	if slices.Contains(caps, "USER") || hasPrefix(caps, "SASL") || !slices.Contains(caps, "STLS") {
		t.Fatalf("CAPA before TLS: %q", caps)
	}
	c.stls(h.clientTLS())
	caps = capa(t, c)
	if !slices.Contains(caps, "USER") || slices.Contains(caps, "STLS") ||
		!slices.Contains(caps, "SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN") {
		t.Fatalf("CAPA after STLS: %q", caps)
	}
	c.is("+OK Send PASS", "USER alice@example.test")
	if got := c.cmd("PASS %s", testUsers["alice@example.test"]); !strings.HasPrefix(got, "+OK Logged in") {
		t.Fatalf("PASS after STLS: %q", got)
	}

	t.Run("allowed by config", func(t *testing.T) {
		h := start(t, withConfig(func(c *config.Config) { c.AllowPlaintextAuth = true }))
		c := dial(t, h.addr["pop3"])
		caps := capa(t, c)
		if !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL SCRAM-SHA-256 PLAIN LOGIN") {
			t.Fatalf("CAPA: %q", caps)
		}
		c.is("+OK Send PASS", "USER bob@example.test")
		if got := c.cmd("PASS %s", testUsers["bob@example.test"]); !strings.HasPrefix(got, "+OK Logged in") {
			t.Fatalf("PASS: %q", got)
		}
	})
}

func TestCAPA(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	want := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "LOGIN-DELAY 0",
		"USER", "SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN", "IMPLEMENTATION Posta"}
	if got := capa(t, c); !slices.Equal(got, want) {
		t.Fatalf("CAPA before login:\n got %q\nwant %q", got, want)
	}
	c.is("+OK Send PASS", "USER alice@example.test")
	c.cmd("PASS %s", testUsers["alice@example.test"])
	// RFC 2449 5: what is announced before login is announced after it.
	if got := capa(t, c); !slices.Equal(got, want) {
		t.Fatalf("CAPA after login:\n got %q\nwant %q", got, want)
	}
	h2 := start(t, withPolicy(Policy{ExpireDays: 30, LoginDelay: 1500}))
	c2 := dialTLS(t, h2.addr["pop3s"], h2.clientTLS())
	if got := capa(t, c2); !slices.Contains(got, "EXPIRE 30") || !slices.Contains(got, "LOGIN-DELAY 1") {
		t.Fatalf("CAPA with a policy: %q", got)
	}
}

func capa(t testing.TB, c *client) []string {
	t.Helper()
	c.is("+OK Capability list follows", "CAPA")
	return c.multi()
}

func hasPrefix(list []string, p string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, p) })
}

func sortedVerbs() []string {
	var v []string
	for k := range commands {
		v = append(v, k)
	}
	slices.Sort(v)
	return v
}

// TestBadCommands: bad commands get -ERR and the session goes on, until
// MaxErrors, which ends it.
func TestBadCommands(t *testing.T) {
	h := start(t, withLimits(Limits{MaxErrors: 5, IdleTimeout: ioTimeout, WriteTimeout: ioTimeout}))
	h.add("alice@example.test", "Subject: a\r\n\r\nbody\r\n")
	c := h.login(t, "alice@example.test")
	c.is("-ERR Unknown command", "XYZZY")
	c.is("-ERR Syntax error", "RETR x")
	c.is("-ERR No such message", "RETR 2")
	c.is("-ERR Syntax error", "RETR 0")
	c.is("+OK 1 20", "STAT")
	c.is("-ERR Too many bad commands, closing connection", "LIST 1 2")
	if !c.closed() {
		t.Fatal("session not closed after MaxErrors")
	}
}

// TestUnknownBeforeLogin: an unknown command before login ends the session
// (cross-protocol requests, e.g. HTTP sent to the POP3 port).
func TestUnknownBeforeLogin(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["pop3"])
	c.is("-ERR Unknown command, closing connection", "GET / HTTP/1.1")
	if !c.closed() {
		t.Fatal("not closed")
	}
	// APOP is not offered (doc.go): it is unknown too.
	c = dial(t, h.addr["pop3"])
	c.is("-ERR Unknown command, closing connection", "APOP mrose c4c9334bac560ecc979e58001b3e22fb")
}

func TestTooManyCommandsBeforeLogin(t *testing.T) {
	h := start(t, withLimits(Limits{MaxCommandsBeforeAuth: 3, IdleTimeout: ioTimeout, WriteTimeout: ioTimeout}))
	c := dial(t, h.addr["pop3"])
	for range 3 {
		c.is("+OK Capability list follows", "CAPA")
		c.multi()
	}
	c.is("-ERR Too many commands before login, closing connection", "CAPA")
	if !c.closed() {
		t.Fatal("not closed")
	}
}

// TestLineLimits: RFC 2449 4 allows refusing longer commands; the line is
// consumed and the session goes on. A line with no end closes the session.
func TestLineLimits(t *testing.T) {
	h := start(t, withLimits(Limits{MaxLineLength: 300, IdleTimeout: ioTimeout, WriteTimeout: ioTimeout}))
	c := dial(t, h.addr["pop3"])
	// 300 octets with CRLF is accepted (as a syntax matter: it is a USER).
	c.is("-ERR Authentication requires TLS: use STLS first", "USER %s", strings.Repeat("a", 300-2-5))
	c.is("-ERR Line too long", "USER %s", strings.Repeat("a", 300-2-4))
	c.is("+OK Capability list follows", "CAPA")
	c.multi()
	c.write(strings.Repeat("x", 2*300*floodFactor))
	if got := c.line(); got != "-ERR Line too long, closing connection" {
		t.Fatalf("flood: %q", got)
	}
	if !c.closed() {
		t.Fatal("not closed")
	}
}

// TestPipelining: commands sent together are answered in order (RFC 2449
// 6.6), replies flushed together.
func TestPipelining(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", "Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n")
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.write("USER alice@example.test\r\nPASS " + testUsers["alice@example.test"] + "\r\nSTAT\r\nLIST\r\nRETR 2\r\nDELE 1\r\nSTAT\r\nNOOP\r\n")
	for _, want := range []string{"+OK Send PASS", "+OK Logged in, 2 messages (38 octets)", "+OK 2 38",
		"+OK 2 messages (38 octets)"} {
		if got := c.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if l := c.multi(); !slices.Equal(l, []string{"1 19", "2 19"}) {
		t.Fatalf("LIST %q", l)
	}
	if got := c.line(); got != "+OK 19 octets" {
		t.Fatal(got)
	}
	if b := c.multi(); !slices.Equal(b, []string{"Subject: 2", "", "two"}) {
		t.Fatalf("RETR %q", b)
	}
	for _, want := range []string{"+OK Message 1 deleted", "+OK 1 19", "+OK"} {
		if got := c.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
