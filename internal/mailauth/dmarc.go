package mailauth

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"net/mail"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// dmarcOutcome is the DMARC result for one RFC5322.From domain.
type dmarcOutcome struct {
	domain string
	result string // none, pass, fail, temperror, permerror (RFC 7489 11.2)
	policy string // the policy (p or sp) that applied to a failure
	action Action
	reason string
}

func (o dmarcOutcome) authres() authres.Result {
	r := &authres.DMARCResult{Value: authres.ResultValue(o.result), From: safe(o.domain)}
	if o.result == "fail" {
		r.Reason = "policy " + o.policy
		if o.action.String() != o.policy && o.policy != "none" {
			r.Reason += ", action " + o.action.String() // pct sampled it out
		}
	}
	return r
}

// orgDomain is RFC 7489 3.2's Organizational Domain, by v.OrgDomain or,
// without one, by the public suffix list: the public suffix matching the
// most labels plus one more label. A name that is itself a public suffix
// (or not a valid name) is its own Organizational Domain.
func (v *Verifier) orgDomain(d string) string {
	if v.OrgDomain != nil {
		return strings.ToLower(strings.TrimSuffix(v.OrgDomain(d), "."))
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned is RFC 7489 3.1.1/3.1.2: strict mode wants the same name, relaxed
// mode the same Organizational Domain. Names compare case-insensitively
// (RFC 7489 3.1, DNS-CASE).
func (v *Verifier) aligned(id, from string, mode dmarc.AlignmentMode) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == "" || from == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return id == from
	}
	return v.orgDomain(id) == v.orgDomain(from)
}

// authorDomains extracts the RFC5322.From domains (RFC 7489 6.6.1),
// lowercased and without duplicates. Several From fields (forbidden by RFC
// 5322 3.6) and several addresses in one are both kept: each domain is
// checked and the strictest failing policy applies (RFC 7489 6.6.1, last
// paragraph), so a second From cannot slip a spoofed address past DMARC.
// A From the parser refuses falls back to every "@domain" in it, for the
// same reason. The error is set when no domain was found.
func authorDomains(fields []field) ([]string, error) {
	froms := values(fields, "From")
	if len(froms) == 0 {
		return nil, errors.New("no From field")
	}
	// Display names in any charset: only the address matters here.
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	seen := map[string]bool{}
	var ds []string
	add := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		// RFC 8616 6: a UTF-8 From domain (RFC 6532) is looked up, and
		// aligned with DKIM's d= and SPF's domain, by its A-labels;
		// otherwise DMARC would find no policy for it, or one of a name
		// nobody owns. A name IDNA refuses is kept: its lookup fails.
		if a, err := idna.Lookup.ToASCII(d); err == nil && a != "" {
			d = a
		}
		if d != "" && !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	for _, f := range froms {
		addrs, err := p.ParseList(f)
		if err != nil {
			for _, d := range scanDomains(f) {
				add(d)
			}
			continue
		}
		for _, a := range addrs {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				add(a.Address[i+1:])
			}
		}
	}
	if len(ds) == 0 {
		// RFC 7489 6.6.1: e.g. an empty group, "no meaningful domains".
		return nil, errors.New("no domain in From")
	}
	return ds, nil
}

// scanDomains finds every "@name" in s, for a From field net/mail cannot
// parse.
func scanDomains(s string) []string {
	var ds []string
	for {
		i := strings.IndexByte(s, '@')
		if i < 0 {
			return ds
		}
		s = s[i+1:]
		end := strings.IndexFunc(s, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c >= 0x80)
		})
		if end < 0 {
			end = len(s)
		}
		if d := strings.Trim(s[:end], "."); d != "" {
			ds = append(ds, d)
		}
	}
}

func (v *Verifier) checkDMARC(dns dnsAdapter, fields []field, spfOut spfOutcome, sigs []sigOutcome, msgID string) []dmarcOutcome {
	ds, err := authorDomains(fields)
	if err != nil {
		// RFC 7489 6.6.1: outside DMARC. Without a From address no author
		// can be impersonated, so "none" (RFC 7489 11.2: "no aligned
		// identifier could be extracted") and no policy.
		return []dmarcOutcome{{result: "none", action: Accept, reason: "dmarc none: " + err.Error()}}
	}
	outs := make([]dmarcOutcome, 0, len(ds))
	for _, d := range ds {
		outs = append(outs, v.dmarcFor(dns, d, spfOut, sigs, msgID))
	}
	return outs
}

