package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Admit. Protocols map them to their own refusal (SMTP 421, IMAP BYE, FTP 421, ...).
var (
	ErrBanned             = errors.New("guard: address is banned")
	ErrTooManyConns       = errors.New("guard: too many connections")
	ErrTooManyConnsFromIP = errors.New("guard: too many connections from this address")
)

// Limits configures a Guard. A zero field takes its value from DefaultLimits (zero never means unlimited); Validate
// reports fields that are out of range so config loading can refuse them at start.
type Limits struct {
	MaxConnsPerIP  int           // concurrent connections from one IP (IPv6: one per IPv6PrefixLen prefix)
	MaxConns       int           // concurrent connections in total, all protocols together
	FailDelay      time.Duration // wait after the first failed auth in a streak; doubles with each further failure
	MaxFailDelay   time.Duration // cap on that wait
	BanAfter       int           // failures within BanWindow that ban the IP
	BanWindow      time.Duration // sliding window for BanAfter and UserDelayAfter; also how long a quiet IP's streak is remembered
	BanDuration    time.Duration
	ExemptLoopback bool // 127.0.0.0/8 and ::1 are never throttled, banned or per-IP capped (still counted in MaxConns)
	IPv6PrefixLen  int  // IPv6 peers are grouped by this prefix, since one host usually owns a whole /64
	UserDelayAfter int  // failures for one username within BanWindow, from any IPs, beyond which its failures are delayed; default 3×BanAfter
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		// Households and offices share one address behind NAT, and mail clients open several IMAP connections
		// per account, so the per-IP cap is generous; it exists to stop one host from taking every slot.
		MaxConnsPerIP: 50,
		MaxConns:      10000,
		FailDelay:     time.Second,
		// Clients commonly give up on a reply after 30-60 s; a longer wait would only look like a dead server.
		MaxFailDelay: 16 * time.Second,
		BanAfter:     10,
		BanWindow:    10 * time.Minute,
		BanDuration:  30 * time.Minute,
		// Off by default: behind a local proxy or webmail every peer is loopback, and exempting it would exempt
		// everyone.
		ExemptLoopback: false,
		IPv6PrefixLen:  64,
		UserDelayAfter: 30,
	}
}

// Validate reports the first field that is negative or inconsistent. Zero fields are valid: New fills them in.
func (l Limits) Validate() error {
	switch {
	case l.MaxConnsPerIP < 0, l.MaxConns < 0, l.BanAfter < 0, l.UserDelayAfter < 0:
		return fmt.Errorf("guard: negative count in limits %+v", l)
	case l.FailDelay < 0, l.MaxFailDelay < 0, l.BanWindow < 0, l.BanDuration < 0:
		return fmt.Errorf("guard: negative duration in limits %+v", l)
	case l.IPv6PrefixLen < 0 || l.IPv6PrefixLen > 128:
		return fmt.Errorf("guard: IPv6PrefixLen %d not in 1..128", l.IPv6PrefixLen)
	case l.FailDelay > 0 && l.MaxFailDelay > 0 && l.MaxFailDelay < l.FailDelay:
		return fmt.Errorf("guard: MaxFailDelay %v below FailDelay %v", l.MaxFailDelay, l.FailDelay)
	}
	return nil
}

// withDefaults replaces zero and out-of-range fields, so a Guard never runs with a limit that means "unlimited".
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&l.MaxConnsPerIP, d.MaxConnsPerIP)
	setInt(&l.MaxConns, d.MaxConns)
	setInt(&l.BanAfter, d.BanAfter)
	setInt(&l.UserDelayAfter, 3*l.BanAfter)
	setDur(&l.FailDelay, d.FailDelay)
	setDur(&l.MaxFailDelay, d.MaxFailDelay)
	setDur(&l.BanWindow, d.BanWindow)
	setDur(&l.BanDuration, d.BanDuration)
	if l.IPv6PrefixLen <= 0 || l.IPv6PrefixLen > 128 {
		l.IPv6PrefixLen = d.IPv6PrefixLen
	}
	l.MaxFailDelay = max(l.MaxFailDelay, l.FailDelay)
	return l
}

// DefaultMaxTracked is how many IPs, usernames and bans each are remembered at most. At roughly 200 bytes per
// record the three tables stay under ~40 MB however many addresses an attacker sprays from.
const DefaultMaxTracked = 65536

