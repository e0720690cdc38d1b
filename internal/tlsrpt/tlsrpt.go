// Package tlsrpt is SMTP TLS Reporting (RFC 8460) from the sending side:
// the outbound SMTP client records how TLS went with each receiving host
// (Record), and once a day a report per recipient domain that asks for one
// (a "_smtp._tls" TXT record) goes to its rua addresses: by mail, DKIM-
// signed through the outbound queue, or by HTTPS POST.
//
// Results are counted in memory and added to posta.db every minute, so a
// crash loses at most that minute of counts; reports are best effort
// (RFC 8460 5.5 asks for retries, not for certainty).
package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Policy types (RFC 8460 4.4 policy-type).
const (
	PolicySTS    = "sts"
	PolicyTLSA   = "tlsa"
	PolicyNone   = "no-policy-found"
	resultPassed = "" // Result.Type of a successful session
)

// Result types (RFC 8460 4.3) the client reports.
const (
	StartTLSNotSupported    = "starttls-not-supported"
	CertificateHostMismatch = "certificate-host-mismatch"
	CertificateExpired      = "certificate-expired"
	CertificateNotTrusted   = "certificate-not-trusted"
	ValidationFailure       = "validation-failure"
)

// Result is how TLS went in one session with a receiving host.
type Result struct {
	// Domain is the Policy Domain: the recipients' domain, in A-labels.
	Domain string
	// PolicyType is PolicySTS, PolicyTLSA or PolicyNone; Policy the
	// applied policy as RFC 8460 4.5 writes it, MXPatterns the mx lines of
	// an MTA-STS policy.
	PolicyType string
	Policy     []string
	MXPatterns []string
	// MXHost is the receiving host's name, ReceivingIP its address,
	// SendingIP ours.
	MXHost, ReceivingIP, SendingIP string
	// Type is "" for a session that negotiated TLS as the policy asks,
	// else one of the result types; Reason a short error text.
	Type, Reason string
}

// ParseRecord reads a TLSRPT policy (RFC 8460 3) from the TXT records at
// _smtp._tls.<domain> and returns its rua URIs (mailto: and https: only).
// Records not starting "v=TLSRPTv1" are ignored; anything but exactly one
// left means the domain does not take reports.
func ParseRecord(txts []string) ([]string, error) {
	var recs []string
	for _, t := range txts {
		// RFC 8460 3: records that do not begin with "v=TLSRPTv1;" are
		// discarded (a record of the version alone has no rua anyway).
		if strings.HasPrefix(t, "v=TLSRPTv1;") || t == "v=TLSRPTv1" {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("tlsrpt: %d TLSRPTv1 records, want 1", len(recs))
	}
	var ruas []string
	seenRUA := false
	for _, field := range strings.Split(recs[0], ";")[1:] {
		field = strings.Trim(field, " \t")
		if field == "" {
			continue
		}
		name, value, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("tlsrpt: bad field %q", field)
		}
		if name != "rua" {
			continue // RFC 8460 3: unknown fields are ignored
		}
		if seenRUA {
			return nil, errors.New("tlsrpt: rua given twice")
		}
		seenRUA = true
		for _, u := range strings.Split(value, ",") {
			u = strings.Trim(u, " \t")
			pu, err := url.Parse(u)
			if err != nil {
				continue
			}
			switch strings.ToLower(pu.Scheme) {
			case "mailto":
				if addr := mailtoAddress(pu); addr != "" {
					ruas = append(ruas, "mailto:"+addr)
				}
			case "https":
				if pu.Host != "" {
					ruas = append(ruas, u)
				}
			}
		}
	}
	if len(ruas) == 0 {
		return nil, errors.New("tlsrpt: no usable rua")
	}
	return ruas, nil
}

// mailtoAddress is the address of a mailto: URI (RFC 6068), without
// header fields; "" if it is not one address.
func mailtoAddress(u *url.URL) string {
	addr := u.Opaque
	if addr == "" {
		addr = u.Path
	}
	addr, err := url.PathUnescape(addr)
	if err != nil || strings.Count(addr, "@") != 1 || strings.ContainsAny(addr, ", <>\r\n") {
		return ""
	}
	return addr
}
