package guard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("192.0.2.2")
)

func mustAdmit(t *testing.T, g *Guard, ip netip.Addr) func() {
	t.Helper()
	rel, err := g.Admit(ip)
	if err != nil {
		t.Fatalf("Admit(%v) = %v, want ok", ip, err)
	}
	return rel
}

func wantRefused(t *testing.T, g *Guard, ip netip.Addr, want error) {
	t.Helper()
	rel, err := g.Admit(ip)
	if !errors.Is(err, want) {
		if rel != nil {
			rel()
		}
		t.Fatalf("Admit(%v) = %v, want %v", ip, err, want)
	}
	if rel != nil {
		t.Fatalf("Admit(%v) refused but returned a release func", ip)
	}
}

func TestPerIPCap(t *testing.T) {
	g := New(Limits{MaxConnsPerIP: 2, MaxConns: 100})
	r1 := mustAdmit(t, g, ip1)
	mustAdmit(t, g, ip1)
	wantRefused(t, g, ip1, ErrTooManyConnsFromIP)
	mustAdmit(t, g, ip2) // another IP is unaffected

	r1()
	r3 := mustAdmit(t, g, ip1) // release freed the slot
	wantRefused(t, g, ip1, ErrTooManyConnsFromIP)

	if s := g.Stats(); s.Conns != 3 || s.ConnIPs != 2 {
		t.Fatalf("Stats = %+v, want Conns 3, ConnIPs 2", s)
	}
	r3()
}

func TestTotalCap(t *testing.T) {
	g := New(Limits{MaxConnsPerIP: 10, MaxConns: 3})
	var rels []func()
	for i := range 3 {
		rels = append(rels, mustAdmit(t, g, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})))
	}
	wantRefused(t, g, netip.MustParseAddr("203.0.113.9"), ErrTooManyConns)
	rels[0]()
	mustAdmit(t, g, netip.MustParseAddr("203.0.113.9"))
	wantRefused(t, g, ip1, ErrTooManyConns)
}

func TestDoubleReleaseIsSafe(t *testing.T) {
	g := New(Limits{MaxConnsPerIP: 2, MaxConns: 2})
	r1 := mustAdmit(t, g, ip1)
	r2 := mustAdmit(t, g, ip1)
	r1()
	r1()
	r1()
	if s := g.Stats(); s.Conns != 1 || s.ConnIPs != 1 {
		t.Fatalf("after triple release of one conn: Stats = %+v, want Conns 1, ConnIPs 1", s)
	}
	// If r1 had decremented three times the caps would now admit more than two.
	mustAdmit(t, g, ip1)
	wantRefused(t, g, ip1, ErrTooManyConnsFromIP)
	r2()
	r2()
	if s := g.Stats(); s.Conns != 1 {
		t.Fatalf("Stats.Conns = %d, want 1", s.Conns)
	}
}

func TestIPv6PrefixGrouping(t *testing.T) {
	a := netip.MustParseAddr("2001:db8:1:2::1")
	sameA := netip.MustParseAddr("2001:db8:1:2:ffff:ffff:ffff:ffff")
	other := netip.MustParseAddr("2001:db8:1:3::1")

	t.Run("default /64", func(t *testing.T) {
		g := New(Limits{MaxConnsPerIP: 2, MaxConns: 100})
		mustAdmit(t, g, a)
		mustAdmit(t, g, sameA)
		wantRefused(t, g, netip.MustParseAddr("2001:db8:1:2::abcd"), ErrTooManyConnsFromIP)
		mustAdmit(t, g, other)
		if s := g.Stats(); s.ConnIPs != 2 {
			t.Fatalf("ConnIPs = %d, want 2 (two /64s)", s.ConnIPs)
		}
	})
	t.Run("zone ignored", func(t *testing.T) {
		g := New(Limits{MaxConnsPerIP: 1, MaxConns: 100})
		mustAdmit(t, g, netip.MustParseAddr("fe80::1%eth0"))
		wantRefused(t, g, netip.MustParseAddr("fe80::2%eth1"), ErrTooManyConnsFromIP)
	})
	t.Run("/128 configured", func(t *testing.T) {
		g := New(Limits{MaxConnsPerIP: 1, MaxConns: 100, IPv6PrefixLen: 128})
		mustAdmit(t, g, a)
		mustAdmit(t, g, sameA)
		wantRefused(t, g, a, ErrTooManyConnsFromIP)
	})
	t.Run("/48 configured", func(t *testing.T) {
		g := New(Limits{MaxConnsPerIP: 2, MaxConns: 100, IPv6PrefixLen: 48})
		mustAdmit(t, g, a)
		mustAdmit(t, g, other)
		wantRefused(t, g, netip.MustParseAddr("2001:db8:1:ffff::1"), ErrTooManyConnsFromIP)
		mustAdmit(t, g, netip.MustParseAddr("2001:db8:2::1"))
	})
	t.Run("ban covers the prefix", func(t *testing.T) {
		g := New(Limits{BanAfter: 2})
		g.AuthFailed(a, "")
		if _, banned := g.AuthFailed(sameA, ""); !banned {
			t.Fatal("two failures from one /64 did not ban it")
		}
		wantRefused(t, g, netip.MustParseAddr("2001:db8:1:2::99"), ErrBanned)
		mustAdmit(t, g, other)
	})
}

