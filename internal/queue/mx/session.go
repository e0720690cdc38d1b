package mx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"posta/internal/tlsrpt"
)

// How the peer's certificate was checked.
const (
	authNone       = "none"       // no TLS
	authUnverified = "unverified" // TLS, certificate not verified (opportunistic, RFC 7435)
	authPKIX       = "pkix"       // chains to RootCAs and names the MX host
	authDANE       = "dane"       // matched the host's TLSA records (RFC 7672 3)
)

// hostPolicy is what one MX host must offer before it gets the message.
type hostPolicy struct {
	host   string
	domain string
	// dane holds the usable records of a secure TLSA RRset; daneTLS is
	// set when a secure RRset exists at all, usable or not: TLS is then
	// mandatory (RFC 7672 2.2).
	dane    []TLSA
	daneTLS bool
	// sts is the MTA-STS policy applied to this host, nil when there is
	// none or DANE applies (RFC 8461 2: DANE takes precedence).
	sts        *stsPolicy
	requireTLS bool // RFC 8689 4.2.1
	// vouched: the host name is trustworthy for REQUIRETLS: a secure MX
	// lookup, no MX at all, or allowed by MTA-STS (RFC 8689 4.2.1 step 2).
	vouched bool
}

func (p *hostPolicy) mustTLS() bool {
	return p.daneTLS || p.requireTLS || p.sts != nil && p.sts.Mode == stsEnforce
}

// session is one SMTP connection, ready for MAIL.
type session struct {
	cc        *ctxConn
	c         *client
	host      string
	addr      string
	tls       uint16 // negotiated version; 0 without TLS
	auth      string
	idleSince time.Time
	uses      int   // transactions that reached the final dot
	reused    bool  // taken from the idle pool for this Send
	vouched   bool  // see hostPolicy.vouched
	certErr   error // why the certificate is unverified, for REQUIRETLS's message

	stopWatch func() bool // ends the context watch of the current Send
	codes     []string    // replies of the current attempt, for the log
}

func (s *session) verified() bool { return s.auth == authDANE || s.auth == authPKIX }

func (s *session) tlsName() string {
	if s.tls == 0 {
		return "none"
	}
	return tls.VersionName(s.tls)
}

// watch makes ctx's end abort the session's I/O: a context does not
// interrupt a Read, a deadline does.
func (s *session) watch(ctx context.Context) {
	s.stopWatch = context.AfterFunc(ctx, s.cc.kill)
}

func (s *session) unwatch() {
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
}

func (s *session) note(step string, code int) {
	s.codes = append(s.codes, fmt.Sprintf("%s=%d", step, code))
}

// close drops the connection without a word: used when the session is in
// an unknown state (an unfinished DATA must never get its final dot).
func (s *session) close() {
	s.unwatch()
	s.cc.Close()
}

// quit ends a healthy session politely (RFC 5321 4.1.1.10).
func (s *session) quit(timeout time.Duration) {
	s.unwatch()
	s.c.cmd(timeout, 221, "QUIT")
	s.cc.Close()
}

// ctxConn is the TCP connection under the session (and under TLS). kill
// sets a deadline in the past that no later SetDeadline can undo, so that a
// cancelled Send stops even while go-smtp moves deadlines.
type ctxConn struct {
	net.Conn
	mu   sync.Mutex
	dead bool
}

var aLongTimeAgo = time.Unix(1, 0)

func (c *ctxConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	c.Conn.SetDeadline(aLongTimeAgo)
}

