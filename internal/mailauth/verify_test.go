package mailauth

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

const (
	goodIP = "192.0.2.10"    // authorized by every "pass" SPF record below
	badIP  = "198.51.100.66" // authorized by none
)

// world is the DNS the verification tests run against.
func world(t testing.TB) (*fakeDNS, Keys) {
	keys := testKeys(t)
	return worldWith(keys), keys
}

func worldWith(keys Keys) *fakeDNS {
	f := newFakeDNS()
	spfPass := []string{"v=spf1 ip4:" + goodIP + " -all"}
	for _, d := range []string{
		"sender.test", "dk.test", "sp.test", "rj.test", "qu.test", "no.test", "rel.test", "strict.test",
		"st2.test", "bounce.st2.test", "st3.test", "bounce.st3.test", "sub.test", "x.sub.test", "sub2.test", "y.sub2.test",
		"pct.test", "nopolicy.test", "tmp1.test", "tmp2.test", "tmp4.test", "multi.test", "perm.test", "evil.test",
		"xn--bcher-kva.test", "example.co.uk", "other.co.uk",
	} {
		f.txt[d] = spfPass
		f.publish(d, keys)
	}
	f.txt["other.test"] = []string{"v=spf1 -all"}
	set := func(d, rec string) { f.txt["_dmarc."+d] = []string{rec} }
	set("sender.test", "v=DMARC1; p=reject")
	set("dk.test", "v=DMARC1; p=reject")
	set("xn--bcher-kva.test", "v=DMARC1; p=reject")
	set("sp.test", "v=DMARC1; p=reject")
	set("rj.test", "v=DMARC1; p=reject")
	set("qu.test", "v=DMARC1; p=quarantine")
	set("no.test", "v=DMARC1; p=none; rua=mailto:d@no.test")
	set("rel.test", "v=DMARC1; p=reject")
	set("strict.test", "v=DMARC1; p=reject; adkim=s")
	set("st2.test", "v=DMARC1; p=reject; aspf=s")
	set("st3.test", "v=DMARC1; p=reject")
	set("sub.test", "v=DMARC1; p=none; sp=reject")
	set("sub2.test", "v=DMARC1; p=reject; sp=reject")
	set("y.sub2.test", "v=DMARC1; p=none")
	set("pct.test", "v=DMARC1; p=reject; pct=0")
	set("tmp1.test", "v=DMARC1; p=reject")
	set("tmp2.test", "v=DMARC1; p=reject")
	set("tmp3.test", "v=DMARC1; p=reject")
	set("tmp4.test", "v=DMARC1; p=reject")
	set("perm.test", "v=DMARC1; p=bogus")
	set("example.co.uk", "v=DMARC1; p=reject")
	f.txt["_dmarc.multi.test"] = []string{"v=DMARC1; p=reject", "v=DMARC1; p=none"}
	f.txt["_dmarc.evil.test"] = []string{"v=DMARC1; p=none"}
	f.txt["tmp3.test"] = spfPass
	f.fail["_dmarc.tmp1.test"] = true
	f.fail[keys.Ed25519Selector+"._domainkey.tmp2.test"] = true
	f.fail[keys.RSASelector+"._domainkey.tmp2.test"] = true
	f.fail["tmp3.test"] = true   // SPF lookup of an aligned MAIL FROM
	f.fail["broken.test"] = true // SPF lookup of an unaligned MAIL FROM
	return f
}

func newVerifier(r Resolver) *Verifier {
	return &Verifier{Hostname: "mx.dest.example", Resolver: r}
}

