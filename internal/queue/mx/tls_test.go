package mx

import (
	"crypto/sha256"
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

func TestSTARTTLSWhenOffered(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	mx := newFakeMX(t, fakeMXConfig{cert: &cert})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	m := mx.messages()[0]
	if m.TLS == nil || m.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("the message did not arrive over TLS: %+v", m.TLS)
	}
	if m.TLS.ServerName != "mx1.example.test" {
		t.Errorf("SNI %q, want the MX host name", m.TLS.ServerName)
	}
	if m.Helo != "posta.sender.test" {
		t.Errorf("EHLO after STARTTLS %q", m.Helo)
	}
	// Opportunistic: the self-signed certificate was used, and said so.
	if logs := e.log.String(); !strings.Contains(logs, "cert=unverified") || !strings.Contains(logs, `tls="TLS 1.`) {
		t.Errorf("the log does not record unverified TLS:\n%s", logs)
	}
}

func TestTLSHandshakeFailureRetriesInClear(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	mx := newFakeMX(t, fakeMXConfig{cert: &cert})
	e := newEnv(t, func(o *Options) {
		o.TLSConfig = &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}
	})
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if m := mx.messages()[0]; m.TLS != nil {
		t.Errorf("delivered over TLS %+v, want the clear retry", m.TLS)
	}
	if n := mx.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (TLS, then clear)", n)
	}
}

// stsEnv sets up example.test with mx1.example.test over STARTTLS with cert
// and an MTA-STS policy served by a host with a certificate from ca.
func stsEnv(t *testing.T, ca *testCA, cert tls.Certificate, policy string, mxcfg fakeMXConfig) (*env, *fakeMX) {
	t.Helper()
	mxcfg.cert = &cert
	mx := newFakeMX(t, mxcfg)
	hc, _ := stsServer(t, ca, "mta-sts.example.test", policy)
	e := newEnv(t, func(o *Options) { o.HTTPClient = hc; o.RootCAs = ca.pool })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	e.res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=20240101T000000;"}
	return e, mx
}

const enforceMX1 = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n"

func TestMTASTSEnforceValid(t *testing.T) {
	ca := newCA(t)
	mx := newFakeMX(t, fakeMXConfig{cert: ptr(ca.issue(t, "mx1.example.test"))})
	hc, hits := stsServer(t, ca, "mta-sts.example.test", enforceMX1)
	e := newEnv(t, func(o *Options) { o.HTTPClient = hc; o.RootCAs = ca.pool })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	e.res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=20240101T000000;"}
	for range 2 {
		if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
	}
	if m := mx.messages()[0]; m.TLS == nil {
		t.Fatal("delivered without TLS under an enforce policy")
	}
	if !strings.Contains(e.log.String(), "cert=pkix") {
		t.Errorf("the log does not record a verified certificate:\n%s", e.log.String())
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("policy fetched %d times for one id, want 1 (cached)", n)
	}
}

func TestMTASTSEnforceMXNotInPolicy(t *testing.T) {
	ca := newCA(t)
	policy := "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n"
	e, mx := stsEnv(t, ca, ca.issue(t, "mx1.example.test"), policy, fakeMXConfig{})
	r := send(t, e, envelope("bob@example.test"))[0]
	// RFC 8461 5, 8.4: not delivered, and temporary.
	if r.Delivered() || r.Permanent || r.Enhanced != "4.7.5" || !strings.Contains(r.Text, "MTA-STS") {
		t.Errorf("result %+v, want temporary 4.7.5 from MTA-STS", r)
	}
	if n := mx.accepts.Load(); n != 0 {
		t.Errorf("%d connections to an MX the policy does not allow", n)
	}
}

func TestMTASTSEnforceInvalidCertificate(t *testing.T) {
	ca := newCA(t)
	e, mx := stsEnv(t, ca, selfSigned(t, "mx1.example.test"), enforceMX1, fakeMXConfig{})
	r := send(t, e, envelope("bob@example.test"))[0]
	if r.Delivered() || r.Permanent || r.Enhanced != "4.7.5" {
		t.Errorf("result %+v, want temporary 4.7.5", r)
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Errorf("MAIL sent %d times over an unverified connection", mails)
	}
}