func (c *ctxConn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *ctxConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *ctxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *ctxConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// connect opens a session with addr of p.host, STARTTLS included, checked
// against p. plain skips STARTTLS (the retry after a failed handshake).
func (d *delivery) connect(ctx context.Context, p *hostPolicy, addr string, plain bool) (*session, *failure) {
	t := d.t
	dctx, cancel := context.WithTimeout(ctx, t.timeouts.Connect)
	conn, err := t.dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &failure{enhanced: "4.4.1", text: fmt.Sprintf("cannot connect to %s[%s]: %v", p.host, addr, err),
			remote: p.host, err: fmt.Errorf("mx: dial %s: %w", addr, err)}
	}
	s := &session{cc: &ctxConn{Conn: conn}, host: p.host, addr: addr, auth: authNone, vouched: p.vouched}
	s.watch(ctx)
	f := d.open(ctx, s, p, plain)
	if f != nil {
		s.close()
		if f.err != nil && ctx.Err() != nil {
			f.err = fmt.Errorf("%w (%w)", f.err, ctx.Err())
		}
		return s, f
	}
	return s, nil
}

// open runs greeting, EHLO and STARTTLS on s.
func (d *delivery) open(ctx context.Context, s *session, p *hostPolicy, plain bool) *failure {
	t := d.t
	c := newClient(s.cc)
	s.c = c
	// RFC 5321 3.1, 4.1.1.1: greeting, then EHLO (HELO for an older
	// server).
	if err := c.greet(t.timeouts.Greeting); err != nil {
		return d.sessionFailure(s, "greeting", err)
	}
	if err := c.hello(t.timeouts.Greeting, t.hostname); err != nil {
		return d.sessionFailure(s, "ehlo", err)
	}
	offered, _ := c.extension("STARTTLS")
	if !offered {
		d.tlsResult(s, p, tlsrpt.StartTLSNotSupported, "STARTTLS not offered")
	}
	if plain || !offered {
		if p.mustTLS() {
			why := "STARTTLS is not offered"
			if plain {
				why = "the TLS handshake failed"
			}
			return d.tlsRequired(s, p, why)
		}
		return nil
	}

	// RFC 3207 4: STARTTLS, 220, handshake.
	if err := c.startTLS(t.timeouts.Greeting); err != nil {
		var re *replyError
		if !errors.As(err, &re) {
			return d.sessionFailure(s, "starttls", err)
		}
		s.note("starttls", re.r.code)
		d.tlsResult(s, p, tlsrpt.StartTLSNotSupported, fmt.Sprintf("STARTTLS refused: %d", re.r.code))
		// RFC 3207 4: after a refusal the session goes on in clear,
		// unless this host must have TLS.
		if p.mustTLS() {
			return d.tlsRequired(s, p, fmt.Sprintf("STARTTLS was refused: %d %s", re.r.code, re.r.text))
		}
		return nil
	}
	s.note("starttls", 220)
	cfg := t.tlsBase.Clone()
	// RFC 8461 7.1, RFC 7672 8.1: SNI carries the MX host name.
	if net.ParseIP(p.host) == nil {
		cfg.ServerName = p.host
	}
	// Verification is ours, below, per the host's policy: opportunistic
	// TLS (RFC 7435) takes a certificate it cannot verify rather than
	// sending in clear.
	cfg.InsecureSkipVerify = true
	tc := tls.Client(s.cc, cfg)
	s.cc.SetDeadline(time.Now().Add(t.timeouts.Greeting))
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() == nil {
			d.tlsResult(s, p, tlsrpt.ValidationFailure, "TLS handshake: "+err.Error())
		}
		f := d.sessionFailure(s, "tls", err)
		// RFC 7672 2.2: be ready to retry in clear after STARTTLS
		// fails, where no policy asks for TLS.
		f.retryPlain = !p.mustTLS() && ctx.Err() == nil
		f.enhanced = "4.7.5"
		return f
	}
	s.cc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	s.tls = state.Version
	if f := d.checkCert(s, p, state); f != nil {
		s.c = nil
		tc.Close()
		return f
	}

	// RFC 3207 4.2: no greeting after TLS; forget what was learned before
	// it and EHLO again.
	c = newClient(tc)
	s.c = c
	if err := c.hello(t.timeouts.Greeting, t.hostname); err != nil {
		return d.sessionFailure(s, "ehlo", err)
	}
	return nil
}