// Option configures New.
type Option func(*Guard)

// WithClock replaces the real clock; tests pass a fake one.
func WithClock(c Clock) Option { return func(g *Guard) { g.clock = c } }

// WithLogger sets where bans and table overflows are logged; the default discards.
func WithLogger(l *slog.Logger) Option { return func(g *Guard) { g.log = l } }

// WithMaxTracked caps each of the failure, username and ban tables at n entries (n <= 0 keeps DefaultMaxTracked).
func WithMaxTracked(n int) Option {
	return func(g *Guard) {
		if n > 0 {
			g.maxTracked = n
		}
	}
}

// Guard holds the connection counts, failure records and bans. It is safe for concurrent use; every method takes
// one mutex briefly and never does I/O while holding it (logging happens after unlock).
type Guard struct {
	lim        Limits
	clock      Clock
	log        *slog.Logger
	maxTracked int
	start      time.Time // origin of the Durations stored in the tables; keeps the monotonic reading of a real clock

	mu    sync.Mutex
	conns int
	perIP map[netip.Addr]int // keys with at least one open connection; bounded by MaxConns
	fails *table[netip.Addr, ipFails]
	users *table[string, userFails]
	bans  *table[netip.Addr, struct{}] // node.at is the end of the ban

	warnedEvict bool
	lastWarn    time.Duration
}

// New returns a Guard enforcing l, with zero or invalid fields replaced by their defaults (a warning is logged when
// l fails Validate, so a bad config is visible even if its loader did not check).
func New(l Limits, opts ...Option) *Guard {
	g := &Guard{
		clock:      realClock{},
		log:        slog.New(slog.DiscardHandler),
		maxTracked: DefaultMaxTracked,
	}
	for _, o := range opts {
		o(g)
	}
	if err := l.Validate(); err != nil {
		g.log.Warn("guard: invalid limits replaced by defaults", "err", err)
	}
	g.lim = l.withDefaults()
	g.start = g.clock.Now()
	g.perIP = make(map[netip.Addr]int)
	g.fails = newTable[netip.Addr, ipFails](g.maxTracked)
	g.users = newTable[string, userFails](g.maxTracked)
	g.bans = newTable[netip.Addr, struct{}](g.maxTracked)
	return g
}

// Limits returns the limits in force, defaults filled in.
func (g *Guard) Limits() Limits { return g.lim }

// now is the clock reading as an offset from start: an int64 per stored time instead of a 24-byte time.Time.
func (g *Guard) now() time.Duration { return g.clock.Now().Sub(g.start) }

// key maps a peer address to the unit limits apply to: v4-mapped IPv6 becomes IPv4 (a dual-stack listener reports
// IPv4 peers that way), zones are dropped, IPv6 is truncated to its prefix. exempt reports a loopback peer under
// ExemptLoopback. The zero Addr (a peer that is not IP, such as a Unix socket) is a key of its own rather than
// exempt, so a failure to read an address never switches the limits off.
func (g *Guard) key(ip netip.Addr) (k netip.Addr, exempt bool) {
	ip = ip.Unmap().WithZone("")
	if g.lim.ExemptLoopback && ip.IsLoopback() {
		return ip, true
	}
	if ip.Is6() && g.lim.IPv6PrefixLen < 128 {
		p, _ := ip.Prefix(g.lim.IPv6PrefixLen)
		ip = p.Addr()
	}
	return ip, false
}

// describe renders a key for logs: IPv6 keys as their prefix, so the log says what was banned.
func (g *Guard) describe(k netip.Addr) string {
	if k.Is6() && g.lim.IPv6PrefixLen < 128 {
		return netip.PrefixFrom(k, g.lim.IPv6PrefixLen).String()
	}
	return k.String()
}

// Admit is called on accept. It refuses a banned IP (ErrBanned), one at its own cap (ErrTooManyConnsFromIP) or any
// IP when the total is reached (ErrTooManyConns). On success the caller must call release when the connection
// closes; release is safe to call more than once (only the first call counts), so it can be both deferred and
// called early.
func (g *Guard) Admit(ip netip.Addr) (release func(), err error) {
	k, exempt := g.key(ip)
	g.mu.Lock()
	if !exempt {
		// The clock is read only when there is a ban to compare with, keeping the common path to two map lookups.
		if b := g.bans.get(k); b != nil {
			if b.at > g.now() {
				g.mu.Unlock()
				return nil, ErrBanned
			}
			g.bans.remove(b)
		}
		if g.perIP[k] >= g.lim.MaxConnsPerIP {
			g.mu.Unlock()
			return nil, ErrTooManyConnsFromIP
		}
	}
	if g.conns >= g.lim.MaxConns {
		g.mu.Unlock()
		return nil, ErrTooManyConns
	}
	g.conns++
	if !exempt {
		g.perIP[k]++
	}
	g.mu.Unlock()

	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			g.release(k, !exempt)
		}
	}, nil
}

