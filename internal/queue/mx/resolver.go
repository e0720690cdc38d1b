package mx

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Resolver is the DNS the transport needs. Errors follow net.Resolver's
// convention: a *net.DNSError with IsNotFound for a name or record that does
// not exist, anything else is a lookup failure that may pass.
//
// secure reports that the answer was DNSSEC-validated (the AD bit from a
// validating resolver). DANE (RFC 7672) relies on it: a Resolver that cannot
// tell, like NetResolver, always answers false and DANE never applies.
type Resolver interface {
	// LookupMX returns the MX records of domain, hosts in presentation
	// form ("mx.example.com." or "." for a null MX). No records: an empty
	// list or a not-found error, both mean "use the domain itself".
	LookupMX(ctx context.Context, domain string) (mx []*net.MX, secure bool, err error)
	// LookupIPAddr returns the A and AAAA addresses of host.
	LookupIPAddr(ctx context.Context, host string) (addrs []net.IPAddr, secure bool, err error)
	// LookupTXT returns the TXT records of name, each record's strings
	// joined.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupTLSA returns the TLSA records at _port._tcp.host. No records
	// (NXDOMAIN or NODATA) is not an error (RFC 7672 2.1.1).
	LookupTLSA(ctx context.Context, port int, host string) (records []TLSA, secure bool, err error)
}

// TLSA is one TLSA record (RFC 6698 2.1).
type TLSA struct {
	Usage        uint8 // 2 DANE-TA, 3 DANE-EE; 0 and 1 are unusable for SMTP (RFC 7672 3.1.3)
	Selector     uint8 // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8 // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte
}

// NetResolver is a Resolver over a *net.Resolver (nil: net.DefaultResolver).
// It cannot see the AD bit, so it reports nothing as secure and finds no
// TLSA records: DANE is off with it.
type NetResolver struct {
	Resolver *net.Resolver
}

func (r NetResolver) res() *net.Resolver {
	if r.Resolver == nil {
		return net.DefaultResolver
	}
	return r.Resolver
}

// LookupMX implements Resolver.
func (r NetResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, bool, error) {
	mx, err := r.res().LookupMX(ctx, domain)
	return mx, false, err
}

// LookupIPAddr implements Resolver.
func (r NetResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, bool, error) {
	a, err := r.res().LookupIPAddr(ctx, host)
	return a, false, err
}

// LookupTXT implements Resolver.
func (r NetResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return r.res().LookupTXT(ctx, name)
}

// LookupTLSA implements Resolver: no DNSSEC status, so no DANE.
func (r NetResolver) LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, bool, error) {
	return nil, false, nil
}

// DNSResolver is a Resolver that asks a recursive resolver directly, with
// the DO bit set, and reports the AD bit of its answers as secure.
//
// RFC 7672 2.1.1 (quoting RFC 4035 4.9.3): a stub may rely on the AD bit
// only from a trusted validating resolver over a secure channel. Point
// Server at a validating resolver on the same host (127.0.0.1:53, e.g.
// unbound); with a remote resolver, an attacker on the path can set AD.
type DNSResolver struct {
	// Server is "host:port" of the resolver; empty means the nameservers
	// of /etc/resolv.conf, tried in order.
	Server string
	// Timeout bounds one query; zero means 5 seconds.
	Timeout time.Duration

	once    sync.Once
	servers []string
	confErr error
}

// maxCNAMEHops bounds the re-queries for a CNAME chain whose target the
// resolver did not answer (RFC 7672 2.1.3: "up to some configured ...
// recursion limit").
const maxCNAMEHops = 8

func (r *DNSResolver) serverList() ([]string, error) {
	r.once.Do(func() {
		if r.Server != "" {
			r.servers = []string{r.Server}
			return
		}
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			r.confErr = fmt.Errorf("mx: reading /etc/resolv.conf: %w", err)
			return
		}
		for _, s := range conf.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
		}
		if len(r.servers) == 0 {
			r.confErr = errors.New("mx: no nameserver in /etc/resolv.conf")
		}
	})
	return r.servers, r.confErr
}