func TestSignThenVerifyPasses(t *testing.T) {
	f, keys := world(t)
	msg := sign(t, keys, "sender.test", message("Alice <alice@sender.test>"))
	vd := check(t, newVerifier(f), Inbound{IP: ip(goodIP), HELO: "mx.sender.test", MailFrom: "alice@sender.test"}, msg)
	if vd.SPF != "pass" || vd.DKIM != "pass" || vd.DMARC != "pass" || vd.Action != Accept || vd.Reason != "" {
		t.Fatalf("verdict = %+v, want all pass, Accept", vd)
	}
	id, results := parseAR(t, vd.Header)
	if id != "mx.dest.example" {
		t.Errorf("authserv-id = %q", id)
	}
	if len(results) != 4 {
		t.Fatalf("results = %d (%#v), want spf, 2 dkim, dmarc", len(results), results)
	}
	if r, ok := results[0].(*authres.SPFResult); !ok || r.Value != authres.ResultPass || r.From != "sender.test" {
		t.Errorf("spf result = %#v", results[0])
	}
	for i, sel := range []string{keys.Ed25519Selector, keys.RSASelector} {
		r, ok := results[1+i].(*authres.DKIMResult)
		if !ok || r.Value != authres.ResultPass || r.Domain != "sender.test" {
			t.Errorf("dkim result %d = %#v", i, results[1+i])
		}
		if !strings.Contains(vd.Header, "header.s="+sel) {
			t.Errorf("header lacks header.s=%s:\n%s", sel, vd.Header)
		}
	}
	for _, a := range []string{"header.a=ed25519-sha256", "header.a=rsa-sha256"} {
		if !strings.Contains(vd.Header, a) {
			t.Errorf("header lacks %s:\n%s", a, vd.Header)
		}
	}
	if r, ok := results[3].(*authres.DMARCResult); !ok || r.Value != authres.ResultPass || r.From != "sender.test" {
		t.Errorf("dmarc result = %#v", results[3])
	}
}

// Each of the two signatures verifies on its own: publish one key only and
// only its signature passes.
func TestEachKeyVerifiesAlone(t *testing.T) {
	keys := testKeys(t)
	msg := sign(t, keys, "sender.test", message("alice@sender.test"))
	for _, only := range []string{keys.Ed25519Selector, keys.RSASelector} {
		f := newFakeDNS()
		for _, r := range Records("sender.test", "mx.sender.test", keys) {
			if strings.HasPrefix(r.Name, only+".") {
				f.txt[key(r.Name)] = []string{r.Value}
			}
		}
		vd := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "a@sender.test"}, msg)
		if vd.DKIM != "pass" {
			t.Fatalf("%s only: DKIM = %s\n%s", only, vd.DKIM, vd.Header)
		}
		for _, line := range strings.Split(vd.Header, "\r\n") {
			if strings.Contains(line, "header.s=") {
				wantPass := strings.Contains(line, "header.s="+only)
				if strings.Contains(line, "dkim=pass") != wantPass {
					t.Errorf("%s only: %q", only, line)
				}
			}
		}
	}
}

func TestTamperingBreaksDKIM(t *testing.T) {
	f, keys := world(t)
	signed := sign(t, keys, "rj.test", message("ceo@rj.test"))
	cases := []struct {
		name, msg, reason string
	}{
		{"body", strings.Replace(signed, "the body", "the b0dy", 1), "body hash did not verify"},
		{"subject", strings.Replace(signed, "Subject: hello there", "Subject: hello here", 1), "signature did not verify"},
		// From is oversigned: a second From breaks the signature.
		{"added From", strings.Replace(signed, "To: bob", "From: ceo@rj.test\r\nTo: bob", 1), "signature did not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.msg == signed {
				t.Fatal("tampering changed nothing")
			}
			vd := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@rj.test"}, tc.msg)
			if vd.DKIM != "fail" || strings.Count(vd.Header, "dkim=fail") != 2 {
				t.Fatalf("DKIM = %s\n%s", vd.DKIM, vd.Header)
			}
			if !strings.Contains(vd.Header, `reason="`+tc.reason+`"`) {
				t.Errorf("reason %q missing:\n%s", tc.reason, vd.Header)
			}
			if vd.SPF != "fail" || vd.DMARC != "fail" || vd.Action != Reject {
				t.Errorf("verdict = %+v, want SPF fail, DMARC fail, Reject", vd)
			}
		})
	}
	// The untampered message passes: the cases fail for the change alone.
	vd := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@rj.test"}, signed)
	if vd.DKIM != "pass" || vd.Action != Accept {
		t.Fatalf("untampered: %+v", vd)
	}
}