func (g *Guard) release(k netip.Addr, perIP bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns--
	if !perIP {
		return
	}
	// Deleting at zero keeps perIP holding only open connections, which is what bounds it by MaxConns.
	if c := g.perIP[k]; c <= 1 {
		delete(g.perIP, k)
	} else {
		g.perIP[k] = c - 1
	}
}

// Banned reports whether ip is banned now and until when. Protocols check it before each auth attempt too: a ban
// placed by another session must stop this one.
func (g *Guard) Banned(ip netip.Addr) (bool, time.Time) {
	k, exempt := g.key(ip)
	if exempt {
		return false, time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bans.get(k)
	if b == nil {
		return false, time.Time{}
	}
	if b.at <= g.now() {
		g.bans.remove(b)
		return false, time.Time{}
	}
	return true, g.start.Add(b.at)
}

// Unban lifts ip's ban and forgets its failures, for operators. It reports whether there was a ban.
func (g *Guard) Unban(ip netip.Addr) bool {
	k, _ := g.key(ip)
	g.mu.Lock()
	b := g.bans.get(k)
	active := b != nil && b.at > g.now()
	if b != nil {
		g.bans.remove(b)
	}
	if f := g.fails.get(k); f != nil {
		g.fails.remove(f)
	}
	g.mu.Unlock()
	if active {
		g.log.Info("guard: ban lifted", "ip", g.describe(k))
	}
	return active
}

// Stats is a snapshot for metrics and logs.
type Stats struct {
	Conns        int    // open connections, all protocols
	ConnIPs      int    // IPs (IPv6 prefixes) with an open connection, not counting exempt loopback
	TrackedIPs   int    // IPs with a failure in the last BanWindow
	TrackedUsers int    // usernames with recent failures
	Bans         int    // active bans
	Evicted      uint64 // live records dropped because a table was full: non-zero means an attack outgrew the caps
}

// Stats returns current counts, after dropping expired records so they are not reported.
func (g *Guard) Stats() Stats {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now)
	return Stats{
		Conns:        g.conns,
		ConnIPs:      len(g.perIP),
		TrackedIPs:   g.fails.len(),
		TrackedUsers: g.users.len(),
		Bans:         g.bans.len(),
		Evicted:      g.fails.evicted + g.users.evicted + g.bans.evicted,
	}
}

// pruneLocked drops expired records from the front of each table; amortised O(1) per record ever inserted.
func (g *Guard) pruneLocked(now time.Duration) {
	g.fails.pruneThrough(now - g.lim.BanWindow)
	// A username's previous window still weighs on its estimate until two windows after its last failure.
	g.users.pruneThrough(now - 2*g.lim.BanWindow)
	g.bans.pruneThrough(now)
}

// AddrIP returns the IP of a connection's remote address (*net.TCPAddr, *net.UDPAddr, *net.IPAddr, or anything
// whose String is "ip:port" or "ip"), with v4-mapped IPv6 unmapped. It returns the zero Addr when there is none,
// e.g. for a Unix socket.
func AddrIP(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		if a == nil {
			return netip.Addr{}
		}
		ip, _ = netip.AddrFromSlice(a.IP)
		ip = ip.WithZone(a.Zone)
	case *net.UDPAddr:
		if a == nil {
			return netip.Addr{}
		}
		ip, _ = netip.AddrFromSlice(a.IP)
		ip = ip.WithZone(a.Zone)
	case *net.IPAddr:
		if a == nil {
			return netip.Addr{}
		}
		ip, _ = netip.AddrFromSlice(a.IP)
		ip = ip.WithZone(a.Zone)
	default:
		s := a.String()
		if ap, err := netip.ParseAddrPort(s); err == nil {
			ip = ap.Addr()
		} else {
			ip, _ = netip.ParseAddr(s)
		}
	}
	return ip.Unmap()
}
