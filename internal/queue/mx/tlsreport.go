package mx

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/net/idna"

	"posta/internal/tlsrpt"
)

// tlsResult tells the TLS reporter (RFC 8460) how TLS went with a host:
// typ "" for a session that negotiated TLS as the policy asks. Sessions of
// a message whose "TLS-Required: No" set the policies aside are left out
// (RFC 8460 3: the session delivering a report is not reported).
func (d *delivery) tlsResult(s *session, p *hostPolicy, typ, reason string) {
	if d.t.report == nil || d.env.TLSOptional {
		return
	}
	domain := d.domain
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = a // RFC 8460 4.4: A-labels
	}
	r := tlsrpt.Result{Domain: strings.ToLower(domain), MXHost: p.host, Type: typ, Reason: reason, PolicyType: tlsrpt.PolicyNone}
	if s != nil && s.cc != nil {
		r.SendingIP = hostOf(s.cc.LocalAddr())
		r.ReceivingIP = hostOf(s.cc.RemoteAddr())
	}
	switch {
	case len(p.dane) > 0:
		r.PolicyType = tlsrpt.PolicyTLSA
		for _, rec := range p.dane {
			// RFC 8460 4.5: the four fields in presentation form.
			r.Policy = append(r.Policy, fmt.Sprintf("%d %d %d %s", rec.Usage, rec.Selector, rec.MatchingType, strings.ToUpper(hex.EncodeToString(rec.Data))))
		}
	case p.sts != nil:
		r.PolicyType = tlsrpt.PolicySTS
		r.Policy = append(r.Policy, "version: STSv1", "mode: "+p.sts.Mode)
		for _, mx := range p.sts.MX {
			r.Policy = append(r.Policy, "mx: "+mx)
		}
		r.Policy = append(r.Policy, fmt.Sprintf("max_age: %d", int64(p.sts.MaxAge.Seconds())))
		r.MXPatterns = append([]string(nil), p.sts.MX...)
	}
	d.t.report(r)
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	return host
}

// certResult is the RFC 8460 4.3.1 result type of a failed PKIX check.
func certResult(err error) string {
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &hostErr):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	case errors.As(err, &unknown), errors.As(err, &invalid):
		return tlsrpt.CertificateNotTrusted
	}
	return tlsrpt.ValidationFailure
}
