package ftpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"posta/internal/config"
	"posta/internal/conntrack"
	"posta/internal/directory"
	"posta/internal/files"
	"posta/internal/guard"
	"posta/internal/tlsconf"
)

// Directory is what the server needs from internal/directory (declared
// here, on the consumer side; *directory.Directory implements it).
type Directory interface {
	// VerifyPassword checks a login (the full address) and returns the
	// canonical address; failures wrap sasl.ErrInvalidCredentials.
	VerifyPassword(ctx context.Context, username, password string) (string, error)
	// Account gives the quota and the read-only flag at login.
	Account(ctx context.Context, address string) (directory.Account, error)
}

// FileStore is what the server needs from internal/files (*files.Store
// implements it). The session then works on the *files.Tree it returns.
type FileStore interface {
	Tree(ctx context.Context, a files.Account) (*files.Tree, error)
	AnonymousTree() (*files.Tree, error)
}

// Limits bound every session. None may be zero (New refuses it); zero never
// means unlimited.
type Limits struct {
	// MaxLineLength is the longest command line in octets, CRLF included;
	// longer lines get 500 and the session goes on.
	MaxLineLength int
	// IdleTimeout is how long the control connection may be silent between
	// commands (outside a transfer) before 421 and close; also the bound on
	// writing a reply.
	IdleTimeout time.Duration
	// DataTimeout bounds each step of a transfer (a read, a write, or a
	// copyChunk of a zero-copy transfer), so a stalled peer is cut and a
	// slow one is not.
	DataTimeout time.Duration
	// ConnectTimeout bounds opening a data connection: waiting for the
	// client to connect to a passive port, connecting to an active one, and
	// the TLS handshake on it; also the implicit-TLS and AUTH TLS handshakes.
	ConnectTimeout time.Duration
	// MaxErrors is how many rejected commands (syntax errors, unknown verbs)
	// a session may send before 421; before login, MaxErrorsBeforeLogin.
	MaxErrors            int
	MaxErrorsBeforeLogin int
	// MaxLoginFailures per session before 421 (internal/guard counts per IP
	// across sessions on top of this).
	MaxLoginFailures int
	// MaxASCIIScan is the largest file whose TYPE A size SIZE computes, and
	// that REST may restart in TYPE A (both read the whole file, RFC 3659 4).
	MaxASCIIScan int64
	// MaxDrain is how much of an upload refused midway (quota) is still read
	// and dropped, so the client can finish sending and read the 552 rather
	// than see its connection reset.
	MaxDrain int64
}

// DefaultLimits are the limits used until internal/config carries them.
func DefaultLimits() Limits {
	return Limits{
		MaxLineLength:        4096 + 512, // a PATH_MAX path plus the verb
		IdleTimeout:          5 * time.Minute,
		DataTimeout:          5 * time.Minute,
		ConnectTimeout:       time.Minute,
		MaxErrors:            20,
		MaxErrorsBeforeLogin: 5,
		MaxLoginFailures:     3,
		MaxASCIIScan:         128 << 20,
		MaxDrain:             16 << 20,
	}
}

func (l Limits) validate() error {
	if l.MaxLineLength < 512 || l.IdleTimeout <= 0 || l.DataTimeout <= 0 || l.ConnectTimeout <= 0 ||
		l.MaxErrors <= 0 || l.MaxErrorsBeforeLogin <= 0 || l.MaxLoginFailures <= 0 || l.MaxASCIIScan <= 0 ||
		l.MaxDrain <= 0 {
		return fmt.Errorf("ftpserver: every limit must be positive (line length at least 512): %+v", l)
	}
	return nil
}

// TLSPolicy says for which clients TLS is required.
type TLSPolicy string

const (
	// TLSRequiredRemote requires TLS of clients not on loopback (default).
	TLSRequiredRemote TLSPolicy = "non-loopback"
	// TLSRequired requires TLS of every client.
	TLSRequired TLSPolicy = "required"
	// TLSOptional lets the client choose.
	TLSOptional TLSPolicy = "optional"
)

func (p TLSPolicy) requires(ip netip.Addr) bool {
	switch p {
	case TLSOptional:
		return false
	case TLSRequired:
		return true
	default:
		return !ip.Unmap().IsLoopback()
	}
}