func TestMTASTSTestingDeliversAnyway(t *testing.T) {
	ca := newCA(t)
	policy := strings.Replace(enforceMX1, "enforce", "testing", 1)
	e, mx := stsEnv(t, ca, selfSigned(t, "mx1.example.test"), policy, fakeMXConfig{})
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v, want delivered in testing mode", r)
	}
	if len(mx.messages()) != 1 {
		t.Error("no message")
	}
	if !strings.Contains(e.log.String(), "mta-sts testing") {
		t.Errorf("testing mode did not log the failure:\n%s", e.log.String())
	}
}

func TestMTASTSEnforceWithoutSTARTTLS(t *testing.T) {
	ca := newCA(t)
	mx := newFakeMX(t, fakeMXConfig{}) // no STARTTLS
	hc, _ := stsServer(t, ca, "mta-sts.example.test", enforceMX1)
	e := newEnv(t, func(o *Options) { o.HTTPClient = hc; o.RootCAs = ca.pool })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	e.res.txt["_mta-sts.example.test"] = []string{"v=STSv1; id=1;"}
	r := send(t, e, envelope("bob@example.test"))[0]
	if r.Delivered() || r.Permanent {
		t.Errorf("result %+v, want a temporary failure", r)
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Error("sent in clear under an enforce policy")
	}
}

// daneEnv sets up example.test with mx1.example.test over STARTTLS with
// cert, DNSSEC-validated MX and address records, and TLSA records recs.
func daneEnv(t *testing.T, cert tls.Certificate, recs []TLSA, tlsaSecure bool) (*env, *fakeMX) {
	t.Helper()
	mx := newFakeMX(t, fakeMXConfig{cert: &cert, requireTLS: true})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	e.res.mxSecure, e.res.addrSecure, e.res.tlsaSecure = true, true, tlsaSecure
	e.res.tlsa["mx1.example.test"] = recs
	return e, mx
}

func TestDANEEEMatch(t *testing.T) {
	cert := selfSigned(t, "not-the-mx-name.test") // DANE-EE ignores names (RFC 7672 3.2.1)
	e, mx := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(cert)}}, true)
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if m := mx.messages()[0]; m.TLS == nil {
		t.Fatal("not over TLS")
	}
	if !strings.Contains(e.log.String(), "cert=dane") {
		t.Errorf("the log does not record DANE:\n%s", e.log.String())
	}
	if got := e.res.tlsaAsked; len(got) != 1 || got[0] != "_25._tcp.mx1.example.test" {
		t.Errorf("TLSA looked up at %q", got)
	}
}

func TestDANEEEMismatch(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	other := selfSigned(t, "mx1.example.test")
	e, mx := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(other)}}, true)
	r := send(t, e, envelope("bob@example.test"))[0]
	if r.Delivered() || r.Permanent || r.Enhanced != "4.7.5" || !strings.Contains(r.Text, "DANE") {
		t.Errorf("result %+v, want temporary 4.7.5 from DANE", r)
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Errorf("MAIL sent %d times to a host failing DANE", mails)
	}
}

func TestDANEIgnoredWithoutADBit(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	other := selfSigned(t, "mx1.example.test")
	e, _ := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(other)}}, false)
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v: unvalidated TLSA records must be ignored", r)
	}
	if !strings.Contains(e.log.String(), "cert=unverified") {
		t.Errorf("log:\n%s", e.log.String())
	}
}

func TestDANENotLookedUpForInsecureMX(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	other := selfSigned(t, "mx1.example.test")
	e, _ := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(other)}}, true)
	e.res.mxSecure = false
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if len(e.res.tlsaAsked) != 0 {
		t.Errorf("TLSA looked up for an MX from an unsigned lookup: %q", e.res.tlsaAsked)
	}
}

func TestDANETLSALookupFailureSkipsHost(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	e, mx := daneEnv(t, cert, nil, true)
	e.res.tlsaErr = &net.DNSError{Err: "SERVFAIL", IsTemporary: true}
	r := send(t, e, envelope("bob@example.test"))[0]
	if r.Delivered() || r.Permanent || r.Enhanced != "4.4.3" {
		t.Errorf("result %+v, want temporary 4.4.3", r)
	}
	if n := mx.accepts.Load(); n != 0 {
		t.Errorf("%d connections despite a failed TLSA lookup (RFC 7672 2.1.2)", n)
	}
}

