package sasl

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// errDirectoryDown stands for a directory failure that is not the client's
// fault (database unavailable); it must reach the caller unchanged in class.
var errDirectoryDown = errors.New("fake directory: database unavailable")

type fakeUser struct {
	account  string
	password string // as set; compared after PreparePassword, like the directory will
	keys     SCRAMKeys
}

// fakeCreds is an in-memory Credentials. Names map to users; the name
// "broken" makes every call fail with errDirectoryDown.
type fakeCreds struct {
	users map[string]fakeUser

	mu       sync.Mutex
	verifies int // VerifyPassword calls
	lookups  int // SCRAMSHA256 calls
}

// rfcSalt is the salt of the RFC 7677 3 example.
var rfcSalt = mustB64("W22ZaJ0SNY7soEsUEjb6gQ==")

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustKeys(t testing.TB, password string, salt []byte) SCRAMKeys {
	t.Helper()
	k, err := SCRAMSHA256Keys(password, salt, 4096)
	if err != nil {
		t.Fatalf("SCRAMSHA256Keys: %v", err)
	}
	return k
}

// newFakeCreds has the RFC 7677 user ("user"/"pencil") and alice, whose
// canonical account name differs from the name she logs in with.
func newFakeCreds(t testing.TB) *fakeCreds {
	return &fakeCreds{users: map[string]fakeUser{
		"user":  {account: "user@example.test", password: "pencil", keys: mustKeys(t, "pencil", rfcSalt)},
		"alice": {account: "alice@example.test", password: "wonderland", keys: mustKeys(t, "wonderland", []byte("alice-salt-16byt"))},
		// "a,b=c" exercises SCRAM's =2C and =3D escaping.
		"a,b=c": {account: "abc@example.test", password: "escaped", keys: mustKeys(t, "escaped", []byte("escape-salt-16by"))},
	}}
}

func (f *fakeCreds) VerifyPassword(_ context.Context, username, password string) (string, error) {
	f.mu.Lock()
	f.verifies++
	f.mu.Unlock()
	if username == "broken" {
		return "", errDirectoryDown
	}
	u, ok := f.users[username]
	if !ok {
		return "", fmt.Errorf("fake: unknown user: %w", ErrInvalidCredentials)
	}
	if subtle.ConstantTimeCompare([]byte(PreparePassword(password)), []byte(PreparePassword(u.password))) != 1 {
		return "", fmt.Errorf("fake: wrong password: %w", ErrInvalidCredentials)
	}
	return u.account, nil
}

func (f *fakeCreds) SCRAMSHA256(_ context.Context, username string) (string, SCRAMKeys, error) {
	f.mu.Lock()
	f.lookups++
	f.mu.Unlock()
	if username == "broken" {
		return "", SCRAMKeys{}, errDirectoryDown
	}
	u, ok := f.users[username]
	if !ok {
		return "", SCRAMKeys{}, fmt.Errorf("fake: unknown user: %w", ErrInvalidCredentials)
	}
	return u.account, u.keys, nil
}

func (f *fakeCreds) counts() (verifies, lookups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verifies, f.lookups
}

// newServer is NewServer that fails the test on error.
func newServer(t testing.TB, mech string, creds Credentials, o Options) Server {
	t.Helper()
	s, err := NewServer(context.Background(), mech, creds, o)
	if err != nil {
		t.Fatalf("NewServer(%q): %v", mech, err)
	}
	return s
}

// allErrors are the classes every non-directory error must belong to.
var allErrors = []error{
	ErrInvalidCredentials, ErrMalformed, ErrUnsupportedMechanism, ErrAuthzidNotAllowed,
	ErrBindingMismatch, ErrDowngrade, ErrExchangeOver,
}

// classified reports whether err wraps one of the package's error classes.
func classified(err error) bool {
	for _, e := range allErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errClass names the class an error wraps, for readable failures.
func errClass(err error) error {
	for _, e := range allErrors {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}