// NetworkAddress maps client networks to the address PASV announces.
type NetworkAddress struct {
	Network netip.Prefix
	Address string // IPv4 address or host name
}

// ParseNetworkAddresses reads the config form of PassiveAddressByNetwork:
// "CIDR=address" pairs separated by commas or spaces, e.g.
// "10.0.0.0/8=10.0.0.5, 192.168.0.0/16=ftp.lan.example".
func ParseNetworkAddresses(s string) ([]NetworkAddress, error) {
	var out []NetworkAddress
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		cidr, addr, ok := strings.Cut(f, "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("ftpserver: %q is not CIDR=address", f)
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("ftpserver: %q: %w", f, err)
		}
		if ip, err := netip.ParseAddr(addr); err == nil && !ip.Unmap().Is4() {
			return nil, fmt.Errorf("ftpserver: %q: PASV can only announce IPv4", f)
		} else if err != nil && !validHostname(addr) {
			return nil, fmt.Errorf("ftpserver: %q: %s is neither an IPv4 address nor a host name", f, addr)
		}
		out = append(out, NetworkAddress{Network: p.Masked(), Address: addr})
	}
	return out, nil
}

// Options are what New needs. Directory, Files and Guard are required; TLS
// is required for an implicit-TLS listener and for AUTH TLS.
type Options struct {
	Listener  config.Listener // Name "ftp" (explicit, AUTH TLS) or "ftps" (implicit, ImplicitTLS)
	Hostname  string          // for the greeting and HOST
	Directory Directory
	Files     FileStore
	Guard     *guard.Guard
	TLS       *tlsconf.Manager
	Logger    *slog.Logger
	Limits    Limits

	// AllowPlaintextAuth (config allow_plaintext_auth) lets passwords
	// through without TLS whatever TLSLogin says.
	AllowPlaintextAuth bool
	// TLSLogin: who must use TLS before USER/PASS; "" means TLSRequiredRemote.
	TLSLogin TLSPolicy
	// TLSData: who must protect data connections (PROT P); "" means
	// TLSRequiredRemote.
	TLSData TLSPolicy
	// AllowTLSWithoutResume accepts protected data connections that do not
	// resume the control connection's TLS session. Off by default: the
	// resumption is what proves the data connection comes from the client
	// that logged in (RFC 4217 10.2).
	AllowTLSWithoutResume bool
	// Anonymous allows "anonymous" and "ftp" logins into Files'
	// anonymous area, read-only.
	Anonymous bool

	// PassivePortMin and PassivePortMax bound the ports of passive
	// listeners; both 0 lets the kernel choose.
	PassivePortMin, PassivePortMax int
	// PassiveAddress is the IPv4 address or host name PASV announces
	// (behind NAT); "" announces the address the client connected to.
	PassiveAddress string
	// PassiveAddressByNetwork overrides PassiveAddress for clients in
	// these networks (first match).
	PassiveAddressByNetwork []NetworkAddress
	// LookupNetIP resolves a host-name PassiveAddress; nil means
	// net.DefaultResolver.LookupNetIP.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// copyChunk is the unit of DataTimeout on the zero-copy paths: a plain
// upload's splice gets a fresh deadline per chunk, and on Linux a plain
// download's sendfile(2) moves at most a chunk per call under SO_SNDTIMEO
// (sendfile_linux.go). 1 MiB in 5 minutes cuts peers slower than 3.5 kB/s.
// The buffered paths (TLS, TYPE A) renew the deadline at every read and
// write.
const copyChunk = 1 << 20

// hangupWriteTimeout bounds the write of a farewell reply, so a peer that
// does not read cannot hold up a shutdown.
const hangupWriteTimeout = 5 * time.Second

// Server is the FTP server of one listener. It implements internal/server's
// Protocol: Serve, Shutdown, Close.
type Server struct {
	o           Options
	lim         Limits
	log         *slog.Logger
	implicitTLS bool
	tlsConfig   *tls.Config // nil without TLS; one per listener (tlsconf doc.go)
	lookup      func(ctx context.Context, network, host string) ([]netip.Addr, error)

	// bindings ties a connection in TLS handshake to its session, for the
	// session-resumption check (tls.go). Keys are the raw net.Conn.
	bindings sync.Map

	ctx    context.Context // parent of every session's context
	cancel context.CancelFunc
	// conns runs the accept loops and holds the open sessions.
	conns *conntrack.Tracker

	nextID atomic.Uint64
	panics atomic.Int64
}

// New builds the server for one listener; it binds nothing.
func New(o Options) (*Server, error) {
	if o.Directory == nil || o.Files == nil || o.Guard == nil {
		return nil, errors.New("ftpserver: Directory, Files and Guard are required")
	}
	if err := o.Limits.validate(); err != nil {
		return nil, err
	}
	for _, p := range []*TLSPolicy{&o.TLSLogin, &o.TLSData} {
		switch *p {
		case "":
			*p = TLSRequiredRemote
		case TLSRequiredRemote, TLSRequired, TLSOptional:
		default:
			return nil, fmt.Errorf("ftpserver: unknown TLS policy %q (non-loopback, required, optional)", *p)
		}
	}
	pmin, pmax := o.PassivePortMin, o.PassivePortMax
	if pmin < 0 || pmax < 0 || pmax > 65535 || (pmin == 0) != (pmax == 0) || pmin > pmax || (pmin != 0 && pmin < 1024) {
		return nil, fmt.Errorf("ftpserver: passive port range %d-%d: set both (1024-65535, min <= max) or neither", pmin, pmax)
	}
	if o.PassiveAddress != "" {
		if ip, err := netip.ParseAddr(o.PassiveAddress); err == nil && !ip.Unmap().Is4() {
			return nil, fmt.Errorf("ftpserver: passive address %s: PASV can only announce IPv4", o.PassiveAddress)
		} else if err != nil && !validHostname(o.PassiveAddress) {
			return nil, fmt.Errorf("ftpserver: passive address %q is neither an IPv4 address nor a host name", o.PassiveAddress)
		}
	}
	if o.Anonymous {
		t, err := o.Files.AnonymousTree()
		if err != nil {
			return nil, fmt.Errorf("ftpserver: anonymous logins need the file store's anonymous area: %w", err)
		}
		t.Close()
	}
	s := &Server{o: o, lim: o.Limits, log: o.Logger, implicitTLS: o.Listener.ImplicitTLS, lookup: o.LookupNetIP}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.lookup == nil {
		s.lookup = net.DefaultResolver.LookupNetIP
	}
	if o.TLS != nil {
		s.tlsConfig = s.newTLSConfig(o.TLS)
	} else if s.implicitTLS {
		return nil, fmt.Errorf("ftpserver: listener %s needs TLS", o.Listener.Name)
	}
	if s.o.Hostname == "" {
		s.o.Hostname = "localhost"
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = conntrack.New("ftp", s.log)
	// Sessions that run out of time at Shutdown: cancel every session's
	// context, then cut their sockets.
	s.conns.OnCut(s.cancel)
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.Serve(l, func(c net.Conn) conntrack.Conn {
		return newSession(s, c, guard.AddrIP(c.RemoteAddr()))
	})
}

// Shutdown stops accepting, says 421 to idle sessions and closes them, lets
// busy ones (a command or a transfer running) finish and then says the same,
// and when ctx is done cuts whatever is left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.conns.Shutdown(ctx)
	s.cancel()
	s.reportPanics()
	return err
}

// Close cuts every session at once.
func (s *Server) Close() error {
	s.conns.Close()
	s.cancel()
	s.reportPanics()
	return nil
}

func (s *Server) reportPanics() {
	if n := s.panics.Load(); n > 0 {
		s.log.Error("ftp: sessions panicked", "count", n)
	}
}

// Panics is how many commands panicked (recovered, answered 451); tests
// fail on any.
func (s *Server) Panics() int64 { return s.panics.Load() }

// tlsDesc describes a TLS connection for the log.
func tlsDesc(st tls.ConnectionState) string {
	return strings.ReplaceAll(tls.VersionName(st.Version), " ", "") + " " + tls.CipherSuiteName(st.CipherSuite)
}