func TestDANERequiresSTARTTLS(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{}) // no STARTTLS: a downgrade
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	e.res.mxSecure, e.res.addrSecure, e.res.tlsaSecure = true, true, true
	e.res.tlsa["mx1.example.test"] = []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}}
	r := send(t, e, envelope("bob@example.test"))[0]
	if r.Delivered() || r.Permanent || !strings.Contains(r.Text, "STARTTLS is not offered") {
		t.Errorf("result %+v, want a temporary failure for the missing STARTTLS", r)
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Error("sent in clear to a host with TLSA records")
	}
}

func TestDANETA(t *testing.T) {
	ca := newCA(t)
	sum := sha256.Sum256(ca.cert.Raw)
	ta := []TLSA{{Usage: 2, Selector: 0, MatchingType: 1, Data: sum[:]}}
	t.Run("name matches", func(t *testing.T) {
		e, _ := daneEnv(t, ca.issue(t, "mx1.example.test"), ta, true)
		if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("next-hop domain matches", func(t *testing.T) {
		e, _ := daneEnv(t, ca.issue(t, "example.test"), ta, true)
		if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("name does not match", func(t *testing.T) {
		e, _ := daneEnv(t, ca.issue(t, "mx.other.test"), ta, true)
		if r := send(t, e, envelope("bob@example.test"))[0]; r.Delivered() || r.Permanent {
			t.Fatalf("result %+v, want a temporary failure (RFC 7672 3.2.2)", r)
		}
	})
}

func TestREQUIRETLS(t *testing.T) {
	ca := newCA(t)
	t.Run("insecure MX without MTA-STS", func(t *testing.T) {
		cert := ca.issue(t, "mx1.example.test")
		mx := newFakeMX(t, fakeMXConfig{cert: &cert, requireTLS: true})
		e := newEnv(t, func(o *Options) { o.RootCAs = ca.pool })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		en := envelope("bob@example.test")
		en.RequireTLS = true
		r := send(t, e, en)[0]
		if !r.Permanent || r.Enhanced != "5.7.10" {
			t.Errorf("result %+v, want permanent 5.7.10", r)
		}
		if n := mx.accepts.Load(); n != 0 {
			t.Errorf("%d connections", n)
		}
	})
	t.Run("verified and offered", func(t *testing.T) {
		e, mx := stsEnv(t, ca, ca.issue(t, "mx1.example.test"), enforceMX1, fakeMXConfig{requireTLS: true})
		en := envelope("bob@example.test")
		en.RequireTLS = true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
		if m := mx.messages()[0]; !m.MailOpts.RequireTLS || m.TLS == nil {
			t.Errorf("MAIL without REQUIRETLS or not over TLS: %+v", m.MailOpts)
		}
	})
	t.Run("verified, not offered", func(t *testing.T) {
		e, mx := stsEnv(t, ca, ca.issue(t, "mx1.example.test"), enforceMX1, fakeMXConfig{requireTLS: false})
		en := envelope("bob@example.test")
		en.RequireTLS = true
		r := send(t, e, en)[0]
		if !r.Permanent || r.Enhanced != "5.7.30" {
			t.Errorf("result %+v, want permanent 5.7.30", r)
		}
		if mails, _, _ := mx.counts(); mails != 0 {
			t.Error("MAIL sent to a server without REQUIRETLS")
		}
	})
	t.Run("unverified certificate", func(t *testing.T) {
		policy := strings.Replace(enforceMX1, "enforce", "testing", 1)
		e, mx := stsEnv(t, ca, selfSigned(t, "mx1.example.test"), policy, fakeMXConfig{requireTLS: true})
		en := envelope("bob@example.test")
		en.RequireTLS = true
		r := send(t, e, en)[0]
		if !r.Permanent || r.Enhanced != "5.7.10" {
			t.Errorf("result %+v, want permanent 5.7.10", r)
		}
		if mails, _, _ := mx.counts(); mails != 0 {
			t.Error("MAIL sent over an unverified connection")
		}
	})
	t.Run("DANE verified", func(t *testing.T) {
		cert := selfSigned(t, "mx1.example.test")
		e, mx := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(cert)}}, true)
		en := envelope("bob@example.test")
		en.RequireTLS = true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
		if m := mx.messages()[0]; !m.MailOpts.RequireTLS {
			t.Error("MAIL without REQUIRETLS")
		}
	})
	t.Run("reused unverified session is not used", func(t *testing.T) {
		cert := selfSigned(t, "mx1.example.test")
		mx := newFakeMX(t, fakeMXConfig{cert: &cert, requireTLS: true})
		e := newEnv(t, func(o *Options) { o.IdleTime = 60e9 })
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
			t.Fatalf("plain message: %+v", r)
		}
		en := envelope("bob@example.test")
		en.RequireTLS = true
		if r := send(t, e, en)[0]; !r.Permanent || r.Enhanced != "5.7.10" {
			t.Errorf("REQUIRETLS message: %+v, want permanent 5.7.10", r)
		}
		if n := len(mx.messages()); n != 1 {
			t.Errorf("server got %d messages, want only the first", n)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestTLSRequiredNo: a message tagged "TLS-Required: No" (RFC 8689 4.2.2)
// goes to a host that fails the domain's MTA-STS or DANE policy, still over
// STARTTLS, and its session is not kept for messages that need the policy.
func TestTLSRequiredNo(t *testing.T) {
	t.Run("MTA-STS", func(t *testing.T) {
		ca := newCA(t)
		e, mx := stsEnv(t, ca, selfSigned(t, "mx1.example.test"), enforceMX1, fakeMXConfig{})
		en := envelope("bob@example.test")
		en.TLSOptional = true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("result %+v, want delivered despite the enforce policy", r)
		}
		if m := mx.messages(); len(m) != 1 || m[0].TLS == nil {
			t.Fatal("not delivered over STARTTLS")
		}
		// The same domain without the tag: the policy applies again.
		if r := send(t, e, envelope("bob@example.test"))[0]; r.Delivered() || r.Enhanced != "4.7.5" {
			t.Errorf("untagged message: %+v, want temporary 4.7.5", r)
		}
	})
	t.Run("DANE", func(t *testing.T) {
		cert := selfSigned(t, "mx1.example.test")
		other := selfSigned(t, "mx1.example.test")
		e, mx := daneEnv(t, cert, []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(other)}}, true)
		en := envelope("bob@example.test")
		en.TLSOptional = true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("result %+v, want delivered despite the TLSA mismatch", r)
		}
		if len(mx.messages()) != 1 {
			t.Fatal("no message")
		}
	})
	t.Run("not pooled", func(t *testing.T) {
		ca := newCA(t)
		e, mx := stsEnv(t, ca, selfSigned(t, "mx1.example.test"), enforceMX1, fakeMXConfig{})
		e.tr.idleTime = 60e9
		en := envelope("bob@example.test")
		en.TLSOptional = true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("result %+v", r)
		}
		if r := send(t, e, envelope("bob@example.test"))[0]; r.Delivered() {
			t.Errorf("an untagged message went over the tagged message's session: %+v", r)
		}
		if n := len(mx.messages()); n != 1 {
			t.Errorf("server got %d messages, want 1", n)
		}
	})
}

// TestREQUIRETLSBounce: a DSN about a REQUIRETLS message (null sender)
// carries REQUIRETLS where the peer offers it, and is not refused for want
// of it (RFC 8689 5); verified TLS is still needed.
func TestREQUIRETLSBounce(t *testing.T) {
	ca := newCA(t)
	for _, offered := range []bool{true, false} {
		e, mx := stsEnv(t, ca, ca.issue(t, "mx1.example.test"), enforceMX1, fakeMXConfig{requireTLS: offered})
		en := envelope("bob@example.test")
		en.MailFrom, en.RequireTLS = "", true
		if r := send(t, e, en)[0]; !r.Delivered() {
			t.Fatalf("REQUIRETLS offered %v: %+v", offered, r)
		}
		if m := mx.messages()[0]; m.MailOpts.RequireTLS != offered || m.TLS == nil {
			t.Errorf("REQUIRETLS offered %v: sent with REQUIRETLS %v, TLS %v", offered, m.MailOpts.RequireTLS, m.TLS != nil)
		}
	}
}