func TestV4MappedIsV4(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	g := New(Limits{MaxConnsPerIP: 2, MaxConns: 100, BanAfter: 2})
	mustAdmit(t, g, ip1)
	mustAdmit(t, g, mapped)
	wantRefused(t, g, ip1, ErrTooManyConnsFromIP)
	wantRefused(t, g, mapped, ErrTooManyConnsFromIP)

	g.AuthFailed(mapped, "")
	if _, banned := g.AuthFailed(ip1, ""); !banned {
		t.Fatal("failures split between v4 and v4-mapped v6 forms did not add up to a ban")
	}
	if b, _ := g.Banned(mapped); !b {
		t.Fatal("ban of 192.0.2.1 not seen through ::ffff:192.0.2.1")
	}
}

func TestAddrIP(t *testing.T) {
	tests := []struct {
		name string
		in   net.Addr
		want netip.Addr
	}{
		{"tcp v4", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 25}, ip1}, // net.IPv4 is 16-byte, v4-in-v6
		{"tcp v4 4-byte", &net.TCPAddr{IP: net.IP{192, 0, 2, 1}, Port: 25}, ip1},
		{"tcp v6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 993}, netip.MustParseAddr("2001:db8::1")},
		{"tcp v6 zone", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, netip.MustParseAddr("fe80::1%eth0")},
		{"udp", &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.1")}, ip1},
		{"ip", &net.IPAddr{IP: net.ParseIP("192.0.2.1")}, ip1},
		{"other host:port", stringAddr("[::ffff:192.0.2.1]:22"), ip1},
		{"other bare ip", stringAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::2")},
		{"unix", &net.UnixAddr{Name: "/run/posta.sock", Net: "unix"}, netip.Addr{}},
		{"nil interface", nil, netip.Addr{}},
		{"nil *TCPAddr", (*net.TCPAddr)(nil), netip.Addr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AddrIP(tc.in); got != tc.want {
				t.Fatalf("AddrIP(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

type stringAddr string

func (s stringAddr) Network() string { return "test" }
func (s stringAddr) String() string  { return string(s) }

func TestInvalidAddrIsNotExempt(t *testing.T) {
	// A peer whose address could not be read shares one bucket: the limits stay on rather than switching off.
	g := New(Limits{MaxConnsPerIP: 1, MaxConns: 10, ExemptLoopback: true})
	mustAdmit(t, g, netip.Addr{})
	wantRefused(t, g, netip.Addr{}, ErrTooManyConnsFromIP)
}

func TestLoopbackExemption(t *testing.T) {
	lo4 := netip.MustParseAddr("127.0.0.5")
	lo6 := netip.IPv6Loopback()
	mappedLo := netip.MustParseAddr("::ffff:127.0.0.1")
	lim := Limits{MaxConnsPerIP: 1, MaxConns: 5, BanAfter: 2, FailDelay: time.Second}

	t.Run("on", func(t *testing.T) {
		l := lim
		l.ExemptLoopback = true
		g := New(l)
		for _, ip := range []netip.Addr{lo4, lo4, lo6, lo6} {
			mustAdmit(t, g, ip) // no per-IP cap
		}
		mustAdmit(t, g, mappedLo)
		wantRefused(t, g, lo4, ErrTooManyConns) // but counted in the total
		for range 10 {
			for _, ip := range []netip.Addr{lo4, lo6, mappedLo} {
				if d, banned := g.AuthFailed(ip, "alice"); d != 0 || banned {
					t.Fatalf("AuthFailed(%v) = %v, %v; want 0, false for exempt loopback", ip, d, banned)
				}
			}
		}
		if b, _ := g.Banned(lo4); b {
			t.Fatal("loopback banned under ExemptLoopback")
		}
		if s := g.Stats(); s.TrackedIPs != 0 || s.TrackedUsers != 0 || s.ConnIPs != 0 {
			t.Fatalf("exempt loopback left records: %+v", s)
		}
		// 127.0.0.0/8 is exempt, 128.0.0.1 is not.
		g2 := New(l)
		g2.AuthFailed(netip.MustParseAddr("128.0.0.1"), "")
		if _, banned := g2.AuthFailed(netip.MustParseAddr("128.0.0.1"), ""); !banned {
			t.Fatal("non-loopback address exempted")
		}
	})
	t.Run("off", func(t *testing.T) {
		g := New(lim)
		mustAdmit(t, g, lo4)
		wantRefused(t, g, lo4, ErrTooManyConnsFromIP)
		if d, _ := g.AuthFailed(lo6, "alice"); d != time.Second {
			t.Fatalf("loopback delay = %v, want 1s when not exempt", d)
		}
		if _, banned := g.AuthFailed(lo6, "alice"); !banned {
			t.Fatal("loopback not banned when not exempt")
		}
		wantRefused(t, g, lo6, ErrBanned)
	})
}

func TestLimitsDefaultsAndValidate(t *testing.T) {
	g := New(Limits{BanAfter: 4, FailDelay: time.Minute, MaxFailDelay: time.Second, IPv6PrefixLen: 200})
	got := g.Limits()
	d := DefaultLimits()
	if got.MaxConns != d.MaxConns || got.MaxConnsPerIP != d.MaxConnsPerIP || got.BanWindow != d.BanWindow ||
		got.BanDuration != d.BanDuration || got.IPv6PrefixLen != 64 {
		t.Fatalf("zero/invalid fields not defaulted: %+v", got)
	}
	if got.UserDelayAfter != 12 {
		t.Fatalf("UserDelayAfter = %d, want 3×BanAfter = 12", got.UserDelayAfter)
	}
	if got.MaxFailDelay != time.Minute {
		t.Fatalf("MaxFailDelay = %v, want raised to FailDelay 1m", got.MaxFailDelay)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultLimits invalid: %v", err)
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatalf("zero Limits invalid: %v", err)
	}
	for _, bad := range []Limits{
		{MaxConns: -1}, {BanWindow: -time.Second}, {IPv6PrefixLen: 129},
		{FailDelay: time.Minute, MaxFailDelay: time.Second},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want error", bad)
		}
	}
}

func TestConcurrentAdmitRelease(t *testing.T) {
	clk := newFakeClock()
	g := New(Limits{MaxConnsPerIP: 3, MaxConns: 200, BanAfter: 1000}, WithClock(clk))
	const workers, iters = 64, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var held []func()
			for i := range iters {
				ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(40))})
				if rel, err := g.Admit(ip); err == nil {
					held = append(held, rel)
				} else if !errors.Is(err, ErrTooManyConns) && !errors.Is(err, ErrTooManyConnsFromIP) {
					t.Errorf("Admit: unexpected %v", err)
					return
				}
				switch i % 7 {
				case 0:
					g.AuthFailed(ip, fmt.Sprintf("user%d", r.IntN(5)))
				case 1:
					g.AuthSucceeded(ip, "x")
				case 2:
					g.Stats()
				case 3:
					clk.Advance(time.Millisecond)
				}
				if len(held) > 2 || (len(held) > 0 && r.IntN(2) == 0) {
					j := r.IntN(len(held))
					held[j]()
					held[j]() // double release from a racing closer must not double-decrement
					held = append(held[:j], held[j+1:]...)
				}
			}
			for _, rel := range held {
				rel()
			}
		})
	}
	wg.Wait()
	if s := g.Stats(); s.Conns != 0 || s.ConnIPs != 0 {
		t.Fatalf("after all releases Stats = %+v, want Conns 0, ConnIPs 0", s)
	}
}

func TestConcurrentRaceOnOneRelease(t *testing.T) {
	g := New(Limits{MaxConns: 10})
	for range 100 {
		rel := mustAdmit(t, g, ip1)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(rel)
		}
		wg.Wait()
		if s := g.Stats(); s.Conns != 0 {
			t.Fatalf("Conns = %d after racing releases of one conn, want 0", s.Conns)
		}
	}
}
