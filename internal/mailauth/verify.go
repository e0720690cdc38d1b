package mailauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// Action is what a Verdict asks delivery to do with a message.
type Action int

const (
	Accept     Action = iota
	Quarantine        // deliver to the recipient's Junk
	Reject            // refuse with a 5xx (RFC 7489 10.3: 550 5.7.1)
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Quarantine:
		return "quarantine"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Inbound is what the SMTP session knows of an incoming message's sender.
type Inbound struct {
	IP       netip.Addr // the connecting client
	HELO     string     // the EHLO/HELO argument
	MailFrom string     // the reverse-path without <>; "" for the null path
}

// Verdict is the outcome of Check.
type Verdict struct {
	// Header is the Authentication-Results field to prepend, folded, with
	// its final CRLF (RFC 8601 2.2).
	Header string
	// SPF, DKIM and DMARC are the result words (RFC 8601 2.7, RFC 7489
	// 11.2): SPF's of the one identity checked; DKIM's the best over all
	// signatures (pass, temperror, fail, permerror; "none" when unsigned);
	// DMARC's the worst over the From domains (fail, temperror, permerror,
	// none, pass).
	SPF, DKIM, DMARC string
	Action           Action
	// Reason explains a Quarantine or Reject, or a DMARC policy not applied,
	// in words fit for a log line or an SMTP reply.
	Reason string
}

// defaultTimeout bounds one Check's DNS work when the Verifier sets none:
// SPF alone may make 10 lookups plus 2 void ones (RFC 7208 4.6.4).
const defaultTimeout = 30 * time.Second

// maxSignatures bounds the DKIM signatures verified per message (each costs
// a DNS query and a public-key operation); RFC 6376 6.1 lets a verifier
// limit them. Later signatures are not reported.
const maxSignatures = 8

// Verifier checks incoming mail. The zero value is not usable: Hostname is
// required.
type Verifier struct {
	// Hostname is the authserv-id of the Authentication-Results fields
	// (RFC 8601 2.5): this server's host name.
	Hostname string
	// Resolver answers DNS queries; nil means net.DefaultResolver.
	Resolver Resolver
	// OrgDomain gives a domain's Organizational Domain (RFC 7489 3.2), for
	// policy discovery and relaxed alignment. Nil means the public suffix
	// list compiled into golang.org/x/net/publicsuffix (ICANN and private
	// sections), so "shop.example.co.uk" belongs to "example.co.uk", not
	// to "co.uk".
	OrgDomain func(domain string) string
	// Timeout bounds the DNS work of one Check; zero means 30 seconds.
	Timeout time.Duration
}

// Check authenticates one incoming message, reading all of it from msg: SPF of
// the MAIL FROM domain (or of the HELO name for the null reverse-path, RFC
// 7208 2.4), every DKIM signature (up to maxSignatures), and DMARC for the
// From domain. An error means no verdict: the message could not be read
// (ErrHeaderTooLarge among others) or the Verifier is misconfigured. DNS
// failures are not errors: they give temperror results.
func (v *Verifier) Check(ctx context.Context, in Inbound, msg io.Reader) (Verdict, error) {
	if !safeToken(v.Hostname) {
		return Verdict{}, fmt.Errorf("mailauth: bad authserv-id (Verifier.Hostname) %q", v.Hostname)
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r Resolver = net.DefaultResolver
	if v.Resolver != nil {
		r = v.Resolver
	}
	dns := dnsAdapter{r: r, ctx: ctx}

	br := bufio.NewReaderSize(msg, 64<<10)
	raw, fields, err := readHeader(br)
	if err != nil {
		return Verdict{}, err
	}
	spfOut := checkSPF(ctx, dns, in)
	sigs, err := checkDKIM(dns, raw, fields, br)
	if err != nil {
		return Verdict{}, err
	}
	// Read to the end whatever DKIM left (it may stop early, or never
	// start when unsigned), so a caller feeding msg from a pipe is never
	// left blocked.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return Verdict{}, fmt.Errorf("mailauth: read message: %w", err)
	}
	msgID := ""
	if ids := values(fields, "Message-ID"); len(ids) > 0 {
		msgID = ids[0]
	}
	dmarcOuts := v.checkDMARC(dns, fields, spfOut, sigs, msgID)

	verdict := Verdict{SPF: string(spfOut.result), DKIM: dkimSummary(sigs)}
	results := []authres.Result{spfOut.authres()}
	if len(sigs) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, s := range sigs {
		results = append(results, s.authres())
	}
	for i, o := range dmarcOuts {
		results = append(results, o.authres())
		if i == 0 || dmarcRank[o.result] > dmarcRank[verdict.DMARC] {
			verdict.DMARC = o.result
		}
		// RFC 7489 6.6.1: with several From domains, the strictest policy
		// among the failing ones applies.
		if o.action > verdict.Action || o.action == verdict.Action && verdict.Reason == "" {
			verdict.Action, verdict.Reason = o.action, o.reason
		}
	}
	verdict.Header = formatResults(v.Hostname, results)
	return verdict, nil
}

// dmarcRank orders DMARC words for Verdict.DMARC: the worst one shows.
var dmarcRank = map[string]int{"pass": 0, "none": 1, "permerror": 2, "temperror": 3, "fail": 4}

// formatResults builds the Authentication-Results field, one resinfo per
// line. RFC 8601 2.2: authserv-id, then "; method=result props" for each.
func formatResults(id string, results []authres.Result) string {
	parts := []string{id}
	for _, r := range results {
		// authres.Format of a single result is "; method=value props".
		s := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), ";"))
		parts = append(parts, s)
	}
	return foldHeader("Authentication-Results", parts)
}

