package mx

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsZone is a tiny recursive resolver stand-in: answers by name and type,
// with AD set for names under secure.
type dnsZone struct {
	mu      sync.Mutex
	rrs     map[string][]dns.RR // by "name/type"
	secure  map[string]bool     // by name
	rcode   map[string]int      // by name
	asked   []string
	noDO    []string // queries that came without the DO bit
	overTCP []string
}

func (z *dnsZone) add(secure bool, records ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		h := rr.Header()
		key := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
		z.rrs[key] = append(z.rrs[key], rr)
		z.secure[strings.ToLower(h.Name)] = secure
	}
}

func (z *dnsZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	tcp := w.LocalAddr().Network() == "tcp"
	z.mu.Lock()
	z.asked = append(z.asked, name+"/"+dns.TypeToString[q.Qtype])
	if opt := r.IsEdns0(); opt == nil || !opt.Do() {
		z.noDO = append(z.noDO, name)
	}
	if tcp {
		z.overTCP = append(z.overTCP, name)
	}
	secure := z.secure[name]
	if rc, ok := z.rcode[name]; ok {
		m.Rcode = rc
	} else {
		// Follow a CNAME like a recursive resolver, unless the name
		// starts with "lazy" (a resolver that stops at the alias).
		cur := name
		for range 4 {
			if c := z.rrs[cur+"/CNAME"]; len(c) > 0 {
				m.Answer = append(m.Answer, c...)
				cur = strings.ToLower(c[0].(*dns.CNAME).Target)
				secure = secure && z.secure[cur]
				if strings.HasPrefix(name, "lazy") {
					break
				}
				continue
			}
			m.Answer = append(m.Answer, z.rrs[cur+"/"+dns.TypeToString[q.Qtype]]...)
			break
		}
		if len(m.Answer) == 0 && !z.known(cur) {
			m.Rcode = dns.RcodeNameError
		}
		if !tcp && name == "big.test." {
			m.Answer, m.Truncated = nil, true
		}
	}
	m.AuthenticatedData = secure && r.IsEdns0() != nil && r.IsEdns0().Do()
	z.mu.Unlock()
	w.WriteMsg(m)
}

func (z *dnsZone) known(name string) bool {
	for k := range z.rrs {
		if strings.HasPrefix(k, name+"/") {
			return true
		}
	}
	return false
}

// startDNS serves z over UDP and TCP on the same 127.0.0.1 port.
func startDNS(t *testing.T, z *dnsZone) string {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}

func newZone() *dnsZone {
	return &dnsZone{rrs: map[string][]dns.RR{}, secure: map[string]bool{}, rcode: map[string]int{}}
}

