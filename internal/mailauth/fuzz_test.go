package mailauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// FuzzParseTags: parseTags never panics, and what it accepts survives a
// format-and-parse round trip unchanged.
func FuzzParseTags(f *testing.F) {
	for _, s := range []string{
		// RFC 6376 3.5 and appendix A.2 style signature values.
		"v=1; a=rsa-sha256; s=brisbane; d=example.com; c=simple/simple; q=dns/txt; i=joe@football.example.com; h=Received : From : To : Subject : Date : Message-ID; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB 4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV 4bmp/YzhwvcubU4=;",
		"v=1; a=ed25519-sha256; c=relaxed/relaxed; d=football.example.com; i=@football.example.com; q=dns/txt; s=brisbane; t=1528637909; h=from : to : subject : date : message-id : from : subject : date; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==",
		"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"", ";", "a", "a=", "=b", "a=1;a=2", " a = b ; ", "1a=b", "a_1=b;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, err := parseTags(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for k, v := range tags {
			if !validTagName(k) || strings.ContainsAny(v, ";") || v != strings.TrimSpace(v) {
				t.Fatalf("parseTags(%q) gave %q=%q", s, k, v)
			}
			b.WriteString(k + "=" + v + ";")
		}
		again, err := parseTags(b.String())
		if err != nil || len(again) != len(tags) {
			t.Fatalf("round trip of %q: %v %v", s, again, err)
		}
		for k, v := range tags {
			if again[k] != v {
				t.Fatalf("round trip of %q: %s=%q became %q", s, k, v, again[k])
			}
		}
	})
}

// FuzzCheck: any message gives a verdict (or ErrHeaderTooLarge) without
// panicking, and the Authentication-Results field is well formed whatever
// the message says.
func FuzzCheck(f *testing.F) {
	// ed25519 only: every fuzz worker builds this, and RSA key generation
	// under coverage instrumentation stalls the workers for seconds.
	_, ed, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	keys := Keys{Ed25519: ed, Ed25519Selector: "fuzze"}
	dnsWorld := worldWith(keys)
	signed := sign(f, keys, "sender.test", message("Alice <alice@sender.test>"))
	for _, s := range []string{
		signed,
		strings.Replace(signed, "the body", "tampered", 1),
		message("a@dk.test", "From: boss@rj.test"),
		message(`"unterminated <boss@rj.test>`),
		message("undisclosed-recipients:;"),
		"From: a@b.test",
		"\r\n\r\n",
		"DKIM-Signature: v=1; d=rj.test; s=x; a=rsa-sha256; h=from; bh=; b=\r\nFrom: a@rj.test\r\n\r\nx",
		"DKIM-Signature: d=(evil); s=\"x\r\n\tFrom: a@rj.test\r\n\r\n",
		" folded first line\r\nFrom:a@sp.test\n\nbody",
	} {
		f.Add([]byte(s), "x@other.test")
	}
	v := newVerifier(dnsWorld)
	f.Fuzz(func(t *testing.T, msg []byte, mailFrom string) {
		vd, err := v.Check(context.Background(), Inbound{IP: ip(badIP), HELO: "h.test", MailFrom: mailFrom}, bytes.NewReader(msg))
		if err != nil {
			if errors.Is(err, ErrHeaderTooLarge) {
				return
			}
			t.Fatalf("Check: %v", err)
		}
		if vd.Action < Accept || vd.Action > Reject {
			t.Fatalf("action %d", vd.Action)
		}
		if _, ok := dmarcRank[vd.DMARC]; !ok {
			t.Fatalf("DMARC = %q", vd.DMARC)
		}
		lines := strings.Split(strings.TrimSuffix(vd.Header, "\r\n"), "\r\n")
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n") || i > 0 && l[0] != ' ' && l[0] != '\t' {
				t.Fatalf("bad header line %q in %q", l, vd.Header)
			}
		}
		_, results := parseAR(t, vd.Header)
		if len(results) < 3 {
			t.Fatalf("%d results in %q", len(results), vd.Header)
		}
	})
}
