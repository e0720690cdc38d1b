package mailauth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestRecordsAreComplete(t *testing.T) {
	keys := testKeys(t)
	rs := Records("Example.COM.", "Mail.Example.com", keys)
	var got []string
	for _, r := range rs {
		got = append(got, r.Type+" "+r.Name)
		if r.Comment == "" {
			t.Errorf("%s %s has no comment", r.Type, r.Name)
		}
	}
	want := []string{
		"MX example.com.",
		"TXT example.com.",
		"TXT mail.example.com.",
		"TXT " + keys.Ed25519Selector + "._domainkey.example.com.",
		"TXT " + keys.RSASelector + "._domainkey.example.com.",
		"TXT _dmarc.example.com.",
		"TXT _mta-sts.example.com.",
		"TXT _smtp._tls.example.com.",
		"SRV _submissions._tcp.example.com.",
		"SRV _submission._tcp.example.com.",
		"SRV _imaps._tcp.example.com.",
		"SRV _imap._tcp.example.com.",
		"SRV _pop3s._tcp.example.com.",
		"SRV _pop3._tcp.example.com.",
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	val := map[string]string{}
	for _, r := range rs {
		val[r.Type+" "+r.Name] = r.Value
	}
	for k, v := range map[string]string{
		"MX example.com.":                    "10 mail.example.com.",
		"TXT example.com.":                   "v=spf1 mx ~all",
		"TXT _dmarc.example.com.":            "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com",
		"TXT _smtp._tls.example.com.":        "v=TLSRPTv1; rua=mailto:postmaster@example.com",
		"SRV _submissions._tcp.example.com.": "0 1 465 mail.example.com.",
		"SRV _submission._tcp.example.com.":  "10 1 587 mail.example.com.",
		"SRV _imaps._tcp.example.com.":       "0 1 993 mail.example.com.",
		"SRV _imap._tcp.example.com.":        "10 1 143 mail.example.com.",
		"SRV _pop3s._tcp.example.com.":       "20 1 995 mail.example.com.",
		"SRV _pop3._tcp.example.com.":        "30 1 110 mail.example.com.",
	} {
		if val[k] != v {
			t.Errorf("%s = %q, want %q", k, val[k], v)
		}
	}
	if !regexp.MustCompile(`^v=STSv1; id=[A-Za-z0-9]{1,32}$`).MatchString(val["TXT _mta-sts.example.com."]) {
		t.Errorf("_mta-sts = %q (RFC 8461 3.1: id is 1-32 letters and digits)", val["TXT _mta-sts.example.com."])
	}
}

// The DKIM values carry the keys' public halves.
func TestRecordsDKIMKeys(t *testing.T) {
	keys := testKeys(t)
	for _, r := range Records("example.com", "mail.example.com", keys) {
		if !strings.Contains(r.Name, "._domainkey.") {
			continue
		}
		tags, err := parseTags(r.Value)
		if err != nil || tags["v"] != "DKIM1" {
			t.Fatalf("%s: %q: %v", r.Name, r.Value, err)
		}
		p, err := base64.StdEncoding.DecodeString(tags["p"])
		if err != nil {
			t.Fatalf("%s: p= %v", r.Name, err)
		}
		switch tags["k"] {
		case "ed25519":
			if r.Name != keys.Ed25519Selector+"._domainkey.example.com." || !ed25519.PublicKey(p).Equal(keys.Ed25519.Public()) {
				t.Errorf("%s: ed25519 p= is not the stored key", r.Name)
			}
		case "rsa":
			pub, err := x509.ParsePKIXPublicKey(p)
			if err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			if rk, ok := pub.(*rsa.PublicKey); r.Name != keys.RSASelector+"._domainkey.example.com." || !ok || !rk.Equal(&keys.RSA.PublicKey) {
				t.Errorf("%s: rsa p= is not the stored key", r.Name)
			}
		default:
			t.Errorf("%s: k=%q", r.Name, tags["k"])
		}
	}
}

// FormatZone's output is read back by a third-party zone parser: every
// record comes back with the same data, long TXT values as several strings
// of at most 255 octets.
func TestFormatZoneParses(t *testing.T) {
	keys := testKeys(t)
	rs := Records("example.com", "mail.example.com", keys)
	rs = append(rs, Record{Name: "q.example.com.", Type: "TXT", Value: `say "hi" \ bye`, Comment: "two\nlines"})
	zone := FormatZone(rs)
	zp := dns.NewZoneParser(strings.NewReader(zone), "example.com.", "")
	zp.SetDefaultTTL(3600)
	i := 0
	split := false
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if i >= len(rs) {
			t.Fatalf("extra record %v", rr)
		}
		want := rs[i]
		i++
		h := rr.Header()
		if h.Name != want.Name || dns.TypeToString[h.Rrtype] != want.Type {
			t.Fatalf("record %d = %s %s, want %s %s", i, h.Name, dns.TypeToString[h.Rrtype], want.Name, want.Type)
		}
		var got string
		switch rr := rr.(type) {
		case *dns.TXT:
			// miekg keeps TXT strings escaped: read them off the wire.
			strs := wireTXT(t, rr)
			split = split || len(strs) > 1
			got = strings.Join(strs, "")
		default:
			got = strings.TrimPrefix(rr.String(), h.String())
		}
		if got != want.Value {
			t.Errorf("%s %s = %q, want %q", want.Type, want.Name, got, want.Value)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone parse: %v\n%s", err, zone)
	}
	if i != len(rs) {
		t.Fatalf("parsed %d records of %d", i, len(rs))
	}
	if !split {
		t.Error("the RSA key record was not split into several strings")
	}
}

func TestMTASTSPolicy(t *testing.T) {
	p := MTASTSPolicy("Mail.Example.com.")
	if p != "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmax_age: 604800\r\n" {
		t.Fatalf("policy = %q", p)
	}
	id := func(mx string) string {
		for _, r := range Records("example.com", mx, Keys{}) {
			if strings.HasPrefix(r.Name, "_mta-sts.") {
				return r.Value
			}
		}
		t.Fatal("no _mta-sts record")
		return ""
	}
	// RFC 8461 3.1: the id changes with the policy and only then.
	if id("a.example.com") == id("b.example.com") || id("a.example.com") != id("A.example.com.") {
		t.Error("_mta-sts id does not follow the policy")
	}
}

func TestRecordsWithoutKeys(t *testing.T) {
	for _, r := range Records("example.com", "example.com", Keys{}) {
		if strings.Contains(r.Name, "_domainkey") {
			t.Errorf("DKIM record without keys: %v", r)
		}
		if r.Type == "TXT" && r.Value == "v=spf1 a -all" {
			t.Errorf("HELO SPF record when the MX is the domain itself: %v", r)
		}
	}
}

// wireTXT packs rr and returns its character-strings as octets, failing
// the test on a string over 255 octets (which PackRR would refuse anyway).
func wireTXT(t *testing.T, rr *dns.TXT) []string {
	t.Helper()
	buf := make([]byte, 4096)
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		t.Fatalf("pack %s: %v", rr.Hdr.Name, err)
	}
	rdata := buf[off-int(rr.Hdr.Rdlength) : off]
	var strs []string
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			t.Fatalf("%s: bad rdata", rr.Hdr.Name)
		}
		strs = append(strs, string(rdata[1:1+n]))
		rdata = rdata[1+n:]
	}
	return strs
}
