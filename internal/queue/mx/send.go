package mx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"posta/internal/queue"
)

// failure is why a host, or the whole Send, did not take the message.
type failure struct {
	code      int // remote reply, 0 if none
	enhanced  string
	text      string
	permanent bool
	remote    string
	err       error
	// requireTLS: a REQUIRETLS requirement (RFC 8689 4.2.1) was not met,
	// as opposed to the host being unreachable.
	requireTLS bool
	// retryPlain: the TLS handshake failed and nothing asks for TLS, so
	// the same address may be tried again in clear.
	retryPlain bool
}

func (f *failure) result(rcpt string) queue.Result {
	return queue.Result{Recipient: rcpt, Code: f.code, Enhanced: f.enhanced, Text: f.text,
		Permanent: f.permanent, RemoteMTA: f.remote, Err: f.err}
}

// reply is a remote SMTP reply.
type reply struct {
	code     int
	enhanced string
	text     string
}

// replyOf extracts the reply from an error; false means the error is not
// a reply (network, local).
func replyOf(err error) (reply, bool) {
	var re *replyError
	if !errors.As(err, &re) {
		return reply{}, false
	}
	return re.r, true
}

// parseOK splits "2.0.0 OK queued" into its enhanced code and text
// (RFC 2034 4).
func parseOK(text string) (enhanced, rest string) {
	code, rest, ok := strings.Cut(text, " ")
	if !ok || !strings.HasPrefix(code, "2.") || strings.Count(code, ".") != 2 {
		return "", text
	}
	for _, p := range strings.Split(code, ".") {
		if _, err := strconv.Atoi(p); err != nil {
			return "", text
		}
	}
	return code, rest
}

// delivery is one Send.
type delivery struct {
	t        *Transport
	env      queue.Envelope
	body     func() (io.Reader, error)
	domain   string
	needUTF8 bool
	results  []queue.Result
	final    []bool // results[i] is decided
}

func (d *delivery) set(i int, r queue.Result) {
	d.results[i], d.final[i] = r, true
}

func (d *delivery) pending() []int {
	var out []int
	for i, f := range d.final {
		if !f {
			out = append(out, i)
		}
	}
	return out
}