func TestDNSResolver(t *testing.T) {
	z := newZone()
	z.add(true,
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"mx1.example.test. 300 IN AAAA 2001:db8::1",
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"nullmx.test. 300 IN MX 0 .",
		"alias.test. 300 IN CNAME target.test.",
		"lazy.test. 300 IN CNAME target.test.",
		"target.test. 300 IN A 192.0.2.9",
	)
	z.add(false,
		"insecure.test. 300 IN MX 10 mx.insecure.test.",
		`_mta-sts.insecure.test. 300 IN TXT "v=STSv1; " "id=abc123;"`,
		"nomx.test. 300 IN A 192.0.2.5",
		"big.test. 300 IN A 192.0.2.77",
	)
	z.rcode["servfail.test."] = dns.RcodeServerFailure
	r := &DNSResolver{Server: startDNS(t, z), Timeout: 2 * time.Second}
	ctx := context.Background()

	mx, secure, err := r.LookupMX(ctx, "example.test")
	if err != nil || !secure || len(mx) != 2 {
		t.Fatalf("MX example.test: %v secure=%v err=%v", mx, secure, err)
	}
	hosts := []string{mx[0].Host, mx[1].Host}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"mx1.example.test.", "mx2.example.test."}) {
		t.Errorf("MX hosts %q", hosts)
	}
	if mx, secure, err := r.LookupMX(ctx, "insecure.test"); err != nil || secure || len(mx) != 1 {
		t.Errorf("MX insecure.test: %v secure=%v err=%v, want one insecure record", mx, secure, err)
	}
	if mx, _, err := r.LookupMX(ctx, "nullmx.test"); err != nil || len(mx) != 1 || mx[0].Host != "." || mx[0].Pref != 0 {
		t.Errorf("null MX: %v %v", mx, err)
	}
	if mx, _, err := r.LookupMX(ctx, "nomx.test"); err != nil || len(mx) != 0 {
		t.Errorf("NODATA MX: %v %v, want no records and no error", mx, err)
	}
	var de *net.DNSError
	if _, _, err := r.LookupMX(ctx, "nx.test"); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("NXDOMAIN: %v, want IsNotFound", err)
	}
	if _, _, err := r.LookupMX(ctx, "servfail.test"); !errors.As(err, &de) || de.IsNotFound || !de.IsTemporary {
		t.Errorf("SERVFAIL: %v, want a temporary error", err)
	}

	addrs, secure, err := r.LookupIPAddr(ctx, "mx1.example.test")
	if err != nil || !secure || len(addrs) != 2 || !addrs[0].IP.Equal(net.ParseIP("192.0.2.1")) || !addrs[1].IP.Equal(net.ParseIP("2001:db8::1")) {
		t.Errorf("addresses of mx1: %v secure=%v err=%v", addrs, secure, err)
	}
	for _, name := range []string{"alias.test", "lazy.test"} {
		addrs, _, err := r.LookupIPAddr(ctx, name)
		if err != nil || len(addrs) != 1 || !addrs[0].IP.Equal(net.ParseIP("192.0.2.9")) {
			t.Errorf("addresses of %s through its CNAME: %v %v", name, addrs, err)
		}
	}
	if _, _, err := r.LookupIPAddr(ctx, "nx.test"); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("addresses of nx.test: %v, want IsNotFound", err)
	}
	if addrs, _, err := r.LookupIPAddr(ctx, "big.test"); err != nil || len(addrs) != 1 {
		t.Errorf("truncated answer: %v %v, want the TCP retry's record", addrs, err)
	}

	recs, secure, err := r.LookupTLSA(ctx, 25, "mx1.example.test")
	if err != nil || !secure || len(recs) != 1 {
		t.Fatalf("TLSA: %v secure=%v err=%v", recs, secure, err)
	}
	if got := recs[0]; got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 ||
		hex.EncodeToString(got.Data) != "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("TLSA record %+v", got)
	}
	if recs, _, err := r.LookupTLSA(ctx, 25, "mx2.example.test"); err != nil || len(recs) != 0 {
		t.Errorf("TLSA of a name without records: %v %v, want none and no error", recs, err)
	}

	txt, err := r.LookupTXT(ctx, "_mta-sts.insecure.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=STSv1; id=abc123;" {
		t.Errorf("TXT %q %v, want the strings joined", txt, err)
	}

	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.noDO) != 0 {
		t.Errorf("queries without the DO bit: %q", z.noDO)
	}
	if !slices.Contains(z.asked, "_25._tcp.mx1.example.test./TLSA") || !slices.Contains(z.asked, "target.test./A") {
		t.Errorf("queries %q", z.asked)
	}
	if len(z.overTCP) == 0 || slices.ContainsFunc(z.overTCP, func(n string) bool { return n != "big.test." }) {
		t.Errorf("TCP queries %q, want only the truncated ones (big.test A and AAAA)", z.overTCP)
	}
}

func TestDNSResolverDANEDelivery(t *testing.T) {
	cert := selfSigned(t, "mx1.example.test")
	mx := newFakeMX(t, fakeMXConfig{cert: &cert})
	z := newZone()
	z.add(true,
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 "+hex.EncodeToString(spkiSHA256(cert)),
	)
	res := &DNSResolver{Server: startDNS(t, z), Timeout: 2 * time.Second}
	e := newEnv(t, func(o *Options) { o.Resolver = res })
	e.dial.route("192.0.2.1:25", mx.addr)
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(e.log.String(), "cert=dane") {
		t.Errorf("not DANE-verified:\n%s", e.log.String())
	}
	// The same records without AD: DANE off, opportunistic TLS.
	z.mu.Lock()
	for k := range z.secure {
		z.secure[k] = false
	}
	z.mu.Unlock()
	e2 := newEnv(t, func(o *Options) { o.Resolver = res })
	e2.dial.route("192.0.2.1:25", mx.addr)
	if r := send(t, e2, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(e2.log.String(), "cert=unverified") {
		t.Errorf("DANE applied without the AD bit:\n%s", e2.log.String())
	}
}