func TestSPF(t *testing.T) {
	f := newFakeDNS()
	f.txt["pass.test"] = []string{"v=spf1 ip4:192.0.2.0/24 -all"}
	f.txt["soft.test"] = []string{"v=spf1 ip4:192.0.2.0/24 ~all"}
	f.txt["neutral.test"] = []string{"v=spf1 ?all"}
	f.txt["viamx.test"] = []string{"v=spf1 mx -all"}
	f.mx["viamx.test"] = []*net.MX{{Host: "mail.viamx.test.", Pref: 10}}
	f.ip["mail.viamx.test"] = []string{"192.0.2.9"}
	f.txt["helo.test"] = []string{"v=spf1 a -all"}
	f.ip["helo.test"] = []string{"192.0.2.7"}
	f.txt["two.test"] = []string{"v=spf1 -all", "v=spf1 +all"}
	f.fail["temp.test"] = true
	cases := []struct {
		name, ip, helo, mailFrom string
		want, from, heloProp     string
	}{
		{"pass", "192.0.2.7", "c.test", "a@pass.test", "pass", "pass.test", ""},
		{"pass, mapped IPv6", "::ffff:192.0.2.7", "c.test", "a@pass.test", "pass", "pass.test", ""},
		{"fail", "198.51.100.1", "c.test", "a@pass.test", "fail", "pass.test", ""},
		{"softfail", "198.51.100.1", "c.test", "a@soft.test", "softfail", "soft.test", ""},
		{"neutral", "198.51.100.1", "c.test", "a@neutral.test", "neutral", "neutral.test", ""},
		{"none", "192.0.2.7", "c.test", "a@norecord.test", "none", "norecord.test", ""},
		{"mx mechanism", "192.0.2.9", "c.test", "a@viamx.test", "pass", "viamx.test", ""},
		{"mx mechanism, other IP", "192.0.2.8", "c.test", "a@viamx.test", "fail", "viamx.test", ""},
		{"two records: permerror", "192.0.2.7", "c.test", "a@two.test", "permerror", "two.test", ""},
		{"temperror", "192.0.2.7", "c.test", "a@temp.test", "temperror", "temp.test", ""},
		{"upper case domain", "192.0.2.7", "c.test", "a@PASS.Test", "pass", "pass.test", ""},
		// RFC 7208 2.4: null reverse-path: the HELO identity.
		{"null sender, HELO pass", "192.0.2.7", "helo.test", "", "pass", "", "helo.test"},
		{"null sender, HELO fail", "192.0.2.8", "helo.test", "", "fail", "", "helo.test"},
		{"null sender, address literal", "192.0.2.7", "[192.0.2.7]", "", "none", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := message("a@pass.test")
			vd := check(t, newVerifier(f), Inbound{IP: ip(tc.ip), HELO: tc.helo, MailFrom: tc.mailFrom}, msg)
			if vd.SPF != tc.want {
				t.Fatalf("SPF = %s, want %s", vd.SPF, tc.want)
			}
			_, results := parseAR(t, vd.Header)
			r, ok := results[0].(*authres.SPFResult)
			if !ok || string(r.Value) != tc.want || r.From != tc.from || r.Helo != tc.heloProp {
				t.Errorf("A-R spf = %#v, want %s mailfrom=%q helo=%q\n%s", results[0], tc.want, tc.from, tc.heloProp, vd.Header)
			}
		})
	}
}