// failPending gives every undecided recipient f.
func (d *delivery) failPending(f *failure) {
	for _, i := range d.pending() {
		d.set(i, f.result(d.env.Recipients[i].Address))
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Send implements queue.Transport: one transaction with one MX host of
// env.Domain, results in the order of env.Recipients.
func (t *Transport) Send(ctx context.Context, env queue.Envelope, body func() (io.Reader, error)) []queue.Result {
	d := &delivery{t: t, env: env, body: body, domain: strings.ToLower(strings.TrimSuffix(env.Domain, ".")),
		results: make([]queue.Result, len(env.Recipients)), final: make([]bool, len(env.Recipients))}
	d.needUTF8 = env.SMTPUTF8 || !isASCII(env.MailFrom)
	for i, r := range env.Recipients {
		d.results[i].Recipient = r.Address
		if r.Address == "" || strings.ContainsAny(r.Address, "\r\n<>") {
			d.set(i, queue.Result{Recipient: r.Address, Enhanced: "5.1.3", Permanent: true,
				Text: "bad recipient address syntax", Err: errors.New("mx: bad recipient address")})
		}
		d.needUTF8 = d.needUTF8 || !isASCII(r.Address)
	}
	if len(d.pending()) == 0 {
		return d.results
	}
	if f := d.precheck(); f != nil {
		d.failPending(f)
		d.logAttempt("", nil, f)
		return d.results
	}
	s, err := t.acquire(ctx, d.domain)
	if err != nil {
		d.failPending(&failure{enhanced: "4.4.5", text: "no connection slot: " + err.Error(), err: fmt.Errorf("mx: %w", err)})
		return d.results
	}
	// The slot is ours now: finish hands it to the pool or gives it back.
	if s != nil && d.reuse(ctx, s) {
		return d.results
	}
	d.deliver(ctx)
	return d.results
}

// precheck fails what no host could take.
func (d *delivery) precheck() *failure {
	if strings.ContainsAny(d.env.MailFrom, "\r\n<>") {
		return &failure{enhanced: "5.1.7", permanent: true, text: "bad sender address syntax",
			err: errors.New("mx: bad sender address")}
	}
	return nil
}

// finish ends the use of s (nil: none) and of the domain slot.
func (d *delivery) finish(s *session, healthy bool) {
	if s != nil {
		s.unwatch()
		// A session opened without the domain's TLS policy (TLS-Required:
		// No) is not kept for messages that need it.
		if healthy && !d.env.TLSOptional && !s.cc.isDead() && d.t.put(d.domain, s) {
			return
		}
		if healthy {
			s.quit(quitTimeout)
		} else {
			s.close()
		}
	}
	d.t.release(d.domain)
}

// reuse tries the transaction on an idle session; false leaves the slot to
// deliver, with s closed.
func (d *delivery) reuse(ctx context.Context, s *session) bool {
	s.watch(ctx)
	s.reused, s.codes = true, s.codes[:0]
	// RFC 5321 4.1.1.5: RSET before the next transaction; it also tells
	// whether the peer is still there.
	fin, f, healthy, stale := d.transact(ctx, s, true)
	if stale {
		s.close()
		return false
	}
	d.logAttempt(s.host, s, f)
	if !fin {
		if healthy {
			s.quit(quitTimeout)
		} else {
			s.close()
		}
		return false
	}
	d.finish(s, healthy)
	return true
}

// route is the list of hosts to try for a domain.
type route struct {
	hosts    []string
	secure   bool // the MX RRset (or its denial) was DNSSEC-validated (RFC 7672 2.2.1)
	implicit bool // no MX records: the domain is its own host (RFC 5321 5.1)
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// addressLiteral returns the IP of a domain literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]", RFC 5321 4.1.3), or nil.
func addressLiteral(domain string) net.IP {
	inner, ok := strings.CutPrefix(domain, "[")
	if inner, ok = strings.CutSuffix(inner, "]"); !ok {
		return nil
	}
	if v6, ok := strings.CutPrefix(strings.ToLower(inner), "ipv6:"); ok {
		if ip := net.ParseIP(v6); ip != nil && ip.To4() == nil {
			return ip
		}
		return nil
	}
	if ip := net.ParseIP(inner); ip != nil && ip.To4() != nil {
		return ip
	}
	return nil
}

// resolve finds the hosts of domain (RFC 5321 5.1).
func (d *delivery) resolve(ctx context.Context) (route, *failure) {
	if strings.HasPrefix(d.domain, "[") {
		// RFC 5321 5.1: an address literal is the host; no MX, and no
		// DANE (RFC 7672 2.2).
		ip := addressLiteral(d.domain)
		if ip == nil {
			return route{}, &failure{enhanced: "5.1.2", permanent: true, text: "bad address literal " + d.domain,
				err: fmt.Errorf("mx: bad address literal %q", d.domain)}
		}
		return route{hosts: []string{ip.String()}, implicit: true}, nil
	}
	mxs, secure, err := d.t.resolver.LookupMX(ctx, d.domain)
	if err != nil && !isNotFound(err) && len(mxs) == 0 {
		// RFC 7672 2.1.2: a failed MX lookup delays delivery.
		return route{}, &failure{enhanced: "4.4.3", text: fmt.Sprintf("MX lookup for %s failed: %v", d.domain, err),
			err: fmt.Errorf("mx: lookup MX %s: %w", d.domain, err)}
	}
	if len(mxs) == 0 {
		// RFC 5321 5.1: no MX, the domain itself is the host; its
		// address lookup decides whether the domain takes mail.
		// DANE then rests on a secure denial of MX records and secure
		// address records (RFC 7672 2.2.2).
		return route{hosts: []string{d.domain}, implicit: true, secure: secure}, nil
	}
	if len(mxs) == 1 && mxs[0].Host == "." {
		// RFC 7505 3, 4.1: a null MX: the domain takes no mail.
		return route{}, &failure{enhanced: "5.1.10", permanent: true,
			text: fmt.Sprintf("%s does not accept mail (null MX)", d.domain),
			err:  fmt.Errorf("mx: %s has a null MX", d.domain)}
	}
	// RFC 5321 5.1: by preference, randomised among equals.
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	var rt route
	rt.secure = secure
	for _, m := range mxs {
		h := strings.ToLower(strings.TrimSuffix(m.Host, "."))
		if h == "" {
			continue // RFC 7505 3: "." has no business among other MX
		}
		if strings.EqualFold(h, d.t.hostname) {
			// RFC 5321 5.1: we are in the list: drop ourselves and
			// every host less preferred.
			break
		}
		if !slices.Contains(rt.hosts, h) {
			rt.hosts = append(rt.hosts, h)
		}
		if len(rt.hosts) == maxHosts {
			break
		}
	}
	if len(rt.hosts) == 0 {
		return route{}, &failure{enhanced: "5.4.6", permanent: true,
			text: fmt.Sprintf("the MX list of %s points back to this host", d.domain),
			err:  fmt.Errorf("mx: %s: mail loops back to %s", d.domain, d.t.hostname)}
	}
	return rt, nil
}

// deliver looks the domain up and tries its hosts in order.
func (d *delivery) deliver(ctx context.Context) {
	rt, f := d.resolve(ctx)
	if f != nil {
		d.failPending(f)
		d.logAttempt("", nil, f)
		d.finish(nil, false)
		return
	}
	var sts *stsPolicy
	if !d.env.TLSOptional {
		// RFC 8689 4.2.2: "TLS-Required: No" ignores the domain's policy.
		sts = d.t.sts.policy(ctx, d.domain)
	}
	var last *failure
	onlyTLS, unsupported := true, false
	for _, host := range rt.hosts {
		done, f := d.tryHost(ctx, rt, sts, host)
		if done {
			return
		}
		if f == nil {
			continue
		}
		last = f
		if f.permanent {
			break
		}
		onlyTLS = onlyTLS && f.requireTLS
		unsupported = unsupported || f.enhanced == "5.7.30"
		if ctx.Err() != nil {
			break
		}
	}
	d.finish(nil, false)
	if last == nil {
		last = &failure{enhanced: "4.4.4", text: "no usable MX host for " + d.domain, err: errors.New("mx: no usable host")}
	}
	final := *last
	switch {
	case final.permanent:
	case d.env.RequireTLS && onlyTLS:
		// RFC 8689 4.2.1: every host failed the requirements: no
		// transmission, a non-delivery notification.
		final.permanent = true
		final.code = 0
		final.enhanced = "5.7.10"
		if unsupported {
			final.enhanced = "5.7.30"
		}
	default:
		// RFC 5321 4.5.4.1, RFC 8461 5: try again later.
		final.permanent = false
		if final.code >= 500 {
			final.code = 0
		}
		if rest, ok := strings.CutPrefix(final.enhanced, "5."); ok {
			final.enhanced = "4." + rest
		}
	}
	d.failPending(&final)
}

// tryHost delivers through one MX host; done means every recipient has its
// result (and the session went to finish).
func (d *delivery) tryHost(ctx context.Context, rt route, sts *stsPolicy, host string) (bool, *failure) {
	t := d.t
	var addrs []net.IPAddr
	var addrSecure bool
	var err error
	if ip := net.ParseIP(host); ip != nil {
		// An address literal, or an MX naming an address (not
		// conformant; RFC 7672 2.2 allows using it, without DANE).
		addrs = []net.IPAddr{{IP: ip}}
	} else {
		addrs, addrSecure, err = t.resolver.LookupIPAddr(ctx, host)
	}
	if err != nil || len(addrs) == 0 {
		f := &failure{enhanced: "4.4.3", remote: host, text: fmt.Sprintf("address lookup for %s failed: %v", host, err),
			err: fmt.Errorf("mx: lookup %s: %w", host, err)}
		if rt.implicit && (err == nil || isNotFound(err)) {
			// RFC 5321 5.1: no MX and no address: not a mail domain.
			f.enhanced, f.permanent = "5.1.2", true
			f.text = fmt.Sprintf("%s has no MX and no address records", host)
		}
		d.logAttempt(host, nil, f)
		return false, f
	}
	p := &hostPolicy{host: host, domain: d.domain, requireTLS: d.env.RequireTLS,
		vouched: rt.implicit || rt.secure || sts != nil && sts.matchMX(host)}
	// RFC 7672 2.2.1, 2.2.2: TLSA only for a host reached through secure
	// MX and address records; never for an address (2.2).
	if rt.secure && addrSecure && net.ParseIP(host) == nil && !d.env.TLSOptional {
		recs, secure, err := t.resolver.LookupTLSA(ctx, t.port, host)
		if err != nil {
			// RFC 7672 2.1.2: treat the host as unreachable.
			f := &failure{enhanced: "4.4.3", remote: host, text: fmt.Sprintf("TLSA lookup for %s failed: %v", host, err),
				err: fmt.Errorf("mx: lookup TLSA %s: %w", host, err)}
			d.logAttempt(host, nil, f)
			return false, f
		}
		if secure && len(recs) > 0 {
			p.daneTLS = true
			for _, r := range recs {
				if r.usable() {
					p.dane = append(p.dane, r)
				}
			}
		}
	}
	if sts != nil && !p.daneTLS {
		if !sts.matchMX(host) {
			if sts.Mode == stsEnforce {
				// RFC 8461 4.1, 8.4: an MX the policy does not name is
				// treated as unreachable.
				f := &failure{enhanced: "4.7.5", remote: host, requireTLS: p.requireTLS,
					text: fmt.Sprintf("MTA-STS: %s is not an MX host allowed by the policy of %s", host, d.domain),
					err:  fmt.Errorf("mx: mta-sts: %s not in the policy of %s", host, d.domain)}
				d.logAttempt(host, nil, f)
				return false, f
			}
			t.log.Warn("mta-sts testing: MX not in policy", "domain", d.domain, "mx", host)
		}
		p.sts = sts
	}
	if p.requireTLS && !p.vouched {
		// RFC 8689 4.2.1 step 2: an MX from an unsigned lookup must
		// be vouched for by MTA-STS.
		f := &failure{enhanced: "5.7.10", remote: host, requireTLS: true,
			text: fmt.Sprintf("REQUIRETLS: MX host %s is neither DNSSEC-validated nor allowed by an MTA-STS policy", host),
			err:  fmt.Errorf("mx: requiretls: %s not validated", host)}
		d.logAttempt(host, nil, f)
		return false, f
	}

	var last *failure
	for _, a := range addrs[:min(len(addrs), maxAddrsPerHost)] {
		addr := net.JoinHostPort(a.IP.String(), strconv.Itoa(t.port))
		s, f := d.connect(ctx, p, addr, false)
		if f != nil && f.retryPlain {
			d.logAttempt(host, s, f)
			s, f = d.connect(ctx, p, addr, true)
		}
		if f != nil {
			d.logAttempt(host, s, f)
			last = f
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fin, f, healthy, _ := d.transact(ctx, s, false)
		d.logAttempt(host, s, f)
		if fin {
			d.finish(s, healthy)
			return true, nil
		}
		if healthy {
			s.quit(quitTimeout)
		} else {
			s.close()
		}
		last = f
		if ctx.Err() != nil {
			break
		}
	}
	return false, last
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// blockWriter sets the data block deadline before each write
// (RFC 5321 4.5.3.2.5: 3 minutes per send).
type blockWriter struct {
	w       io.Writer
	conn    *ctxConn
	timeout time.Duration
}

func (b *blockWriter) Write(p []byte) (int, error) {
	b.conn.SetWriteDeadline(time.Now().Add(b.timeout))
	return b.w.Write(p)
}

// logAttempt writes the one line of an attempt (host is "" before any
// host was chosen); never a body.
func (d *delivery) logAttempt(host string, s *session, f *failure) {
	args := []any{"queue_id", d.env.ID, "domain", d.domain}
	if host != "" {
		args = append(args, "mx", host)
	}
	if s != nil {
		args = append(args, "addr", s.addr, "reused", s.reused, "tls", s.tlsName(), "cert", s.auth,
			"codes", strings.Join(s.codes, " "))
	}
	if f != nil {
		args = append(args, "result", "failed", "permanent", f.permanent, "enhanced", f.enhanced, "err", f.err)
		d.t.log.Warn("mx: delivery attempt", args...)
		return
	}
	delivered, deferred, failed := 0, 0, 0
	for i, r := range d.results {
		switch {
		case !d.final[i]:
		case r.Delivered():
			delivered++
		case r.Permanent:
			failed++
		default:
			deferred++
		}
	}
	args = append(args, "result", "done", "delivered", delivered, "deferred", deferred, "failed", failed)
	d.t.log.Info("mx: delivery attempt", args...)
}