// checkCert applies the host's policy to the certificate it presented.
func (d *delivery) checkCert(s *session, p *hostPolicy, state tls.ConnectionState) *failure {
	pkixErr := verifyPKIX(state.PeerCertificates, p.host, d.t.roots)
	if pkixErr == nil {
		s.auth = authPKIX
	} else {
		s.auth = authUnverified
	}
	switch {
	case len(p.dane) > 0:
		// RFC 7672 3.2: with a usable secure TLSA record, the records
		// decide; MTA-STS cannot override a failing DANE check.
		if err := verifyDANE(state.PeerCertificates, p.dane, []string{p.host, p.domain}); err != nil {
			d.tlsResult(s, p, tlsrpt.ValidationFailure, "DANE: "+err.Error())
			return &failure{enhanced: "4.7.5", remote: p.host, requireTLS: p.requireTLS,
				text: fmt.Sprintf("DANE: the certificate of %s does not match its TLSA records: %v", p.host, err),
				err:  fmt.Errorf("mx: dane %s: %w", p.host, err)}
		}
		s.auth = authDANE
		d.tlsResult(s, p, "", "")
	case p.daneTLS:
		// RFC 7672 2.2: secure but unusable records ask for TLS only.
		d.tlsResult(s, p, "", "")
	case p.sts != nil && p.sts.Mode == stsEnforce && pkixErr != nil:
		// RFC 8461 4.2, 5: enforce needs a valid certificate.
		d.tlsResult(s, p, certResult(pkixErr), pkixErr.Error())
		return &failure{enhanced: "4.7.5", remote: p.host, requireTLS: p.requireTLS,
			text: fmt.Sprintf("MTA-STS: the certificate of %s is not valid: %v", p.host, pkixErr),
			err:  fmt.Errorf("mx: mta-sts %s: %w", p.host, pkixErr)}
	case p.sts != nil && pkixErr != nil:
		// RFC 8461 5: testing mode reports and delivers.
		d.t.log.Warn("mta-sts testing: certificate not valid", "domain", p.domain, "mx", p.host, "err", pkixErr)
		d.tlsResult(s, p, certResult(pkixErr), pkixErr.Error())
	default:
		// Negotiated as the policy asks (with no policy, any TLS is).
		d.tlsResult(s, p, "", "")
	}
	if pkixErr != nil && s.auth == authUnverified {
		s.certErr = pkixErr
	}
	return nil
}

// tlsRequired is the failure of a host that must have TLS and did not.
func (d *delivery) tlsRequired(s *session, p *hostPolicy, why string) *failure {
	f := &failure{enhanced: "4.7.5", remote: p.host, requireTLS: p.requireTLS,
		text: fmt.Sprintf("%s: TLS is required (%s), but %s", p.host, p.tlsReason(), why)}
	if p.requireTLS {
		f.enhanced = "5.7.10" // RFC 8689 4.2.1: "Encryption needed"
	}
	f.err = errors.New("mx: " + f.text)
	return f
}

func (p *hostPolicy) tlsReason() string {
	switch {
	case p.daneTLS:
		return "DANE TLSA records"
	case p.sts != nil && p.sts.Mode == stsEnforce:
		return "MTA-STS policy in enforce mode"
	default:
		return "REQUIRETLS"
	}
}

// sessionFailure turns an error during session setup into a failure that
// sends the delivery to the next address or host (RFC 5321 5.1).
func (d *delivery) sessionFailure(s *session, step string, err error) *failure {
	f := &failure{remote: s.host, err: fmt.Errorf("mx: %s %s[%s]: %w", step, s.host, s.addr, err)}
	if r, ok := replyOf(err); ok {
		s.note(step, r.code)
		f.code, f.enhanced, f.text = r.code, r.enhanced, r.text
		return f
	}
	f.enhanced = "4.4.2"
	f.text = fmt.Sprintf("%s with %s[%s] failed: %v", step, s.host, s.addr, err)
	return f
}