// exchange sends one query to the first server that answers.
func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	servers, err := r.serverList()
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	// RFC 6840 5.7: AD in a query asks for AD in the answer; the DO bit
	// (RFC 3225, in the EDNS0 OPT record) asks for DNSSEC processing.
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var lastErr error
	for _, s := range servers {
		c := &dns.Client{Net: "udp", Timeout: timeout}
		in, _, err := c.ExchangeContext(ctx, m, s)
		if err == nil && in.Truncated {
			// RFC 1035 4.2.1: a truncated UDP answer is retried over TCP.
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, m, s)
		}
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if in.Id != m.Id {
			lastErr = errors.New("answer id does not match the query")
			continue
		}
		return in, nil
	}
	var ne net.Error
	return nil, &net.DNSError{Err: lastErr.Error(), Name: name, Server: strings.Join(servers, ","),
		IsTimeout: errors.As(lastErr, &ne) && ne.Timeout(), IsTemporary: true}
}

// lookup returns the records of qtype at name, following a CNAME chain, and
// whether every answer on the way carried the AD bit. NXDOMAIN is a
// not-found error; NODATA is no records and no error.
func (r *DNSResolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, bool, error) {
	secure := true
	qname := dns.Fqdn(name)
	for hop := 0; hop < maxCNAMEHops; hop++ {
		in, err := r.exchange(ctx, qname, qtype)
		if err != nil {
			return nil, false, err
		}
		// RFC 7672 2.1.3: one insecure step makes the whole chain insecure.
		secure = secure && in.AuthenticatedData
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, secure, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		default:
			return nil, false, &net.DNSError{Err: "server answered " + dns.RcodeToString[in.Rcode], Name: name, IsTemporary: true}
		}
		target := qname
		for range maxCNAMEHops {
			moved := false
			for _, rr := range in.Answer {
				if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
					target, moved = c.Target, true
					break
				}
			}
			if !moved {
				break
			}
		}
		var rrs []dns.RR
		for _, rr := range in.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, target) {
				rrs = append(rrs, rr)
			}
		}
		if len(rrs) > 0 || strings.EqualFold(target, qname) {
			return rrs, secure, nil
		}
		// The answer stopped at a CNAME: ask for its target ourselves.
		qname = target
	}
	return nil, false, &net.DNSError{Err: "CNAME chain too long", Name: name, IsTemporary: true}
}

// LookupMX implements Resolver.
func (r *DNSResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, bool, error) {
	rrs, secure, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, secure, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		m := rr.(*dns.MX)
		out = append(out, &net.MX{Host: m.Mx, Pref: m.Preference})
	}
	return out, secure, nil
}

// LookupIPAddr implements Resolver: A, then AAAA.
func (r *DNSResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, bool, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IPAddr{{IP: ip}}, false, nil
	}
	var addrs []net.IPAddr
	secure := true
	var firstErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, sec, err := r.lookup(ctx, host, qt)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				// NXDOMAIN holds for AAAA as well.
				return nil, sec, err
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		secure = secure && sec
		for _, rr := range rrs {
			switch a := rr.(type) {
			case *dns.A:
				addrs = append(addrs, net.IPAddr{IP: a.A})
			case *dns.AAAA:
				addrs = append(addrs, net.IPAddr{IP: a.AAAA})
			}
		}
	}
	if len(addrs) > 0 {
		// A failed half leaves the other half usable, but not as
		// proof of anything.
		return addrs, secure && firstErr == nil, nil
	}
	if firstErr != nil {
		return nil, false, firstErr
	}
	return nil, secure, &net.DNSError{Err: "no address records", Name: host, IsNotFound: true}
}

// LookupTXT implements Resolver.
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, _, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		// RFC 8461 3.1: strings of one record are joined without spaces.
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupTLSA implements Resolver.
func (r *DNSResolver) LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, bool, error) {
	name := "_" + strconv.Itoa(port) + "._tcp." + dns.Fqdn(host)
	rrs, secure, err := r.lookup(ctx, name, dns.TypeTLSA)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			// RFC 7672 2.1.1: denial of existence is an answer.
			return nil, secure, nil
		}
		return nil, false, err
	}
	var out []TLSA
	for _, rr := range rrs {
		t := rr.(*dns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			// RFC 6698 4.1: a malformed record is unusable, not an error.
			continue
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	if len(out) == 0 && len(rrs) > 0 {
		// Present but all malformed: still a commitment to TLS
		// (RFC 7672 2.2.3), so report an unusable record.
		out = append(out, TLSA{Usage: 255})
	}
	return out, secure, nil
}
