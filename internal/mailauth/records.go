package mailauth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Record is one DNS record an operator publishes for a domain.
type Record struct {
	Name string // fully qualified, with the final dot
	Type string // "MX", "TXT", "SRV"
	// Value is the record data in zone-file form, except that a TXT value
	// is the text itself, unquoted and in one piece (what a DNS hosting
	// panel wants); FormatZone quotes it and splits it into strings.
	Value   string
	Comment string
}

// The policy values below are Posta's defaults for a domain it serves
// alone; the comments on the records say when to change them.
const (
	// spfPolicy authorizes the domain's MX hosts, which are this server,
	// the one that also sends. "~all" (softfail), not "-all": RFC 7489 10.1
	// warns that receivers may reject on an SPF "-all" before DMARC runs,
	// which bounces mail forwarded by a third party even though its DKIM
	// signature (on every message we send) would pass DMARC; forgeries are
	// still refused through the DMARC policy.
	spfPolicy = "v=spf1 mx ~all"
	// dmarcPolicy: quarantine, not reject, to start: Posta signs every
	// message it sends with an aligned key, so its own mail passes, but a
	// sender the operator forgot (a newsletter service, a printer) should
	// land in Junk rather than bounce while aggregate reports (rua, RFC
	// 7489 7.2) show what else sends as the domain. Move to p=reject when
	// they are clean. Relaxed alignment (the default) so subdomains work.
	dmarcPolicy = "v=DMARC1; p=quarantine; rua=mailto:postmaster@%s"
	// tlsrptPolicy: RFC 8460 3, daily TLS reports to the postmaster.
	tlsrptPolicy = "v=TLSRPTv1; rua=mailto:postmaster@%s"
	// mtaSTSMaxAge is one week, RFC 8461 3.2's example and the low end of
	// the "weeks or greater" it expects.
	mtaSTSMaxAge = 604800
)

// MTASTSPolicy returns the MTA-STS policy file (RFC 8461 3.2) to serve as
// text/plain at https://mta-sts.DOMAIN/.well-known/mta-sts.txt for a domain
// whose MX is mxHost.
//
// Mode "testing" (RFC 8461 5): senders report TLS failures (to the TLS-RPT
// address) but still deliver. In "enforce" mode a sender that cannot
// validate the MX certificate (Posta's self-signed first-run certificate,
// an expired one, an MX name the certificate lacks) refuses to deliver at
// all, so enforce only once the MX has a CA-signed certificate and the
// reports are clean, and change the _mta-sts id then.
func MTASTSPolicy(mxHost string) string {
	return "version: STSv1\r\n" +
		"mode: testing\r\n" +
		"mx: " + strings.TrimSuffix(strings.ToLower(mxHost), ".") + "\r\n" +
		fmt.Sprintf("max_age: %d\r\n", mtaSTSMaxAge)
}

// mtaSTSID derives the _mta-sts id from the policy text, so it changes
// exactly when the policy does (RFC 8461 3.1: id MUST identify a policy
// instance; 1-32 letters and digits).
func mtaSTSID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:10])
}