func TestDMARC(t *testing.T) {
	f, keys := world(t)
	type tc struct {
		name     string
		from     string // From field value
		mailFrom string
		ip       string
		signer   string // DKIM d=, "" unsigned
		dmarc    string
		action   Action
	}
	cases := []tc{
		{"pass via DKIM alignment", "a@dk.test", "x@other.test", badIP, "dk.test", "pass", Accept},
		{"pass via SPF alignment", "a@sp.test", "x@sp.test", goodIP, "", "pass", Accept},
		{"unaligned passes fail: reject", "a@rj.test", "x@evil.test", goodIP, "evil.test", "fail", Reject},
		{"fail, p=quarantine", "a@qu.test", "x@other.test", badIP, "", "fail", Quarantine},
		{"fail, p=none", "a@no.test", "x@other.test", badIP, "", "fail", Accept},
		{"no policy", "a@nopolicy.test", "x@other.test", badIP, "", "none", Accept},
		// Relaxed (default): d=rel.test aligns with news.rel.test, whose
		// policy is found at the Organizational Domain.
		{"relaxed DKIM alignment", "a@news.rel.test", "x@other.test", badIP, "rel.test", "pass", Accept},
		{"strict DKIM alignment", "a@news.strict.test", "x@other.test", badIP, "strict.test", "fail", Reject},
		{"strict DKIM alignment, exact", "a@strict.test", "x@other.test", badIP, "strict.test", "pass", Accept},
		{"strict SPF alignment", "a@st2.test", "x@bounce.st2.test", goodIP, "", "fail", Reject},
		{"relaxed SPF alignment", "a@st3.test", "x@bounce.st3.test", goodIP, "", "pass", Accept},
		// sp applies to subdomains through the Organizational Domain's
		// record; p to the domain itself.
		{"subdomain: sp=reject", "a@x.sub.test", "x@other.test", badIP, "", "fail", Reject},
		{"org domain: p=none", "a@sub.test", "x@other.test", badIP, "", "fail", Accept},
		{"subdomain's own record wins over sp", "a@y.sub2.test", "x@other.test", badIP, "", "fail", Accept},
		// RFC 7489 6.6.4: reject sampled out by pct is quarantine.
		{"pct=0 reject", "a@pct.test", "x@other.test", badIP, "", "fail", Quarantine},
		{"two records: none", "a@multi.test", "x@other.test", badIP, "", "none", Accept},
		{"bad record: permerror", "a@perm.test", "x@other.test", badIP, "", "permerror", Accept},
		{"upper-case From domain", "a@RJ.Test", "x@rj.test", goodIP, "", "pass", Accept},
		// RFC 8616 6: a UTF-8 From domain is checked under its A-labels.
		{"UTF-8 From domain", "a@bücher.test", "x@other.test", badIP, "", "fail", Reject},
		{"UTF-8 From domain, aligned DKIM", "a@Bücher.test", "x@other.test", badIP, "xn--bcher-kva.test", "pass", Accept},
		// RFC 7489 3.2: the Organizational Domain comes from the public
		// suffix list; co.uk is a suffix, so shop.example.co.uk's is
		// example.co.uk (its policy applies, its signature aligns) and
		// another co.uk domain's signature does not align.
		{"org domain under a two-label suffix", "a@shop.example.co.uk", "x@other.test", badIP, "example.co.uk", "pass", Accept},
		{"no alignment across a public suffix", "a@shop.example.co.uk", "x@other.test", badIP, "other.co.uk", "fail", Reject},
		// Temporary errors never reject (RFC 7489 6.6.2).
		{"temperror: policy lookup", "a@tmp1.test", "x@other.test", badIP, "", "temperror", Accept},
		{"temperror: aligned DKIM key lookup", "a@tmp2.test", "x@other.test", badIP, "tmp2.test", "temperror", Accept},
		{"temperror: aligned SPF", "a@tmp3.test", "x@tmp3.test", goodIP, "", "temperror", Accept},
		// An unaligned identifier could never pass, so its temperror
		// does not stop the policy.
		{"unaligned temperror still fails", "a@tmp4.test", "x@broken.test", goodIP, "", "fail", Reject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := message(c.from)
			if c.signer != "" {
				msg = sign(t, keys, c.signer, msg)
			}
			vd := check(t, newVerifier(f), Inbound{IP: ip(c.ip), HELO: "h.test", MailFrom: c.mailFrom}, msg)
			if vd.DMARC != c.dmarc || vd.Action != c.action {
				t.Fatalf("DMARC = %s, Action = %s (reason %q), want %s, %s\n%s", vd.DMARC, vd.Action, vd.Reason, c.dmarc, c.action, vd.Header)
			}
			if c.action != Accept && vd.Reason == "" {
				t.Errorf("no Reason for %s", c.action)
			}
			if c.dmarc == "temperror" && !strings.Contains(vd.Reason, "temperror") {
				t.Errorf("Reason = %q, want it to say temperror", vd.Reason)
			}
			_, results := parseAR(t, vd.Header)
			last, ok := results[len(results)-1].(*authres.DMARCResult)
			if !ok || string(last.Value) != c.dmarc {
				t.Errorf("A-R dmarc = %#v, want %s\n%s", results[len(results)-1], c.dmarc, vd.Header)
			}
		})
	}
}