// dmarcFor is RFC 7489 6.6.2 for one author domain.
func (v *Verifier) dmarcFor(dns dnsAdapter, from string, spfOut spfOutcome, sigs []sigOutcome, msgID string) dmarcOutcome {
	out := dmarcOutcome{domain: from, action: Accept}
	rec, at, res := v.lookupPolicy(dns, from)
	if res != "" {
		out.result = res
		if res != "none" {
			out.reason = fmt.Sprintf("dmarc %s for %s: policy not applied", res, from)
		}
		return out
	}
	// RFC 7489 6.6.2 step 5: one aligned authenticated identifier passes.
	if spfOut.result == spf.Pass && v.aligned(spfOut.domain, from, rec.SPFAlignment) {
		out.result = "pass"
		return out
	}
	for _, s := range sigs {
		if s.result == "pass" && v.aligned(s.domain, from, rec.DKIMAlignment) {
			out.result = "pass"
			return out
		}
	}
	// RFC 7489 6.6.2: with no pass and a temporary error in an aligned
	// mechanism, the failure is not known to be permanent: temperror, and
	// the policy is not applied (a DNS outage never rejects mail).
	temp := spfOut.result == spf.TempError && v.aligned(spfOut.domain, from, rec.SPFAlignment)
	for _, s := range sigs {
		temp = temp || s.result == "temperror" && v.aligned(s.domain, from, rec.DKIMAlignment)
	}
	if temp {
		out.result = "temperror"
		out.reason = fmt.Sprintf("dmarc temperror for %s: policy not applied", from)
		return out
	}
	out.result = "fail"
	// RFC 7489 6.3 "sp": the policy for subdomains, found at the
	// Organizational Domain; absent, "p" applies to them too.
	policy := rec.Policy
	if at != from && rec.SubdomainPolicy != "" {
		policy = rec.SubdomainPolicy
	}
	out.policy = string(policy)
	sampled := applies(rec, msgID)
	switch {
	case policy == dmarc.PolicyReject && sampled:
		out.action = Reject
	case policy == dmarc.PolicyReject:
		// RFC 7489 6.6.4: reject not enacted because of pct: treat as
		// quarantine.
		out.action = Quarantine
	case policy == dmarc.PolicyQuarantine && sampled:
		out.action = Quarantine
	}
	out.reason = fmt.Sprintf("dmarc fail for %s: no aligned SPF or DKIM pass, policy %s, action %s", from, policy, out.action)
	return out
}

// applies is RFC 7489 6.6.4 message sampling: the policy is enacted on at
// most pct percent of the failing messages. The sample is deterministic, a
// hash of the Message-ID, so that a message retried or delivered to several
// recipients gets one answer. A message without Message-ID is in the sample
// unless pct is 0. The sender chooses its Message-ID and so its bucket, but
// a domain owner publishing pct<100 has accepted that part of the forged
// mail gets through.
func applies(rec *dmarc.Record, msgID string) bool {
	pct := 100
	if rec.Percent != nil {
		pct = *rec.Percent
	}
	if pct >= 100 {
		return true
	}
	if msgID == "" {
		return pct > 0
	}
	h := fnv.New32a()
	h.Write([]byte(msgID))
	return int(h.Sum32()%100) < pct
}

// lookupPolicy is RFC 7489 6.6.3 policy discovery: the From domain's
// record, else the Organizational Domain's. It returns the record and the
// name it was found at, or a result word (none, temperror, permerror) when
// there is no usable record.
func (v *Verifier) lookupPolicy(dns dnsAdapter, from string) (*dmarc.Record, string, string) {
	names := []string{from}
	if org := v.orgDomain(from); org != from {
		names = append(names, org)
	}
	for _, name := range names {
		txts, err := dns.txt("_dmarc." + name)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			// dnsAdapter makes every other failure temporary. RFC 7489
			// 6.6.3 leaves DNS errors to the receiver: we fail open.
			return nil, "", "temperror"
		}
		// RFC 7489 6.6.3 steps 2 and 4: keep records starting "v=DMARC1".
		var recs []string
		for _, t := range txts {
			if isDMARC1(t) {
				recs = append(recs, t)
			}
		}
		switch len(recs) {
		case 0:
			continue
		case 1:
			rec, err := dmarc.Parse(recs[0])
			if err != nil {
				// RFC 7489 6.6.3 step 6: no valid "p": no DMARC processing.
				return nil, "", "permerror"
			}
			return rec, name, ""
		default:
			// RFC 7489 6.6.3 step 5: several records end discovery.
			return nil, "", "none"
		}
	}
	return nil, "", "none"
}

// isDMARC1: RFC 7489 6.4, dmarc-record starts with
// "v" *WSP "=" *WSP "DMARC1", then ";" or the end.
func isDMARC1(t string) bool {
	const wsp = " \t"
	rest, ok := strings.CutPrefix(strings.TrimLeft(t, wsp), "v")
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(strings.TrimLeft(rest, wsp), "="); !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(strings.TrimLeft(rest, wsp), "DMARC1"); !ok {
		return false
	}
	rest = strings.TrimLeft(rest, wsp)
	return rest == "" || rest[0] == ';'
}
