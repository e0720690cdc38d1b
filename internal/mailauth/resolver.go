package mailauth

import (
	"context"
	"errors"
	"net"
	"strings"
)

// Resolver is the DNS access of the package; *net.Resolver satisfies it.
//
// Errors should be (or wrap) *net.DNSError as net.Resolver returns them:
// IsNotFound for NXDOMAIN and for a name without records of the type,
// IsTemporary or IsTimeout for failures worth retrying (SERVFAIL, timeout).
// Any other error is taken as temporary, so a broken resolver gives
// temperror results and never a rejection.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// dnsAdapter gives the libraries the resolver in the shape each wants.
// blitiri.com.ar/go/spf and go-msgauth classify errors with a plain type
// assertion to *net.DNSError / net.Error, never errors.As, so every error
// leaves here as a bare *net.DNSError.
type dnsAdapter struct {
	r   Resolver
	ctx context.Context
}

// absolute makes a name fully qualified so that a resolver reading
// resolv.conf does not also try it under the local search domains.
func absolute(name string) string {
	if name == "" || strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func (a dnsAdapter) classify(name string, err error) error {
	if err == nil {
		return nil
	}
	if a.ctx.Err() != nil {
		// Our own deadline ran out: the answer is unknown, not negative.
		return &net.DNSError{Err: a.ctx.Err().Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.IsNotFound || de.IsTemporary || de.IsTimeout {
			return de
		}
		// An unclassified DNS error (a malformed answer, say): not a
		// definite "no such record", so temporary.
		c := *de
		c.IsTemporary = true
		return &c
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// txt is the func(domain) form go-msgauth's dkim and dmarc packages take.
func (a dnsAdapter) txt(name string) ([]string, error) {
	txts, err := a.r.LookupTXT(a.ctx, absolute(name))
	return txts, a.classify(name, err)
}

// The methods below implement spf.DNSResolver; the context argument is the
// one the spf package passes (ours, through spf.WithContext).

func (a dnsAdapter) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := a.r.LookupTXT(ctx, absolute(name))
	return txts, a.classify(name, err)
}

func (a dnsAdapter) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := a.r.LookupMX(ctx, absolute(name))
	return mxs, a.classify(name, err)
}

func (a dnsAdapter) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := a.r.LookupIPAddr(ctx, absolute(host))
	return ips, a.classify(host, err)
}

func (a dnsAdapter) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	names, err := a.r.LookupAddr(ctx, addr)
	return names, a.classify(addr, err)
}

// isNotFound: the name has no record of the type (NXDOMAIN or no data).
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
