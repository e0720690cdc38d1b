package mailauth

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// fakeDNS answers from maps. Names are compared lowercased without the
// final dot. A name in fail answers SERVFAIL-like temporary errors for
// every type. It is read-only once built, so safe for the DKIM library's
// parallel lookups.
type fakeDNS struct {
	txt  map[string][]string
	mx   map[string][]*net.MX
	ip   map[string][]string
	fail map[string]bool
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{txt: map[string][]string{}, mx: map[string][]*net.MX{}, ip: map[string][]string{}, fail: map[string]bool{}}
}

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (f *fakeDNS) check(name string) error {
	if f.fail[key(name)] {
		return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	return nil
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if err := f.check(name); err != nil {
		return nil, err
	}
	if t, ok := f.txt[key(name)]; ok {
		return t, nil
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if err := f.check(name); err != nil {
		return nil, err
	}
	if m, ok := f.mx[key(name)]; ok {
		return m, nil
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if err := f.check(host); err != nil {
		return nil, err
	}
	var out []net.IPAddr
	for _, s := range f.ip[key(host)] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	if len(out) == 0 {
		return nil, notFound(host)
	}
	return out, nil
}

func (f *fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, notFound(addr)
}

// publish adds the DKIM and DMARC-relevant TXT records of Records(domain).
func (f *fakeDNS) publish(domain string, keys Keys) {
	for _, r := range Records(domain, "mx."+domain, keys) {
		if r.Type == "TXT" && strings.Contains(r.Name, "._domainkey.") {
			f.txt[key(r.Name)] = []string{r.Value}
		}
	}
}

var (
	testKeysOnce sync.Once
	testKeysVal  Keys
	testKeysErr  error
)

// testKeys: one pair for the whole test binary, RSA generation being slow.
func testKeys(t testing.TB) Keys {
	t.Helper()
	testKeysOnce.Do(func() { testKeysVal, testKeysErr = GenerateKeys() })
	if testKeysErr != nil {
		t.Fatal(testKeysErr)
	}
	return testKeysVal
}

// staticKeys is a KeySource with the same keys for every domain.
type staticKeys Keys

func (s staticKeys) Get(context.Context, string) (Keys, error) { return Keys(s), nil }

func message(from string, extra ...string) string {
	h := "From: " + from + "\r\n" +
		"To: bob@dest.example\r\n" +
		"Subject: hello there\r\n" +
		"Date: Mon, 13 Jul 2026 10:00:00 +0000\r\n" +
		"Message-ID: <m1@" + "sender.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\nHi Bob,\r\n\r\nthe body of the message.\r\n"
}

// sign returns msg with DKIM signatures of domain prepended.
func sign(t testing.TB, keys Keys, domain, msg string) string {
	t.Helper()
	sigs, err := NewSigner(staticKeys(keys)).Sign(context.Background(), domain, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return string(sigs) + msg
}

func check(t testing.TB, v *Verifier, in Inbound, msg string) Verdict {
	t.Helper()
	vd, err := v.Check(context.Background(), in, bytes.NewReader([]byte(msg)))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return vd
}

// parseAR parses Verdict.Header back with go-msgauth's parser.
func parseAR(t testing.TB, header string) (string, []authres.Result) {
	t.Helper()
	name, value, ok := strings.Cut(header, ":")
	if !ok || name != "Authentication-Results" {
		t.Fatalf("header %q is not Authentication-Results", header)
	}
	id, results, err := authres.Parse(value)
	if err != nil {
		t.Fatalf("authres.Parse(%q): %v", value, err)
	}
	return id, results
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
