package sasl

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// step is one client response and what the server must answer.
type step struct {
	send      []byte
	challenge string // exact challenge bytes expected
	done      bool
	err       error // class expected (errors.Is); nil for none
}

type convCase struct {
	name    string
	steps   []step
	account string // Account() after the last step
	user    string // Username() after the last step
}

// runConv drives a fresh server for mech through the steps and checks every
// answer exactly, then checks that the exchange refuses to go on.
func runConv(t *testing.T, mech string, creds Credentials, o Options, tc convCase) {
	t.Helper()
	s := newServer(t, mech, creds, o)
	for i, st := range tc.steps {
		ch, done, err := s.Next(st.send)
		if st.err != nil {
			if !errors.Is(err, st.err) {
				t.Fatalf("step %d: err = %v (class %v), want %v", i, err, errClass(err), st.err)
			}
		} else if err != nil {
			t.Fatalf("step %d: unexpected err %v", i, err)
		}
		if string(ch) != st.challenge || done != st.done {
			t.Fatalf("step %d: got (%q, done=%v), want (%q, done=%v)", i, ch, done, st.challenge, st.done)
		}
		if err != nil {
			// Errors must never carry the password (nor anything the client sent).
			for _, secret := range []string{"pencil", "wonderland", "wrongpass"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("step %d: error %q contains %q", i, err, secret)
				}
			}
		}
	}
	if got := s.Account(); got != tc.account {
		t.Errorf("Account() = %q, want %q", got, tc.account)
	}
	if got := s.Username(); got != tc.user {
		t.Errorf("Username() = %q, want %q", got, tc.user)
	}
	// Whatever the outcome, the exchange is over.
	if _, _, err := s.Next([]byte("more")); !errors.Is(err, ErrExchangeOver) {
		t.Errorf("Next after the end: err = %v, want ErrExchangeOver", err)
	}
}

func TestPlain(t *testing.T) {
	long := strings.Repeat("x", 255)
	creds := newFakeCreds(t)
	creds.users[long] = fakeUser{account: "long@example.test", password: long}

	nul := "\x00"
	b := func(s string) []byte { return []byte(s) }
	tests := []convCase{
		{name: "initial response", steps: []step{{send: b(nul + "user" + nul + "pencil"), done: true}},
			account: "user@example.test", user: "user"},
		{name: "no initial response", steps: []step{{send: nil}, {send: b(nul + "user" + nul + "pencil"), done: true}},
			account: "user@example.test", user: "user"},
		{name: "empty initial response is none", steps: []step{{send: []byte{}}, {send: b(nul + "user" + nul + "pencil"), done: true}},
			account: "user@example.test", user: "user"},
		{name: "no response after empty challenge", steps: []step{{send: nil}, {send: nil, err: ErrMalformed}}},
		{name: "authzid equals authcid", steps: []step{{send: b("user" + nul + "user" + nul + "pencil"), done: true}},
			account: "user@example.test", user: "user"},
		{name: "authzid equals account", steps: []step{{send: b("user@example.test" + nul + "user" + nul + "pencil"), done: true}},
			account: "user@example.test", user: "user"},
		// RFC 4616 4 second example: Kurt may not act as Ursel.
		{name: "authzid other user", steps: []step{{send: b("alice" + nul + "user" + nul + "pencil"), err: ErrAuthzidNotAllowed}},
			user: "user"},
		{name: "authzid other user and wrong password", steps: []step{{send: b("alice" + nul + "user" + nul + "wrongpass"), err: ErrInvalidCredentials}},
			user: "user"},
		{name: "wrong password", steps: []step{{send: b(nul + "user" + nul + "wrongpass"), err: ErrInvalidCredentials}}, user: "user"},
		{name: "unknown user", steps: []step{{send: b(nul + "nobody" + nul + "pencil"), err: ErrInvalidCredentials}}, user: "nobody"},
		{name: "no NUL", steps: []step{{send: b("userpencil"), err: ErrMalformed}}},
		{name: "one NUL", steps: []step{{send: b("user" + nul + "pencil"), err: ErrMalformed}}},
		{name: "three NULs", steps: []step{{send: b(nul + "user" + nul + "pen" + nul + "cil"), err: ErrMalformed}}},
		{name: "empty authcid", steps: []step{{send: b(nul + nul + "pencil"), err: ErrMalformed}}},
		{name: "empty password", steps: []step{{send: b(nul + "user" + nul), err: ErrMalformed}}},
		{name: "authcid not UTF-8", steps: []step{{send: b(nul + "us\xffer" + nul + "pencil"), err: ErrMalformed}}},
		{name: "255-octet fields accepted", steps: []step{{send: b(long + nul + long + nul + long), done: true}},
			account: "long@example.test", user: long},
		{name: "256-octet authcid", steps: []step{{send: b(nul + long + "x" + nul + "pencil"), err: ErrMalformed}}},
		{name: "256-octet password", steps: []step{{send: b(nul + "user" + nul + long + "x"), err: ErrMalformed}}},
		{name: "256-octet authzid", steps: []step{{send: b(long + "x" + nul + "user" + nul + "pencil"), err: ErrMalformed}}},
		{name: "huge message", steps: []step{{send: bytes.Repeat([]byte("a\x00"), 1<<16), err: ErrMalformed}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runConv(t, Plain, creds, Options{TLS: true}, tc)
		})
	}
}

