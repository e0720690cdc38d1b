package mailauth

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// zoneServer is a DNS server on 127.0.0.1 answering TXT, MX and A queries
// from maps (names lowercased, without the final dot); names in servfail get
// SERVFAIL, others NXDOMAIN.
type zoneServer struct {
	txt      map[string][]string
	mx       map[string]string
	a        map[string]string
	servfail map[string]bool
	queries  atomic.Int64
}

func (z *zoneServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := key(q.Name)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60, Rrtype: q.Qtype}
	exists := false
	switch {
	case z.servfail[name]:
		m.SetRcode(req, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	case q.Qtype == dns.TypeTXT:
		for _, v := range z.txt[name] {
			// One record, in 255-octet strings: the resolver must join them.
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: escapeTXT(txtStrings(v))})
		}
	case q.Qtype == dns.TypeMX && z.mx[name] != "":
		m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: 10, Mx: dns.Fqdn(z.mx[name])})
	case q.Qtype == dns.TypeA && z.a[name] != "":
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(z.a[name])})
	}
	_, exists = z.txt[name]
	exists = exists || z.mx[name] != "" || z.a[name] != ""
	if len(m.Answer) == 0 && !exists {
		m.SetRcode(req, dns.RcodeNameError)
	}
	w.WriteMsg(m)
}

// escapeTXT puts strings in the escaped form miekg keeps in TXT.Txt.
func escapeTXT(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
	}
	return out
}

func startZoneServer(t *testing.T, z *zoneServer) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("dns server: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("dns server did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String()
}

// TestVerifierOverRealDNS runs Check with a net.Resolver talking UDP to a
// DNS server on 127.0.0.1: the Resolver adapter works with the real thing,
// multi-string TXT records included, and a SERVFAIL is a temperror.
func TestVerifierOverRealDNS(t *testing.T) {
	keys := testKeys(t)
	z := &zoneServer{
		txt: map[string][]string{
			"sender.test":        {"v=spf1 mx -all"},
			"_dmarc.sender.test": {"v=DMARC1; p=reject"},
			"_dmarc.flaky.test":  {"v=DMARC1; p=reject"},
		},
		mx:       map[string]string{"sender.test": "mx.sender.test"},
		a:        map[string]string{"mx.sender.test": "192.0.2.25"},
		servfail: map[string]bool{"flaky.test": true, "_dmarc.flaky.test": true},
	}
	for _, r := range Records("sender.test", "mx.sender.test", keys) {
		if strings.Contains(r.Name, "._domainkey.") {
			z.txt[key(r.Name)] = []string{r.Value}
		}
	}
	addr := startZoneServer(t, z)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	v := &Verifier{Hostname: "mx.dest.example", Resolver: res, Timeout: 20 * time.Second}

	msg := sign(t, keys, "sender.test", message("Alice <alice@sender.test>"))
	vd := check(t, v, Inbound{IP: ip("192.0.2.25"), HELO: "mx.sender.test", MailFrom: "alice@sender.test"}, msg)
	if vd.SPF != "pass" || vd.DKIM != "pass" || vd.DMARC != "pass" || vd.Action != Accept {
		t.Fatalf("verdict = %+v", vd)
	}
	if n := strings.Count(vd.Header, "dkim=pass"); n != 2 {
		t.Fatalf("%d dkim=pass, want 2 (the RSA record comes in two strings)\n%s", n, vd.Header)
	}

	// Tampered, from elsewhere: a real fail, rejected.
	vd = check(t, v, Inbound{IP: ip("203.0.113.9"), HELO: "x.test", MailFrom: "alice@sender.test"},
		strings.Replace(msg, "the body", "the b0dy", 1))
	if vd.SPF != "fail" || vd.DKIM != "fail" || vd.DMARC != "fail" || vd.Action != Reject {
		t.Fatalf("tampered: verdict = %+v", vd)
	}

	// SERVFAIL everywhere for flaky.test: temperror, never a rejection.
	vd = check(t, v, Inbound{IP: ip("203.0.113.9"), HELO: "x.test", MailFrom: "bob@flaky.test"}, message("bob@flaky.test"))
	if vd.SPF != "temperror" || vd.DMARC != "temperror" || vd.Action != Accept {
		t.Fatalf("servfail: verdict = %+v", vd)
	}

	// NXDOMAIN: none.
	vd = check(t, v, Inbound{IP: ip("203.0.113.9"), HELO: "x.test", MailFrom: "c@nowhere.test"}, message("c@nowhere.test"))
	if vd.SPF != "none" || vd.DMARC != "none" || vd.Action != Accept {
		t.Fatalf("nxdomain: verdict = %+v", vd)
	}
	if z.queries.Load() == 0 {
		t.Fatal("the DNS server saw no query")
	}
}
