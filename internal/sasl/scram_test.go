package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

// The RFC 7677 3 example exchange, byte for byte (the RFC folds the long
// lines; the messages themselves have no whitespace).
const (
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcOptions() Options {
	return Options{NewNonce: func() string { return rfcServerNonce }}
}

func TestSCRAMRFC7677Vector(t *testing.T) {
	for _, ir := range []bool{true, false} {
		name := map[bool]string{true: "initial response", false: "no initial response"}[ir]
		t.Run(name, func(t *testing.T) {
			steps := []step{
				{send: []byte(rfcClientFirst), challenge: rfcServerFirst},
				{send: []byte(rfcClientFinal), challenge: rfcServerFinal, done: true},
			}
			if !ir {
				// RFC 4422 5 2a: the server's first challenge is empty.
				steps = append([]step{{send: nil, challenge: ""}}, steps...)
			}
			runConv(t, SCRAMSHA256, newFakeCreds(t), rfcOptions(), convCase{
				steps: steps, account: "user@example.test", user: "user",
			})
		})
	}
}

// The stored keys SCRAMSHA256Keys computes for "pencil" must be the ones the
// RFC 7677 example implies: the RFC's ClientProof must open to a ClientKey
// whose hash is StoredKey, and ServerKey must sign the RFC's AuthMessage into
// the RFC's verifier. Computed here with the standard library only.
func TestSCRAMSHA256KeysRFC7677(t *testing.T) {
	keys, err := SCRAMSHA256Keys("pencil", rfcSalt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.Salt, rfcSalt) || keys.Iterations != 4096 {
		t.Fatalf("salt/iterations = %x/%d", keys.Salt, keys.Iterations)
	}
	bare := strings.TrimPrefix(rfcClientFirst, "n,,")
	withoutProof, proofB64, _ := strings.Cut(rfcClientFinal, ",p=")
	authMessage := []byte(bare + "," + rfcServerFirst + "," + withoutProof)

	proof := mustB64(proofB64)
	sig := hmac.New(sha256.New, keys.StoredKey)
	sig.Write(authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig.Sum(nil)[i]
	}
	if h := sha256.Sum256(clientKey); !bytes.Equal(h[:], keys.StoredKey) {
		t.Errorf("StoredKey %x does not match the RFC's proof (H(ClientKey) = %x)", keys.StoredKey, h)
	}
	ss := hmac.New(sha256.New, keys.ServerKey)
	ss.Write(authMessage)
	if got := "v=" + base64.StdEncoding.EncodeToString(ss.Sum(nil)); got != rfcServerFinal {
		t.Errorf("ServerKey signs to %q, want %q", got, rfcServerFinal)
	}

	// And an independent implementation agrees.
	c, err := scram.SHA256.NewClient("user", "pencil", "")
	if err != nil {
		t.Fatal(err)
	}
	xdg, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(rfcSalt), Iters: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(xdg.StoredKey, keys.StoredKey) || !bytes.Equal(xdg.ServerKey, keys.ServerKey) {
		t.Errorf("xdg-go/scram keys differ: %x/%x vs ours %x/%x", xdg.StoredKey, xdg.ServerKey, keys.StoredKey, keys.ServerKey)
	}
}

func TestSCRAMSHA256KeysRejects(t *testing.T) {
	if _, err := SCRAMSHA256Keys("pencil", rfcSalt, MinSCRAMIterations-1); err == nil {
		t.Error("accepted an iteration count below RFC 7677's 4096")
	}
	if _, err := SCRAMSHA256Keys("pencil", nil, 4096); err == nil {
		t.Error("accepted an empty salt")
	}
}

func TestPreparePassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pencil", "pencil"},
		{"pa\u0301ss", "p\u00e1ss"},  // NFC composes a + combining acute
		{"a\u00a0b", "a b"},          // non-ASCII space maps to U+0020
		{"\u00bd", "\u00bd"},         // NFC, not NFKC: differs from SASLprep ("1⁄2")
		{"", ""},                     // OpaqueString rejects empty: unchanged
		{"bell\u0007", "bell\u0007"}, // control character disallowed: unchanged
	}
	for _, tc := range tests {
		if got := PreparePassword(tc.in); got != tc.want {
			t.Errorf("PreparePassword(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

// testClient is a minimal SCRAM-SHA-256 client written from RFC 5802 3
// with the standard library, so tests can send messages the xdg-go client
// never would (authzids, extensions, odd flags, tampering).
type testClient struct {
	password string
	gs2      string // gs2-header as sent
	bare     string // client-first-message-bare
	cbind    []byte // channel binding data appended to gs2 in c=
	extra    string // appended to client-final-message-without-proof, e.g. ",x=1"
}

// final returns client-final-message and the server-final the server should send.
func (c testClient) final(serverFirst string) (string, string) {
	var nonce, saltB64, iter string
	for _, f := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			nonce = f[2:]
		case strings.HasPrefix(f, "s="):
			saltB64 = f[2:]
		case strings.HasPrefix(f, "i="):
			iter = f[2:]
		}
	}
	iters := 0
	for _, d := range iter {
		iters = iters*10 + int(d-'0')
	}
	salted, err := pbkdf2.Key(sha256.New, c.password, mustB64(saltB64), iters, 32)
	if err != nil {
		panic(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbind...)) + ",r=" + nonce + c.extra
	authMessage := c.bare + "," + serverFirst + "," + withoutProof
	sig := mac(storedKey[:], authMessage)
	proof := make([]byte, 32)
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof),
		"v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))
}