// Malformed messages are refused before the directory is asked, so they cost
// nothing and cannot be used to probe it.
func TestPlainMalformedSkipsDirectory(t *testing.T) {
	creds := newFakeCreds(t)
	s := newServer(t, Plain, creds, Options{TLS: true})
	if _, _, err := s.Next([]byte("user\x00pencil")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if v, _ := creds.counts(); v != 0 {
		t.Fatalf("VerifyPassword called %d times for a malformed message", v)
	}
}

// A directory failure is not an authentication failure: the protocol must
// answer it as temporary, so it must not look like ErrInvalidCredentials.
func TestDirectoryFailure(t *testing.T) {
	for _, mech := range []string{Plain, Login} {
		t.Run(mech, func(t *testing.T) {
			s := newServer(t, mech, newFakeCreds(t), Options{TLS: true})
			msgs := [][]byte{[]byte("\x00broken\x00pw")}
			if mech == Login {
				msgs = [][]byte{[]byte("broken"), []byte("pw")}
			}
			var err error
			for _, m := range msgs {
				_, _, err = s.Next(m)
			}
			if !errors.Is(err, errDirectoryDown) || classified(err) {
				t.Fatalf("err = %v (class %v), want errDirectoryDown only", err, errClass(err))
			}
		})
	}
}

func TestLogin(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	long := strings.Repeat("y", 256)
	tests := []convCase{
		{name: "no initial response", steps: []step{
			{send: nil, challenge: "Username:"},
			{send: b("user"), challenge: "Password:"},
			{send: b("pencil"), done: true},
		}, account: "user@example.test", user: "user"},
		{name: "empty initial response is none", steps: []step{
			{send: []byte{}, challenge: "Username:"},
			{send: b("alice"), challenge: "Password:"},
			{send: b("wonderland"), done: true},
		}, account: "alice@example.test", user: "alice"},
		{name: "initial response carries user name", steps: []step{
			{send: b("user"), challenge: "Password:"},
			{send: b("pencil"), done: true},
		}, account: "user@example.test", user: "user"},
		{name: "wrong password", steps: []step{
			{send: b("user"), challenge: "Password:"},
			{send: b("wrongpass"), err: ErrInvalidCredentials},
		}, user: "user"},
		{name: "unknown user", steps: []step{
			{send: b("nobody"), challenge: "Password:"},
			{send: b("pencil"), err: ErrInvalidCredentials},
		}, user: "nobody"},
		{name: "empty user name", steps: []step{
			{send: nil, challenge: "Username:"},
			{send: []byte{}, err: ErrMalformed},
		}},
		{name: "user name too long", steps: []step{{send: b(long), err: ErrMalformed}}},
		{name: "user name with NUL", steps: []step{{send: b("us\x00er"), err: ErrMalformed}}},
		{name: "empty password", steps: []step{
			{send: b("user"), challenge: "Password:"},
			{send: nil, err: ErrMalformed},
		}, user: "user"},
		{name: "password too long", steps: []step{
			{send: b("user"), challenge: "Password:"},
			{send: b(long), err: ErrMalformed},
		}, user: "user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runConv(t, Login, newFakeCreds(t), Options{TLS: true}, tc)
		})
	}
}
