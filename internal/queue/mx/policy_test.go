package mx

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseSTSRecord(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		want string
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{[]string{"v=STSv1;id=abc"}, "abc"},
		{[]string{"v=STSv1 ; id=abc ; ext=x.y"}, "abc"},
		{[]string{"v=spf1 -all", "v=STSv1; id=abc;"}, "abc"},           // others are discarded
		{[]string{"v=STSv1; id=abc;", "v=STSv1; id=def;"}, ""},         // two: none
		{[]string{"v=STSv1; id=abc;", "v=STSv1; bogus"}, ""},           // still two
		{[]string{"v=STSv1; id=not-alnum;"}, ""},                       // sts-id is ALPHA / DIGIT
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33) + ";"}, ""}, // 1*32
		{[]string{"v=STSv1;"}, ""},
		{[]string{"id=abc; v=STSv1;"}, ""}, // must begin with the version
		{nil, ""},
	} {
		if got := parseSTSRecord(tc.txts); got != tc.want {
			t.Errorf("parseSTSRecord(%q) = %q, want %q", tc.txts, got, tc.want)
		}
	}
}

func TestParseSTSPolicy(t *testing.T) {
	p, err := parseSTSPolicy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\nmode: none\r\nfuture_ext: anything goes\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != stsEnforce || p.MaxAge != 604800*time.Second || !slices.Equal(p.MX, []string{"mail.example.com", "*.example.net"}) {
		t.Errorf("policy %+v", p)
	}
	if p, err := parseSTSPolicy("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 99999999999\n"); err == nil {
		t.Errorf("11-digit max_age accepted: %+v", p)
	}
	if p, err := parseSTSPolicy("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\n"); err != nil || p.MaxAge != stsMaxAge*time.Second {
		t.Errorf("max_age not capped at %d: %+v %v", stsMaxAge, p, err)
	}
	if p, err := parseSTSPolicy("version: STSv1\nmode: none\nmax_age: 86400\n"); err != nil || p.Mode != stsNone {
		t.Errorf("mode none without mx: %+v %v", p, err)
	}
	for _, bad := range []string{
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: sometimes\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.test\n",
		"mode: enforce\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx a.test\nmax_age: 1\n",
		"<html>oops</html>",
	} {
		if p, err := parseSTSPolicy(bad); err == nil {
			t.Errorf("accepted %q as %+v", bad, p)
		}
	}
}

func TestSTSMatchMX(t *testing.T) {
	p := &stsPolicy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com":      true,
		"MAIL.example.com.":     true,
		"mx1.example.net":       true,
		"example.net":           false, // RFC 8461 4.1
		"foo.bar.example.net":   false, // one label only
		"other.example.com":     false,
		"mail.example.com.evil": false,
	} {
		if got := p.matchMX(host); got != want {
			t.Errorf("matchMX(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSTSCacheByIDAndFailures(t *testing.T) {
	policy := atomic.Value{}
	policy.Store("version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n")
	var status atomic.Int32
	status.Store(200)
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if s := int(status.Load()); s != 200 {
			w.Header().Set("Location", "https://elsewhere.test/")
			w.WriteHeader(s)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, policy.Load().(string))
	}))
	defer srv.Close()
	hc := srv.Client()
	tr := hc.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	tr.TLSClientConfig.InsecureSkipVerify = true // httptest's certificate names example.com only
	defer tr.CloseIdleConnections()

	res := newFakeResolver()
	var logged atomic.Int32
	c := newSTSCache(res, hc, func(string, ...any) { logged.Add(1) })
	ctx := context.Background()

	if p := c.policy(ctx, "example.test"); p != nil {
		t.Fatalf("policy without a TXT record: %+v", p)
	}
	res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=one;"}
	if p := c.policy(ctx, "example.test"); p == nil || p.Mode != stsEnforce || p.ID != "one" {
		t.Fatalf("policy %+v", p)
	}
	c.policy(ctx, "example.test")
	if n := hits.Load(); n != 1 {
		t.Errorf("%d fetches for one id, want 1", n)
	}
	// RFC 8461 3.3: a TXT record gone does not remove the cached policy.
	delete(res.txt, "_mta-sts.example.test")
	if p := c.policy(ctx, "example.test"); p == nil || p.ID != "one" {
		t.Errorf("cached policy dropped when the TXT record went: %+v", p)
	}
	// A new id with a failing fetch (a redirect, which must not be
	// followed) keeps the cached policy, logs, and is not retried at once.
	res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=two;"}
	status.Store(302)
	if p := c.policy(ctx, "example.test"); p == nil || p.ID != "one" {
		t.Errorf("after a failed refresh: %+v, want the cached policy", p)
	}
	c.policy(ctx, "example.test")
	if n := hits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (no refetch of a failed id within 5 minutes)", n)
	}
	if logged.Load() == 0 {
		t.Error("a failed refresh was not logged")
	}
	// mode none: no policy applies.
	status.Store(200)
	policy.Store("version: STSv1\nmode: none\nmax_age: 86400\n")
	res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=three;"}
	if p := c.policy(ctx, "example.test"); p != nil {
		t.Errorf("mode none applied: %+v", p)
	}
}

func TestVerifyDANE(t *testing.T) {
	ca := newCA(t)
	leaf := ca.issue(t, "mx1.example.test")
	chain := []*x509.Certificate{leaf.Leaf, ca.cert}
	spki := sha256.Sum256(leaf.Leaf.RawSubjectPublicKeyInfo)
	full512 := sha512.Sum512(leaf.Leaf.Raw)
	caSum := sha256.Sum256(ca.cert.Raw)
	caSPKI := sha256.Sum256(ca.cert.RawSubjectPublicKeyInfo)
	names := []string{"mx1.example.test", "example.test"}
	for _, tc := range []struct {
		name string
		recs []TLSA
		ok   bool
	}{
		{"3 1 1", []TLSA{{3, 1, 1, spki[:]}}, true},
		{"3 0 2", []TLSA{{3, 0, 2, full512[:]}}, true},
		{"3 0 0", []TLSA{{3, 0, 0, leaf.Leaf.Raw}}, true},
		{"3 1 1 wrong", []TLSA{{3, 1, 1, caSPKI[:]}}, false},
		{"2 0 1", []TLSA{{2, 0, 1, caSum[:]}}, true},
		{"2 1 1", []TLSA{{2, 1, 1, caSPKI[:]}}, true},
		{"2 0 1 of the leaf", []TLSA{{2, 0, 1, spki[:]}}, false},
		{"1 1 1 is unusable", []TLSA{{1, 1, 1, spki[:]}}, false},
		{"one of several", []TLSA{{3, 1, 1, caSPKI[:]}, {2, 0, 1, caSum[:]}}, true},
	} {
		err := verifyDANE(chain, tc.recs, names)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := verifyDANE(chain, []TLSA{{2, 0, 1, caSum[:]}}, []string{"other.test"}); err == nil {
		t.Error("DANE-TA accepted a certificate for none of the reference names")
	}
}