// Records returns the DNS records to publish for domain, whose mail goes to
// mxHost (this server), with keys' DKIM public keys (a zero Keys gives no
// DKIM records).
func Records(domain, mxHost string, keys Keys) []Record {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	mx := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(mxHost), "."))
	fq := func(name string) string { return name + "." }
	rs := []Record{{
		Name: fq(d), Type: "MX", Value: "10 " + fq(mx),
		Comment: fmt.Sprintf("RFC 5321 5.1: mail for %s goes to %s, which needs A/AAAA records for this server", d, mx),
	}, {
		Name: fq(d), Type: "TXT", Value: spfPolicy,
		Comment: "RFC 7208: SPF, the MX hosts send the domain's mail; ~all rather than -all so DMARC decides (RFC 7489 10.1)",
	}}
	if mx != d {
		rs = append(rs, Record{
			Name: fq(mx), Type: "TXT", Value: "v=spf1 a -all",
			Comment: "RFC 7208 2.3: SPF for the HELO name, which receivers check on bounces (null MAIL FROM); once per MX host",
		})
	}
	if keys.Ed25519 != nil {
		pub := keys.Ed25519.Public().(ed25519.PublicKey)
		rs = append(rs, Record{
			Name: fq(keys.Ed25519Selector + "._domainkey." + d), Type: "TXT",
			// RFC 8463 4.2: p= is the bare 32-byte public key in base64.
			Value:   "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
			Comment: "RFC 8463: DKIM ed25519 key, selector " + keys.Ed25519Selector,
		})
	}
	if keys.RSA != nil {
		// RFC 6376 3.6.1: p= is the base64 of the DER SubjectPublicKeyInfo.
		der, err := x509.MarshalPKIXPublicKey(&keys.RSA.PublicKey)
		if err == nil {
			rs = append(rs, Record{
				Name: fq(keys.RSASelector + "._domainkey." + d), Type: "TXT",
				Value:   "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der),
				Comment: "RFC 6376 3.6.1: DKIM RSA key, selector " + keys.RSASelector + " (longer than 255 octets: several strings in one record)",
			})
		}
	}
	policy := MTASTSPolicy(mx)
	rs = append(rs, Record{
		Name: fq("_dmarc." + d), Type: "TXT", Value: fmt.Sprintf(dmarcPolicy, d),
		Comment: "RFC 7489 6.1: DMARC; quarantine until the aggregate reports to postmaster are clean, then p=reject",
	}, Record{
		Name: fq("_mta-sts." + d), Type: "TXT", Value: "v=STSv1; id=" + mtaSTSID(policy),
		Comment: "RFC 8461 3.1: MTA-STS; serve `posta domain dns`'s policy at https://mta-sts." + d +
			"/.well-known/mta-sts.txt (mta-sts." + d + " needs A/AAAA and a certificate); change id when the policy changes",
	}, Record{
		Name: fq("_smtp._tls." + d), Type: "TXT", Value: fmt.Sprintf(tlsrptPolicy, d),
		Comment: "RFC 8460 3: TLS reporting to postmaster",
	})
	// RFC 6186 3 service labels, RFC 8314 5.1 _submissions. RFC 8314 4.5.2:
	// implicit TLS advertised in preference to STARTTLS, so lower
	// priorities; RFC 6186 3.4: IMAP preferred over POP3 likewise.
	srv := []struct {
		label    string
		prio     int
		port     int
		starttls bool
	}{
		{"_submissions._tcp", 0, 465, false},
		{"_submission._tcp", 10, 587, true},
		{"_imaps._tcp", 0, 993, false},
		{"_imap._tcp", 10, 143, true},
		{"_pop3s._tcp", 20, 995, false},
		{"_pop3._tcp", 30, 110, true},
	}
	for _, s := range srv {
		c := "RFC 6186: client autoconfiguration, implicit TLS (RFC 8314)"
		if s.starttls {
			c = "RFC 6186: client autoconfiguration, STARTTLS; RFC 8314 4.5.2 prefers implicit TLS: " +
				"to offer implicit TLS only, publish \"0 0 0 .\" here (RFC 6186 3.4: service not provided)"
		}
		rs = append(rs, Record{
			Name: fq(s.label + "." + d), Type: "SRV",
			Value:   fmt.Sprintf("%d 1 %d %s", s.prio, s.port, fq(mx)),
			Comment: c,
		})
	}
	return rs
}

// maxTXTString: RFC 1035 3.3.14, a TXT record is one or more
// character-strings of at most 255 octets each.
const maxTXTString = 255

// txtStrings splits a TXT value into character-strings. RFC 6376 3.6.2.2
// and RFC 8461 3.1: the reader concatenates them without separators.
func txtStrings(v string) []string {
	var ss []string
	for len(v) > maxTXTString {
		ss = append(ss, v[:maxTXTString])
		v = v[maxTXTString:]
	}
	return append(ss, v)
}

// quoteTXT writes one character-string in zone-file form (RFC 1035 5.1):
// quoted, with '"' and '\' escaped and other non-printing octets as \DDD.
func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// FormatZone renders records as zone-file lines (RFC 1035 5.1), each after
// its comment, with TXT values quoted and split into 255-octet strings.
// Names are absolute, so the lines fit any zone's $ORIGIN; the TTL is the
// zone's default.
func FormatZone(records []Record) string {
	var b strings.Builder
	for _, r := range records {
		if r.Comment != "" {
			b.WriteString("; " + strings.ReplaceAll(r.Comment, "\n", "\n; ") + "\n")
		}
		v := r.Value
		if r.Type == "TXT" {
			parts := txtStrings(v)
			for i, p := range parts {
				parts[i] = quoteTXT(p)
			}
			v = strings.Join(parts, " ")
		}
		fmt.Fprintf(&b, "%s\tIN\t%s\t%s\n", r.Name, r.Type, v)
	}
	return b.String()
}
