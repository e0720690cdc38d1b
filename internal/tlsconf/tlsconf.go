package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, a handshake looks at the
// certificate files (or the generated certificate's expiry). Certbot renews 30
// days ahead, so a minute is far below any deadline while keeping stat calls
// off the hot path.
const DefaultCheckInterval = time.Minute

// renewBefore is how long before expiry the generated certificate is replaced,
// and the threshold for warning about configured files. It matches certbot's
// default renewal window.
const renewBefore = 30 * 24 * time.Hour

// Options says where the certificate comes from.
type Options struct {
	// CertFile and KeyFile are PEM files from the config. The certificate file
	// may hold a chain (leaf first). Both empty: use the generated pair.
	CertFile, KeyFile string
	// Dir is where generated material lives (<data>/tls); created 0700.
	Dir string
	// Hostname is the configured server name, e.g. "mail.example.test". The
	// generated certificate covers it; configured files are only warned about.
	Hostname string
	// Logger receives regeneration and reload events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for expiry decisions and the reload throttle; nil means
	// time.Now. Tests move it instead of sleeping.
	Now func() time.Time
	// CheckInterval bounds how often handshakes check for a renewed
	// certificate; zero or less means DefaultCheckInterval.
	CheckInterval time.Duration
}

// Manager holds the certificate being served and replaces it when the files
// change or the generated one nears expiry. Its methods are safe for
// concurrent use.
type Manager struct {
	o         Options // normalised by Load: Now, CheckInterval, Hostname set
	log       *slog.Logger
	generated bool

	cur       atomic.Pointer[served]
	nextCheck atomic.Int64 // unix nanoseconds; handshakes before it skip the check
	// mu serialises refreshes. Handshakes only TryLock it: one that finds a
	// check in progress serves the current certificate instead of waiting on
	// file I/O.
	mu sync.Mutex
}

// served is one loaded certificate; it is never modified once stored, so
// handshakes read it without a lock.
type served struct {
	cert        *tls.Certificate
	chain       []*x509.Certificate // parsed cert.Certificate; chain[0] is the leaf
	fingerprint string
	// certInfo and keyInfo describe the files this came from (files mode), to
	// tell whether they changed since.
	certInfo, keyInfo os.FileInfo
}

// Load reads the configured certificate files, or reuses or generates the
// self-signed pair in o.Dir.
func Load(o Options) (*Manager, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tlsconf: cert file and key file must be set together")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	o.Hostname = normalizeHost(o.Hostname)
	m := &Manager{o: o, log: o.Logger, generated: o.CertFile == ""}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}

	var s *served
	var err error
	if m.generated {
		s, err = m.loadOrGenerate()
	} else {
		s, err = loadFiles(o.CertFile, o.KeyFile)
		if err == nil {
			m.warnUnfit(s)
		}
	}
	if err != nil {
		return nil, err
	}
	m.cur.Store(s)
	m.nextCheck.Store(o.Now().Add(o.CheckInterval).UnixNano())
	return m, nil
}

// ServerConfig returns a new *tls.Config for one listener, offering the given
// ALPN protocol names (RFC 7301 registry names: "imap", "pop3", "ftp", ...).
//
// Call it once per listener and use the result for every connection of that
// listener: session tickets are encrypted with keys held by the config, so
// only connections through the same config resume each other's sessions. An
// FTPS data connection must use its control listener's config for that
// reason (see the package documentation). The caller may adjust the config
// (e.g. ClientAuth) before its first use, never after.
func (m *Manager) ServerConfig(alpn ...string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: slices.Clone(alpn),
		// Session tickets are on by default (SessionTicketsDisabled false);
		// certificates go through GetCertificate so a reload reaches
		// configs handed out earlier.
		GetCertificate: m.getCertificate,
	}
	if len(alpn) > 0 {
		cfg.GetConfigForClient = tolerateALPNMismatch(cfg)
	}
	return cfg
}

// CertPool returns a pool trusting the certificate served now: the
// self-signed one, or every certificate in the configured chain. Go trusts a
// certificate found in the pool directly, so a leaf without its issuer still
// verifies.
func (m *Manager) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range m.cur.Load().chain {
		pool.AddCert(c)
	}
	return pool
}

// Fingerprint is the SHA-256 of the served leaf's DER as upper-case hex pairs
// joined by colons, the form `openssl x509 -fingerprint -sha256` prints, so
// an operator can compare it with what a client shows.
func (m *Manager) Fingerprint() string { return m.cur.Load().fingerprint }

// Generated reports whether the served certificate is the self-signed one.
func (m *Manager) Generated() bool { return m.generated }

// Leaf returns the served leaf certificate. It is shared: do not modify it.
func (m *Manager) Leaf() *x509.Certificate { return m.cur.Load().chain[0] }

// Reload re-reads the configured files now, whatever their modification
// time, or replaces the generated certificate if it has become unfit. On
// error the previous certificate stays in service.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	m.nextCheck.Store(now.Add(m.o.CheckInterval).UnixNano())
	if m.generated {
		return m.renewGenerated(now)
	}
	return m.reloadFiles(true)
}

func (m *Manager) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.maybeRefresh()
	return m.cur.Load().cert, nil
}

// maybeRefresh runs the throttled check from inside a handshake. Failures are
// logged, not returned: failing the handshake would turn a botched renewal
// into an outage while the old certificate is still good.
func (m *Manager) maybeRefresh() {
	now := m.o.Now()
	if now.UnixNano() < m.nextCheck.Load() || !m.mu.TryLock() {
		return
	}
	defer m.mu.Unlock()
	if now.UnixNano() < m.nextCheck.Load() {
		return // another handshake checked while we took the lock
	}
	m.nextCheck.Store(now.Add(m.o.CheckInterval).UnixNano())
	var err error
	if m.generated {
		err = m.renewGenerated(now)
	} else {
		err = m.reloadFiles(false)
	}
	if err != nil {
		m.log.Warn("tls: keeping the current certificate", "err", err, "fingerprint", m.Fingerprint())
	}
}

// newServed wraps a parsed key pair.
func newServed(cert *tls.Certificate) (*served, error) {
	chain := make([]*x509.Certificate, 0, len(cert.Certificate))
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	cert.Leaf = chain[0]
	return &served{cert: cert, chain: chain, fingerprint: fingerprint(chain[0].Raw)}, nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// normalizeHost lower-cases the hostname and drops what a name check would
// trip over: a trailing dot, brackets around an IPv6 literal.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}