func TestSCRAMConversations(t *testing.T) {
	binding := &ChannelBinding{Type: TLSUnique, Data: []byte("unique-data"), ExporterData: []byte("exporter-data-32")}
	withBinding := Options{TLS: true, Binding: binding, NewNonce: func() string { return "SNONCE" }}
	noBinding := Options{TLS: true, NewNonce: func() string { return "SNONCE" }}

	tests := []struct {
		name      string
		mech      string
		opts      Options
		client    testClient
		tamper    func(final string) string // changes the client-final before sending
		firstErr  error                     // expected error on client-first
		finalErr  error                     // expected error on client-final
		account   string
		user      string
		wantFirst string // exact server-first, when not empty
	}{
		{name: "plain n", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			account: "user@example.test", user: "user", wantFirst: "r=CNONCESNONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{name: "n while PLUS offered is fine", mech: SCRAMSHA256, opts: withBinding,
			client:  testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			account: "user@example.test", user: "user"},
		{name: "wrong password", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "wrongpass", gs2: "n,,", bare: "n=user,r=CNONCE"},
			finalErr: ErrInvalidCredentials, user: "user"},
		{name: "unknown user fails only at the proof", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,,", bare: "n=nobody,r=CNONCE"},
			finalErr: ErrInvalidCredentials, user: "nobody"},
		{name: "directory down", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "x", gs2: "n,,", bare: "n=broken,r=CNONCE"},
			firstErr: errDirectoryDown, user: "broken"},
		{name: "authzid equals username", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "pencil", gs2: "n,a=user,", bare: "n=user,r=CNONCE"},
			account: "user@example.test", user: "user"},
		{name: "authzid equals account", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "pencil", gs2: "n,a=user@example.test,", bare: "n=user,r=CNONCE"},
			account: "user@example.test", user: "user"},
		{name: "authzid other user", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,a=alice,", bare: "n=user,r=CNONCE"},
			finalErr: ErrAuthzidNotAllowed, user: "user"},
		{name: "authzid other user, wrong password", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "wrongpass", gs2: "n,a=alice,", bare: "n=user,r=CNONCE"},
			finalErr: ErrInvalidCredentials, user: "user"},
		{name: "escaped username", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "escaped", gs2: "n,,", bare: "n=a=2Cb=3Dc,r=CNONCE"},
			account: "abc@example.test", user: "a,b=c"},
		{name: "escaped authzid", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "escaped", gs2: "n,a=a=2Cb=3Dc,", bare: "n=a=2Cb=3Dc,r=CNONCE"},
			account: "abc@example.test", user: "a,b=c"},
		{name: "bad escape", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=a=2Xb,r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "lone = at end", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user=,r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "mandatory extension first", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "m=ext,n=user,r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "mandatory extension later", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user,r=CNONCE,m=ext"},
			firstErr: ErrMalformed, user: "user"},
		{name: "optional extensions ignored", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE,x=first", extra: ",y=final"},
			account: "user@example.test", user: "user"},
		{name: "mandatory extension in client-final", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE", extra: ",m=final"},
			finalErr: ErrMalformed, user: "user"},
		{name: "bad extension syntax", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user,r=CNONCE,="},
			firstErr: ErrMalformed, user: "user"},
		{name: "unknown gs2 flag", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "q,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrMalformed, user: "user"},
		{name: "gs2 authzid without a=", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,user,", bare: "n=user,r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "nonce with space", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user,r=C NONCE"},
			firstErr: ErrMalformed, user: "user"},
		{name: "no nonce", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user"},
			firstErr: ErrMalformed},
		{name: "username not UTF-8", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=us\xffer,r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "username too long", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=" + strings.Repeat("u", 256) + ",r=CNONCE"},
			firstErr: ErrMalformed},
		{name: "client-first too long", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{gs2: "n,,", bare: "n=user,r=" + strings.Repeat("N", maxSCRAMMessage)},
			firstErr: ErrMalformed},

		// RFC 5802 6: the "y" flag.
		{name: "y without PLUS offered", mech: SCRAMSHA256, opts: noBinding,
			client:  testClient{password: "pencil", gs2: "y,,", bare: "n=user,r=CNONCE"},
			account: "user@example.test", user: "user"},
		{name: "y with PLUS offered is a downgrade", mech: SCRAMSHA256, opts: withBinding,
			client:   testClient{gs2: "y,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrDowngrade, user: "user"},

		// Channel binding under the right and wrong names.
		{name: "PLUS tls-unique", mech: SCRAMSHA256Plus, opts: withBinding,
			client:  testClient{password: "pencil", gs2: "p=tls-unique,,", bare: "n=user,r=CNONCE", cbind: []byte("unique-data")},
			account: "user@example.test", user: "user"},
		{name: "PLUS tls-exporter on TLS 1.2", mech: SCRAMSHA256Plus, opts: withBinding,
			client:  testClient{password: "pencil", gs2: "p=tls-exporter,,", bare: "n=user,r=CNONCE", cbind: []byte("exporter-data-32")},
			account: "user@example.test", user: "user"},
		{name: "PLUS with authzid", mech: SCRAMSHA256Plus, opts: withBinding,
			client:  testClient{password: "pencil", gs2: "p=tls-unique,a=user,", bare: "n=user,r=CNONCE", cbind: []byte("unique-data")},
			account: "user@example.test", user: "user"},
		{name: "PLUS wrong binding data", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{password: "pencil", gs2: "p=tls-exporter,,", bare: "n=user,r=CNONCE", cbind: []byte("unique-data")},
			finalErr: ErrBindingMismatch, user: "user"},
		{name: "PLUS binding data missing from c=", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{password: "pencil", gs2: "p=tls-unique,,", bare: "n=user,r=CNONCE"},
			finalErr: ErrBindingMismatch, user: "user"},
		{name: "PLUS unsupported binding type", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{gs2: "p=tls-server-end-point,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrBindingMismatch, user: "user"},
		{name: "PLUS bad binding name", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{gs2: "p=tls_unique,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrMalformed, user: "user"},
		{name: "PLUS with n", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{gs2: "n,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrBindingMismatch, user: "user"},
		{name: "PLUS with y", mech: SCRAMSHA256Plus, opts: withBinding,
			client:   testClient{gs2: "y,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrBindingMismatch, user: "user"},
		{name: "p under the bare name", mech: SCRAMSHA256, opts: withBinding,
			client:   testClient{gs2: "p=tls-unique,,", bare: "n=user,r=CNONCE"},
			firstErr: ErrBindingMismatch, user: "user"},
		{name: "c= claims y after n", mech: SCRAMSHA256, opts: noBinding,
			client: testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper: func(f string) string {
				return strings.Replace(f, "c=biws", "c="+base64.StdEncoding.EncodeToString([]byte("y,,")), 1)
			},
			finalErr: ErrBindingMismatch, user: "user"},

		// Client-final tampering.
		{name: "nonce changed", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper:   func(f string) string { return strings.Replace(f, "SNONCE", "SNONCF", 1) },
			finalErr: ErrMalformed, user: "user"},
		{name: "proof truncated", mech: SCRAMSHA256, opts: noBinding,
			client: testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper: func(f string) string {
				i := strings.Index(f, ",p=")
				return f[:i] + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 31))
			},
			finalErr: ErrMalformed, user: "user"},
		{name: "proof flipped", mech: SCRAMSHA256, opts: noBinding,
			client: testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper: func(f string) string {
				i := strings.Index(f, ",p=")
				p := mustB64(f[i+3:])
				p[0] ^= 1
				return f[:i] + ",p=" + base64.StdEncoding.EncodeToString(p)
			},
			finalErr: ErrInvalidCredentials, user: "user"},
		{name: "no proof", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper:   func(f string) string { return f[:strings.Index(f, ",p=")] },
			finalErr: ErrMalformed, user: "user"},
		{name: "attributes out of order", mech: SCRAMSHA256, opts: noBinding,
			client: testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper: func(f string) string {
				parts := strings.SplitN(f, ",", 3)
				return parts[1] + "," + parts[0] + "," + parts[2]
			},
			finalErr: ErrMalformed, user: "user"},
		{name: "client-final too long", mech: SCRAMSHA256, opts: noBinding,
			client:   testClient{password: "pencil", gs2: "n,,", bare: "n=user,r=CNONCE"},
			tamper:   func(f string) string { return strings.Repeat("x", maxSCRAMMessage+1) },
			finalErr: ErrMalformed, user: "user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.mech, newFakeCreds(t), tc.opts)
			first, done, err := s.Next([]byte(tc.client.gs2 + tc.client.bare))
			if tc.firstErr != nil {
				if !errors.Is(err, tc.firstErr) || first != nil || done {
					t.Fatalf("client-first: (%q, %v, %v), want error %v", first, done, err, tc.firstErr)
				}
			} else {
				if err != nil || done {
					t.Fatalf("client-first: done=%v err=%v", done, err)
				}
				if tc.wantFirst != "" && string(first) != tc.wantFirst {
					t.Fatalf("server-first = %q, want %q", first, tc.wantFirst)
				}
				final, wantV := tc.client.final(string(first))
				if tc.tamper != nil {
					final = tc.tamper(final)
				}
				v, done, err := s.Next([]byte(final))
				switch {
				case tc.finalErr != nil:
					if !errors.Is(err, tc.finalErr) || v != nil || done {
						t.Fatalf("client-final: (%q, %v, %v (class %v)), want error %v", v, done, err, errClass(err), tc.finalErr)
					}
				case err != nil || !done || string(v) != wantV:
					t.Fatalf("client-final: (%q, %v, %v), want (%q, true, nil)", v, done, err, wantV)
				}
			}
			if s.Account() != tc.account || s.Username() != tc.user {
				t.Errorf("Account, Username = %q, %q; want %q, %q", s.Account(), s.Username(), tc.account, tc.user)
			}
			if _, _, err := s.Next([]byte("n,,n=user,r=again")); !errors.Is(err, ErrExchangeOver) {
				t.Errorf("Next after the end: %v, want ErrExchangeOver", err)
			}
		})
	}
}

// An unknown user gets a server-first message shaped like a real one: a
// 16-byte salt that is the same on every attempt (a real salt would be) and
// differs between names, and the configured iteration count.
func TestSCRAMUnknownUserDecoy(t *testing.T) {
	o := Options{UnknownUserIterations: 12000, NewNonce: func() string { return "S" }}
	first := func(name string) string {
		s := newServer(t, SCRAMSHA256, newFakeCreds(t), o)
		ch, _, err := s.Next([]byte("n,,n=" + name + ",r=C"))
		if err != nil {
			t.Fatalf("client-first for %s: %v", name, err)
		}
		return string(ch)
	}
	a1, a2, b := first("nobody"), first("nobody"), first("somebody")
	if a1 != a2 {
		t.Errorf("decoy salt changed between attempts: %q vs %q", a1, a2)
	}
	if a1 == b {
		t.Errorf("two unknown names got the same salt: %q", a1)
	}
	var salt string
	for _, f := range strings.Split(a1, ",") {
		if strings.HasPrefix(f, "s=") {
			salt = f[2:]
		}
	}
	if len(mustB64(salt)) != 16 || !strings.HasPrefix(a1, "r=CS,s=") || !strings.HasSuffix(a1, ",i=12000") {
		t.Errorf("decoy server-first %q: want r=CS, a 16-byte salt, i=12000", a1)
	}
	// Zero means MinSCRAMIterations.
	s := newServer(t, SCRAMSHA256, newFakeCreds(t), Options{})
	ch, _, _ := s.Next([]byte("n,,n=nobody,r=C"))
	if !strings.HasSuffix(string(ch), ",i=4096") {
		t.Errorf("decoy with zero UnknownUserIterations: %q, want i=4096", ch)
	}
}

// Keys a directory returns must be usable; broken ones are our fault, not
// the client's, and must not look like bad credentials.
func TestSCRAMUnusableStoredKeys(t *testing.T) {
	creds := newFakeCreds(t)
	creds.users["user"] = fakeUser{account: "user@example.test", keys: SCRAMKeys{Salt: rfcSalt, Iterations: 4096, StoredKey: []byte{1}}}
	s := newServer(t, SCRAMSHA256, creds, Options{})
	_, _, err := s.Next([]byte(rfcClientFirst))
	if err == nil || classified(err) {
		t.Fatalf("err = %v (class %v), want an unclassified server error", err, errClass(err))
	}
}

func TestDecodeSASLName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"user", "user", true},
		{"a=2Cb", "a,b", true},
		{"a=3Db", "a=b", true},
		{"=2C=3D", ",=", true},
		{"=3D2C", "=2C", true}, // decoded once, not twice
		{"a=2cb", "", false},   // RFC 5802 5.1: only "2C" and "3D"
		{"a=", "", false},
		{"a=3", "", false},
		{"", "", false},
		{"a\x00b", "", false},
		{"j\xc3\xbcrgen", "jürgen", true},
		{"\xc3", "", false},
	}
	for _, tc := range tests {
		got, err := decodeSASLName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("decodeSASLName(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
