package pop3server

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"posta/internal/guard"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("server sent bad base64 %q: %v", s, err)
	}
	return string(b)
}

func TestUserPass(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.is("-ERR Send USER first", "PASS x")
	c.is("-ERR Syntax error", "USER")
	c.is("-ERR Syntax error", "USER a b")
	// RFC 1939 7: PASS only right after USER.
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("+OK Capability list follows", "CAPA")
	c.multi()
	c.is("-ERR Send USER first", "PASS %s", testUsers["alice@example.test"])
	// An unknown user gets the same answers as a wrong password.
	c.is("+OK Send PASS", "USER nobody@example.test")
	c.is("-ERR [AUTH] Authentication failed", "PASS %s", testUsers["alice@example.test"])
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [AUTH] Authentication failed", "PASS wrong")
	// Each failure waited the guard's doubling delay before its reply.
	if w := h.clock.waits(); !slices.Equal(w, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("failed-login delays %v", w)
	}
	// A password with spaces is the whole rest of the line.
	c.is("+OK Send PASS", "USER Bob@Example.Test")
	if got := c.cmd("PASS %s", testUsers["bob@example.test"]); got != "+OK Logged in, 0 messages (0 octets)" {
		t.Fatalf("PASS with spaces: %q", got)
	}
	if strings.Contains(h.log.String(), "alice-password") || strings.Contains(h.log.String(), "bob password") {
		t.Fatal("password in the log")
	}
}

func TestDirectoryDown(t *testing.T) {
	h := start(t)
	h.creds.fail(errors.New("directory: database is locked at /secret"))
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [SYS/TEMP] Temporary authentication failure, try again later", "PASS %s", testUsers["alice@example.test"])
	c.is("-ERR [SYS/TEMP] Temporary authentication failure, try again later", "AUTH PLAIN %s",
		b64("\x00alice@example.test\x00"+testUsers["alice@example.test"]))
	// Our failure is not the client's: no delay, no strike.
	if w := h.clock.waits(); len(w) != 0 {
		t.Fatalf("delays %v", w)
	}
}

func TestAuthPlain(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg)
	plain := b64("\x00alice@example.test\x00" + testUsers["alice@example.test"])
	loggedIn := fmt.Sprintf("+OK Logged in, 1 messages (%d octets)", len(plainMsg))
	t.Run("initial response", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		c.is(loggedIn, "AUTH PLAIN %s", plain)
		c.is("-ERR Already logged in", "AUTH PLAIN %s", plain) // RFC 5034 4
		c.is("+OK Bye, 0 messages deleted", "QUIT")
	})
	t.Run("empty challenge", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		// RFC 5034 4: "+ " then the response.
		c.is("+ ", "auth plain")
		c.is(loggedIn, "%s", plain)
		c.is("+OK Bye, 0 messages deleted", "QUIT")
	})
	t.Run("failures", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		c.is("+ ", "AUTH PLAIN")
		c.is("-ERR Authentication cancelled", "*")
		c.is("+ ", "AUTH PLAIN")
		c.is("-ERR Invalid base64 in authentication response", "AG=FsaWNl")
		c.is("-ERR Invalid base64 in authentication response", "AUTH PLAIN =AAA")
		c.is("-ERR Invalid base64 in authentication response", "AUTH PLAIN AA\x80A")
		// "=" is an empty initial response; internal/sasl's PLAIN answers it
		// like no initial response, with an empty challenge.
		c.is("+ ", "AUTH PLAIN =")
		c.is("-ERR Authentication cancelled", "*")
		c.is("-ERR [AUTH] Authentication failed", "AUTH PLAIN %s", b64("\x00alice@example.test\x00wrong"))
		c.is("-ERR [AUTH] Authentication failed", "AUTH PLAIN %s",
			b64("bob@example.test\x00alice@example.test\x00"+testUsers["alice@example.test"]))
		c.is("-ERR Unsupported authentication mechanism", "AUTH CRAM-MD5")
		c.is("-ERR Syntax error", "AUTH PLAIN a b")
		// RFC 5034 4: after a failed AUTH the client may try again.
		c.is(loggedIn, "AUTH PLAIN %s", plain)
	})
	t.Run("mechanism list", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		c.is("+OK Mechanisms follow", "AUTH")
		if got := c.multi(); !slices.Equal(got, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"}) {
			t.Fatalf("AUTH list %q", got)
		}
	})
}

func TestAuthLogin(t *testing.T) {
	h := start(t)
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	r := c.cmd("AUTH LOGIN")
	if unb64(t, strings.TrimPrefix(r, "+ ")) != "Username:" {
		t.Fatalf("LOGIN challenge %q", r)
	}
	c.cmd("%s", b64("bob@example.test"))
	c.is("+OK Logged in, 0 messages (0 octets)", "%s", b64(testUsers["bob@example.test"]))
}

