package guard

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

func BenchmarkAdmitRelease(b *testing.B) {
	g := New(Limits{MaxConnsPerIP: 1 << 20, MaxConns: 1 << 20})
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		rel, err := g.Admit(ip)
		if err != nil {
			b.Fatal(err)
		}
		rel()
	}
}

func BenchmarkAdmitReleaseParallel(b *testing.B) {
	g := New(Limits{MaxConnsPerIP: 1 << 20, MaxConns: 1 << 20})
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := next.Add(1)
		ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		for pb.Next() {
			rel, err := g.Admit(ip)
			if err != nil {
				b.Error(err)
				return
			}
			rel()
		}
	})
}