// safeToken reports whether s can go into a header unquoted and unescaped:
// letters (UTF-8 too, RFC 8601 2.7.1/2.7.2 allow U-labels), digits, '.',
// '-', '_'. Values from the message or the SMTP session that are not are
// left out of the header rather than quoted: a broken quote could make a
// reader see results that we did not write.
func safeToken(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func safe(s string) string {
	if safeToken(s) {
		return s
	}
	return ""
}

// shortReason turns a library error into a reason fit for the header: the
// library's fixed text before any ": detail" (which may quote DNS server
// addresses), limited to harmless characters.
func shortReason(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "dkim: ")
	s, _, _ = strings.Cut(s, ":")
	s = strings.Map(func(c rune) rune {
		if c < 0x80 && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune(" .-_=", c)) {
			return c
		}
		return -1
	}, s)
	return strings.TrimSpace(s)
}

// spfOutcome is the SPF result of the one identity checked.
type spfOutcome struct {
	result spf.Result
	domain string // the domain checked: MAIL FROM's, or HELO's
	helo   bool   // HELO was checked (null reverse-path)
}

func (o spfOutcome) authres() authres.Result {
	// RFC 8601 2.7.2: without local-part provisions in the SPF record the
	// pvalue SHOULD NOT include the local-part, so the domain only. RFC
	// 8601 4: only the identity that gave the result is reported.
	r := &authres.SPFResult{Value: authres.ResultValue(o.result)}
	if o.helo {
		r.Helo = safe(o.domain)
	} else {
		r.From = safe(o.domain)
	}
	return r
}

func checkSPF(ctx context.Context, dns dnsAdapter, in Inbound) spfOutcome {
	helo := strings.ToLower(strings.TrimSuffix(in.HELO, "."))
	var out spfOutcome
	sender := in.MailFrom
	if sender == "" {
		// RFC 7208 2.4: with the null reverse-path, check_host() runs on
		// the HELO identity, with "postmaster@" + HELO as the sender.
		out.helo = true
		out.domain = helo
		sender = "postmaster@" + helo
	} else if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		out.domain = strings.ToLower(strings.TrimSuffix(sender[i+1:], "."))
		// The spf package splits at the first '@'; a quoted local-part
		// holding one must not move the domain.
		sender = strings.ReplaceAll(sender[:i], "@", "") + "@" + out.domain
	} else {
		// RFC 7208 4.3: a reverse-path without a domain has none to check.
		out.result = spf.None
		return out
	}
	// RFC 7208 4.3: a malformed or single-label domain gives "none"
	// without any lookup (an address literal HELO among them).
	if !isFQDN(out.domain) {
		out.result = spf.None
		return out
	}
	ip := in.IP.Unmap()
	res, _ := spf.CheckHostWithSender(net.IP(ip.AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(dns))
	out.result = res
	return out
}

// isFQDN: at least two labels, each 1-63 octets, 253 in all (RFC 7208 4.3).
func isFQDN(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for l := range strings.SplitSeq(d, ".") {
		if l == "" || len(l) > 63 || strings.ContainsAny(l, " \t[]@") {
			return false
		}
	}
	return true
}

// sigOutcome is the result of one DKIM signature.
type sigOutcome struct {
	result   string // pass, fail, permerror, temperror
	domain   string // d=
	selector string // s=, when our parse of the field agrees with the library's
	algo     string // a=, likewise
	reason   string
}

func (o sigOutcome) authres() authres.Result {
	// RFC 8601 2.7.1 (header.d) and 6.3 (header.a, header.s). go-msgauth's
	// DKIMResult has no header.s, hence the generic form.
	return &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(o.result), Params: map[string]string{
		"header.d": safe(o.domain), "header.s": safe(o.selector), "header.a": safe(o.algo), "reason": o.reason,
	}}
}

// checkDKIM verifies every signature of the message whose header section
// is raw (fields parsed) and whose body follows in body.
func checkDKIM(dns dnsAdapter, raw []byte, fields []field, body io.Reader) ([]sigOutcome, error) {
	fieldSigs := values(fields, "DKIM-Signature")
	if len(fieldSigs) == 0 {
		return nil, nil
	}
	verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(raw), body), &dkim.VerifyOptions{
		LookupTXT:        dns.txt,
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil, fmt.Errorf("mailauth: read message for DKIM: %w", err)
	}
	outs := make([]sigOutcome, 0, len(verifs))
	for i, vf := range verifs {
		o := sigOutcome{domain: strings.ToLower(vf.Domain)}
		switch {
		case vf.Err == nil:
			o.result = "pass"
		case dkim.IsTempFail(vf.Err):
			o.result = "temperror"
		case dkim.IsPermFail(vf.Err):
			o.result = "permerror"
		default:
			o.result = "fail"
		}
		if vf.Err != nil {
			o.reason = shortReason(vf.Err)
		}
		// The library reports d= but not s= or a=: take them from our
		// parse of the same field, if it is the same field (the domains
		// agree).
		if i < len(fieldSigs) {
			if tags, err := parseTags(fieldSigs[i]); err == nil && strings.EqualFold(stripSpace(tags["d"]), vf.Domain) {
				o.selector = stripSpace(tags["s"])
				o.algo = stripSpace(tags["a"])
			}
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func stripSpace(s string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsSpace(c) {
			return -1
		}
		return c
	}, s)
}

// dkimSummary: RFC 7489 3.1.1, one verifying signature is enough, so any
// pass is the summary; otherwise the failure most likely to change on a
// retry shows.
func dkimSummary(sigs []sigOutcome) string {
	if len(sigs) == 0 {
		return "none"
	}
	best := ""
	rank := map[string]int{"": 0, "permerror": 1, "fail": 2, "temperror": 3, "pass": 4}
	for _, s := range sigs {
		if rank[s.result] > rank[best] {
			best = s.result
		}
	}
	return best
}