// scramExchange runs SCRAM-SHA-256 (or -PLUS) with the xdg-go/scram client
// and returns the final reply. RFC 5034 4: POP3 has no additional data on
// +OK, so the server-final message comes as a "+ " challenge and the client
// answers with an empty line.
func scramExchange(t *testing.T, c *client, mech, user, pass string, initial bool,
	conv func(*scram.Client) *scram.ClientConversation) string {
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
	var r string
	if initial {
		r = c.cmd("AUTH %s %s", mech, b64(first))
	} else {
		c.is("+ ", "AUTH %s", mech)
		r = c.cmd("%s", b64(first))
	}
	if !strings.HasPrefix(r, "+ ") {
		return r
	}
	final, err := cv.Step(unb64(t, strings.TrimPrefix(r, "+ ")))
	if err != nil {
		t.Fatalf("client-final: %v", err)
	}
	r = c.cmd("%s", b64(final))
	if !strings.HasPrefix(r, "+ ") {
		return r
	}
	serverFinal := unb64(t, strings.TrimPrefix(r, "+ "))
	if _, err := cv.Step(serverFinal); err != nil || !cv.Valid() {
		t.Fatalf("server signature %q not accepted by the client: %v", serverFinal, err)
	}
	return c.cmd("")
}

func TestAuthSCRAM(t *testing.T) {
	h := start(t)
	plainConv := func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversation() }
	ok := "+OK Logged in, 0 messages (0 octets)"
	t.Run("SCRAM-SHA-256 with initial response", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		if r := scramExchange(t, c, "SCRAM-SHA-256", "carol@example.test", testUsers["carol@example.test"], true, plainConv); r != ok {
			t.Fatal(r)
		}
	})
	t.Run("SCRAM-SHA-256 without initial response", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		if r := scramExchange(t, c, "SCRAM-SHA-256", "bob@example.test", testUsers["bob@example.test"], false, plainConv); r != ok {
			t.Fatal(r)
		}
	})
	t.Run("SCRAM-SHA-256-PLUS after STLS", func(t *testing.T) {
		c := dial(t, h.addr["pop3"])
		c.stls(h.clientTLS())
		st := c.nc.(*tls.Conn).ConnectionState()
		cb, err := scram.NewTLSExporterBinding(&st)
		if err != nil {
			t.Fatal(err)
		}
		r := scramExchange(t, c, "SCRAM-SHA-256-PLUS", "alice@example.test", testUsers["alice@example.test"], true,
			func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversationWithChannelBinding(cb) })
		if r != ok {
			t.Fatal(r)
		}
	})
	t.Run("PLUS with another connection's binding", func(t *testing.T) {
		other := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		st := other.nc.(*tls.Conn).ConnectionState()
		cb, _ := scram.NewTLSExporterBinding(&st)
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		r := scramExchange(t, c, "SCRAM-SHA-256-PLUS", "alice@example.test", testUsers["alice@example.test"], true,
			func(cl *scram.Client) *scram.ClientConversation { return cl.NewConversationWithChannelBinding(cb) })
		if r != "-ERR [AUTH] Authentication failed" {
			t.Fatal(r)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		if r := scramExchange(t, c, "SCRAM-SHA-256", "alice@example.test", "nope", true, plainConv); r != "-ERR [AUTH] Authentication failed" {
			t.Fatal(r)
		}
	})
	t.Run("non-empty answer to server-final", func(t *testing.T) {
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		cl, _ := scram.SHA256.NewClient("alice@example.test", testUsers["alice@example.test"], "")
		cv := cl.NewConversation()
		first, _ := cv.Step("")
		r := c.cmd("AUTH SCRAM-SHA-256 %s", b64(first))
		final, _ := cv.Step(unb64(t, strings.TrimPrefix(r, "+ ")))
		if r := c.cmd("%s", b64(final)); !strings.HasPrefix(r, "+ ") {
			t.Fatal(r)
		}
		c.is("-ERR Invalid authentication response", "%s", b64("junk"))
		c.is("-ERR Log in first", "STAT")
	})
}

// TestGuardBan: failed logins lead to a ban (internal/guard): the failing
// session is closed with [SYS/TEMP], and new connections on both listeners
// are refused before the greeting.
func TestGuardBan(t *testing.T) {
	h := start(t, withGuard(guard.Limits{BanAfter: 2, FailDelay: time.Millisecond, MaxFailDelay: time.Millisecond}))
	early := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [AUTH] Authentication failed", "PASS guess-1")
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [SYS/TEMP] Too many failed logins, try again later", "PASS guess-2")
	if !c.closed() {
		t.Fatal("banned session left open")
	}
	// A session opened before the ban cannot log in either.
	early.is("+OK Send PASS", "USER alice@example.test")
	early.is("-ERR [SYS/TEMP] Too many failed logins, try again later", "PASS %s", testUsers["alice@example.test"])
	for _, name := range []string{"pop3", "pop3s"} {
		var cl *client
		if name == "pop3s" {
			tc, err := tls.Dial("tcp", h.addr[name], h.clientTLS())
			if err != nil {
				t.Fatal(err)
			}
			cl = newClient(t, tc)
		} else {
			cl = newClient(t, mustDial(t, h.addr[name]))
		}
		if got := cl.line(); got != "-ERR [SYS/TEMP] Too many failed logins, try again later" {
			t.Fatalf("%s: %q", name, got)
		}
		if !cl.closed() {
			t.Fatalf("%s: refused connection left open", name)
		}
	}
}
