package mx

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"testing"

	"posta/internal/tlsrpt"
)

type reports struct {
	mu  sync.Mutex
	got []tlsrpt.Result
}

func (r *reports) add(res tlsrpt.Result) {
	r.mu.Lock()
	r.got = append(r.got, res)
	r.mu.Unlock()
}

func (r *reports) all() []tlsrpt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestTLSReportResults: each session tells the TLS reporter (RFC 8460) its
// policy and outcome: success, or the result type of what failed.
func TestTLSReportResults(t *testing.T) {
	report := func(o *Options, r *reports) { o.TLSReport = r.add }
	type want struct {
		policyType, typ string
		policy          []string
		patterns        []string
	}
	check := func(t *testing.T, r *reports, w want) {
		t.Helper()
		got := r.all()
		if len(got) == 0 {
			t.Fatal("no result reported")
		}
		g := got[0]
		if g.Domain != "example.test" || g.MXHost != "mx1.example.test" || g.PolicyType != w.policyType || g.Type != w.typ ||
			(w.policy != nil && !slices.Equal(g.Policy, w.policy)) || !slices.Equal(g.MXPatterns, w.patterns) {
			t.Fatalf("reported %+v, want %+v", g, w)
		}
		if w.typ != "" && g.Reason == "" {
			t.Errorf("a failure without a reason: %+v", g)
		}
		if g.SendingIP == "" || g.ReceivingIP == "" {
			t.Errorf("addresses missing: %+v", g)
		}
	}

	t.Run("no policy, TLS", func(t *testing.T) {
		var r reports
		cert := selfSigned(t, "mx1.example.test")
		mx := newFakeMX(t, fakeMXConfig{cert: &cert})
		e := newEnv(t, func(o *Options) { report(o, &r) })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		send(t, e, envelope("bob@example.test"))
		check(t, &r, want{policyType: tlsrpt.PolicyNone})
	})
	t.Run("no policy, no STARTTLS", func(t *testing.T) {
		var r reports
		mx := newFakeMX(t, fakeMXConfig{})
		e := newEnv(t, func(o *Options) { report(o, &r) })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		send(t, e, envelope("bob@example.test"))
		check(t, &r, want{policyType: tlsrpt.PolicyNone, typ: tlsrpt.StartTLSNotSupported})
	})
	stsPolicy := []string{"version: STSv1", "mode: enforce", "mx: mx1.example.test", "max_age: 86400"}
	stsCase := func(t *testing.T, cert func(*testCA) tls.Certificate, typ string) {
		var r reports
		ca := newCA(t)
		mx := newFakeMX(t, fakeMXConfig{cert: ptr(cert(ca))})
		hc, _ := stsServer(t, ca, "mta-sts.example.test", enforceMX1)
		e := newEnv(t, func(o *Options) { o.HTTPClient = hc; o.RootCAs = ca.pool; report(o, &r) })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		e.res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=20240101T000000;"}
		send(t, e, envelope("bob@example.test"))
		check(t, &r, want{policyType: tlsrpt.PolicySTS, typ: typ, policy: stsPolicy, patterns: []string{"mx1.example.test"}})
	}
	t.Run("MTA-STS, valid", func(t *testing.T) {
		stsCase(t, func(ca *testCA) tls.Certificate { return ca.issue(t, "mx1.example.test") }, "")
	})
	t.Run("MTA-STS, untrusted certificate", func(t *testing.T) {
		stsCase(t, func(*testCA) tls.Certificate { return selfSigned(t, "mx1.example.test") }, tlsrpt.CertificateNotTrusted)
	})
	t.Run("MTA-STS, wrong name", func(t *testing.T) {
		stsCase(t, func(ca *testCA) tls.Certificate { return ca.issue(t, "other.example.test") }, tlsrpt.CertificateHostMismatch)
	})
	daneCase := func(t *testing.T, cert, named tls.Certificate, typ string) {
		var r reports
		recs := []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(named)}}
		mx := newFakeMX(t, fakeMXConfig{cert: &cert, requireTLS: true})
		e := newEnv(t, func(o *Options) { report(o, &r) })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		e.res.mxSecure, e.res.addrSecure, e.res.tlsaSecure = true, true, true
		e.res.tlsa["mx1.example.test"] = recs
		send(t, e, envelope("bob@example.test"))
		check(t, &r, want{policyType: tlsrpt.PolicyTLSA, typ: typ,
			policy: []string{fmt.Sprintf("3 1 1 %X", spkiSHA256(named))}})
	}
	t.Run("DANE, match", func(t *testing.T) {
		cert := selfSigned(t, "mx1.example.test")
		daneCase(t, cert, cert, "")
	})
	t.Run("DANE, mismatch", func(t *testing.T) {
		daneCase(t, selfSigned(t, "mx1.example.test"), selfSigned(t, "mx1.example.test"), tlsrpt.ValidationFailure)
	})
	t.Run("TLS-Required: No is not reported", func(t *testing.T) {
		var r reports
		cert := selfSigned(t, "mx1.example.test")
		mx := newFakeMX(t, fakeMXConfig{cert: &cert})
		e := newEnv(t, func(o *Options) { report(o, &r) })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		env := envelope("bob@example.test")
		env.TLSOptional = true
		send(t, e, env)
		if got := r.all(); len(got) != 0 || len(mx.messages()) != 1 {
			t.Fatalf("reported %+v for a TLS-Required: No message (%d delivered)", got, len(mx.messages()))
		}
	})
}
