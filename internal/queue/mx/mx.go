package mx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"posta/internal/queue"
	"posta/internal/tlsrpt"
)

// Timeouts bound each step of a session. A zero field takes the default,
// which is RFC 5321 4.5.3.2's minimum for the step; tests shorten them.
type Timeouts struct {
	Connect   time.Duration // TCP connect to one address; default 30s
	Greeting  time.Duration // 220 greeting, EHLO, STARTTLS and the TLS handshake; 4.5.3.2.1: 5m
	Mail      time.Duration // MAIL and RSET replies; 4.5.3.2.2: 5m
	Rcpt      time.Duration // each RCPT reply; 4.5.3.2.3: 5m
	DataInit  time.Duration // the 354 reply to DATA; 4.5.3.2.4: 2m
	DataBlock time.Duration // each write of the body; 4.5.3.2.5: 3m
	DataTerm  time.Duration // the reply to the final dot; 4.5.3.2.6: 10m
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Greeting, 5*time.Minute)
	def(&t.Mail, 5*time.Minute)
	def(&t.Rcpt, 5*time.Minute)
	def(&t.DataInit, 2*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataTerm, 10*time.Minute)
	return t
}

// Options configure a Transport. Zero values take the defaults named.
type Options struct {
	// Hostname is the EHLO name (RFC 5321 4.1.1.1: the client's FQDN);
	// default os.Hostname().
	Hostname string
	// Resolver answers the DNS questions; default NetResolver{} (no DANE).
	// Use &DNSResolver{} with a local validating resolver for DANE.
	Resolver Resolver
	// Port is the SMTP port of MX hosts; default 25. It also names the
	// TLSA records looked up (_<port>._tcp, RFC 7672 2.2.3).
	Port int
	// Dial opens a TCP connection to "ip:port"; default a net.Dialer.
	// Tests map addresses to their listeners here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is the base for STARTTLS (cloned; ServerName and
	// verification are set per host); default a zero tls.Config.
	TLSConfig *tls.Config
	// RootCAs verify MX certificates for MTA-STS and REQUIRETLS; default
	// the system roots.
	RootCAs *x509.CertPool
	// HTTPClient fetches MTA-STS policies; default an http.Client with
	// the system roots. Redirects are never followed (RFC 8461 3.3).
	HTTPClient *http.Client
	Timeouts   Timeouts
	// MaxConnsPerDomain bounds the connections open to one destination
	// domain, busy and idle; default 4.
	MaxConnsPerDomain int
	// IdleTime is how long a connection is kept for the next message to
	// the same domain; default 30s; negative turns reuse off.
	IdleTime time.Duration
	// TLSReport, when set, is told how TLS went in every session (SMTP TLS
	// Reporting, RFC 8460; internal/tlsrpt counts and sends).
	TLSReport func(tlsrpt.Result)
	// Logger gets one line per delivery attempt; default slog.Default().
	Logger *slog.Logger
}

const (
	defaultMaxConns    = 4
	defaultIdleTime    = 30 * time.Second
	maxMessagesPerConn = 100 // then the connection is closed, not kept
	maxHosts           = 10  // MX hosts tried per Send
	maxAddrsPerHost    = 4   // addresses tried per MX host
	quitTimeout        = 10 * time.Second
)

var _ queue.Transport = (*Transport)(nil)

// Transport sends mail to remote MX hosts over SMTP. It implements
// queue.Transport; it is safe for concurrent use.
type Transport struct {
	hostname string
	resolver Resolver
	port     int
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsBase  *tls.Config
	roots    *x509.CertPool
	timeouts Timeouts
	maxConns int
	idleTime time.Duration
	log      *slog.Logger
	sts      *stsCache
	report   func(tlsrpt.Result)

	mu      sync.Mutex
	closed  bool
	domains map[string]*domainConns

	stop        chan struct{} // closed by Close; nil when reuse is off
	janitorDone chan struct{}
}

// New returns a Transport. With connection reuse on it starts a janitor
// goroutine; Close stops it.
func New(o Options) *Transport {
	t := &Transport{
		hostname: o.Hostname,
		resolver: o.Resolver,
		port:     o.Port,
		dial:     o.Dial,
		tlsBase:  o.TLSConfig,
		roots:    o.RootCAs,
		timeouts: o.Timeouts.withDefaults(),
		maxConns: o.MaxConnsPerDomain,
		idleTime: o.IdleTime,
		log:      o.Logger,
		report:   o.TLSReport,
		domains:  map[string]*domainConns{},
	}
	if t.hostname == "" {
		t.hostname, _ = os.Hostname()
		if t.hostname == "" {
			t.hostname = "localhost"
		}
	}
	if t.resolver == nil {
		t.resolver = NetResolver{}
	}
	if t.port <= 0 {
		t.port = 25
	}
	if t.dial == nil {
		d := &net.Dialer{}
		t.dial = d.DialContext
	}
	if t.tlsBase == nil {
		t.tlsBase = &tls.Config{}
	}
	if t.maxConns <= 0 {
		t.maxConns = defaultMaxConns
	}
	if t.idleTime == 0 {
		t.idleTime = defaultIdleTime
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.sts = newSTSCache(t.resolver, o.HTTPClient, func(msg string, args ...any) { t.log.Warn(msg, args...) })
	if t.idleTime > 0 {
		t.stop = make(chan struct{})
		t.janitorDone = make(chan struct{})
		go t.janitor(min(max(t.idleTime/2, 10*time.Millisecond), 30*time.Second))
	}
	return t
}