func TestDMARCPercentSamples(t *testing.T) {
	f, _ := world(t)
	f.txt["_dmarc.half.test"] = []string{"v=DMARC1; p=reject; pct=50"}
	counts := map[Action]int{}
	for i := range 200 {
		msg := strings.Replace(message("a@half.test"), "<m1@", "<m"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i)+"@", 1)
		vd := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@other.test"}, msg)
		counts[vd.Action]++
		again := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@other.test"}, msg)
		if again.Action != vd.Action {
			t.Fatalf("same message, different actions: %s, %s", vd.Action, again.Action)
		}
	}
	// pct=50: about half rejected, the rest quarantined, none accepted.
	if counts[Accept] != 0 || counts[Reject] < 60 || counts[Quarantine] < 60 {
		t.Fatalf("actions = %v", counts)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestFromField(t *testing.T) {
	f, keys := world(t)
	cases := []struct {
		name   string
		msg    string
		dmarc  string
		action Action
		froms  int // dmarc results in the header
	}{
		{"no From", strings.Replace(message("x@dk.test"), "From: x@dk.test\r\n", "", 1), "none", Accept, 1},
		{"empty group", message("undisclosed-recipients:;"), "none", Accept, 1},
		// The first From passes by DKIM; the second is a forgery of
		// rj.test, whose p=reject must apply (RFC 7489 6.6.1).
		{"two From fields", sign(t, keys, "dk.test", message("a@dk.test", "From: boss@rj.test")), "fail", Reject, 2},
		{"two addresses", sign(t, keys, "dk.test", message("a@dk.test, boss@rj.test")), "fail", Reject, 2},
		{"same domain twice", sign(t, keys, "dk.test", message("a@dk.test, b@DK.test")), "pass", Accept, 1},
		{"unparsable From", message(`"unterminated <boss@rj.test>`), "fail", Reject, 1},
		{"encoded display name, unknown charset", sign(t, keys, "dk.test", message("=?x-unknown?q?Al=E9?= <a@dk.test>")), "pass", Accept, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vd := check(t, newVerifier(f), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@other.test"}, tc.msg)
			if vd.DMARC != tc.dmarc || vd.Action != tc.action {
				t.Fatalf("DMARC = %s, Action = %s, want %s, %s\n%s", vd.DMARC, vd.Action, tc.dmarc, tc.action, vd.Header)
			}
			if n := strings.Count(vd.Header, "dmarc="); n != tc.froms {
				t.Errorf("%d dmarc results, want %d\n%s", n, tc.froms, vd.Header)
			}
		})
	}
}

// The header is a well-formed, folded field: CRLF line ends, continuation
// lines start with WSP, lines within 78 characters here, and values from the
// sender that could break the quoting are left out.
func TestAuthenticationResultsFormat(t *testing.T) {
	f, keys := world(t)
	msg := sign(t, keys, "sender.test", message("alice@sender.test"))
	msg = strings.Replace(msg, "the body", "tampered", 1)
	for _, in := range []Inbound{
		{IP: ip(goodIP), HELO: "mx.sender.test", MailFrom: "alice@sender.test"},
		{IP: ip(goodIP), HELO: "mx.sender.test", MailFrom: `x@ev"il;dkim=pass.test`},
	} {
		vd := check(t, newVerifier(f), in, msg)
		h := vd.Header
		if !strings.HasPrefix(h, "Authentication-Results: mx.dest.example;\r\n") || !strings.HasSuffix(h, "\r\n") {
			t.Fatalf("header = %q", h)
		}
		if strings.Contains(strings.ReplaceAll(h, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(h, "\r\n", ""), "\r") {
			t.Fatalf("bare CR or LF in %q", h)
		}
		lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
		for i, l := range lines {
			if len(l) > 78 {
				t.Errorf("line %d longer than 78: %q", i, l)
			}
			if i > 0 && l[0] != ' ' && l[0] != '\t' {
				t.Errorf("line %d is not a continuation: %q", i, l)
			}
		}
		if strings.Contains(h, "ev\"il") || strings.Count(h, "dkim=pass") != 0 {
			t.Errorf("sender's text leaked into the header:\n%s", h)
		}
		_, results := parseAR(t, h)
		if len(results) != 4 {
			t.Errorf("%d results, want 4:\n%s", len(results), h)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	f, _ := world(t)
	if _, err := (&Verifier{Resolver: f}).Check(context.Background(), Inbound{}, strings.NewReader(message("a@b.test"))); err == nil {
		t.Error("Check without Hostname: no error")
	}
	huge := "From: a@dk.test\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\nbody\r\n"
	_, err := newVerifier(f).Check(context.Background(), Inbound{IP: ip(goodIP), HELO: "h.test"}, strings.NewReader(huge))
	if !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("huge header: err = %v, want ErrHeaderTooLarge", err)
	}
	// Check reads every message to the end, signed or not, so a caller
	// streaming it through a pipe is never left blocked.
	for _, m := range []string{message("a@sp.test"), sign(t, testKeys(t), "sp.test", message("a@sp.test"))} {
		r := strings.NewReader(m + strings.Repeat("more body\r\n", 10000))
		if _, err := newVerifier(f).Check(context.Background(), Inbound{IP: ip(goodIP), HELO: "h.test", MailFrom: "x@sp.test"}, r); err != nil {
			t.Fatal(err)
		}
		if r.Len() != 0 {
			t.Errorf("Check left %d bytes unread", r.Len())
		}
	}
	// An empty message has no From: DMARC none.
	if vd := check(t, newVerifier(f), Inbound{IP: ip(goodIP), HELO: "h.test", MailFrom: "x@sp.test"}, ""); vd.DMARC != "none" || vd.SPF != "pass" {
		t.Errorf("empty message: %+v", vd)
	}
	// A message that is all header (no empty line, no body) still checks.
	vd := check(t, newVerifier(f), Inbound{IP: ip(goodIP), HELO: "h.test", MailFrom: "x@sp.test"}, "From: a@sp.test\r\nSubject: x")
	if vd.DMARC != "pass" {
		t.Errorf("header-only message: %+v", vd)
	}
}

// slowDNS answers nothing until the context ends, then claims the name does
// not exist, as a resolver cut off mid-query may.
type slowDNS struct{}

func (slowDNS) wait(ctx context.Context, name string) error {
	<-ctx.Done()
	return notFound(name)
}
func (s slowDNS) LookupTXT(ctx context.Context, n string) ([]string, error) {
	return nil, s.wait(ctx, n)
}
func (s slowDNS) LookupMX(ctx context.Context, n string) ([]*net.MX, error) {
	return nil, s.wait(ctx, n)
}
func (s slowDNS) LookupIPAddr(ctx context.Context, n string) ([]net.IPAddr, error) {
	return nil, s.wait(ctx, n)
}
func (s slowDNS) LookupAddr(ctx context.Context, n string) ([]string, error) {
	return nil, s.wait(ctx, n)
}

// When the Verifier's time runs out, answers are unknown, not negative:
// temperror, not none (which would skip a p=reject policy).
func TestDeadlineIsTemperror(t *testing.T) {
	v := &Verifier{Hostname: "mx.dest.example", Resolver: slowDNS{}, Timeout: 50 * time.Millisecond}
	vd := check(t, v, Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: "x@rj.test"}, message("a@rj.test"))
	if vd.SPF != "temperror" || vd.DMARC != "temperror" || vd.Action != Accept {
		t.Fatalf("verdict = %+v", vd)
	}
}
