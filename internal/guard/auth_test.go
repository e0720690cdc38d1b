package guard

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDelayDoublesAndCaps(t *testing.T) {
	clk := newFakeClock()
	g := New(Limits{FailDelay: time.Second, MaxFailDelay: 10 * time.Second, BanAfter: 100}, WithClock(clk))
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, w := range want {
		d, banned := g.AuthFailed(ip1, "")
		if d != w*time.Second || banned {
			t.Fatalf("failure %d: AuthFailed = %v, %v; want %v, false", i+1, d, banned, w*time.Second)
		}
		clk.Advance(time.Second)
	}
	// Another IP has its own streak.
	if d, _ := g.AuthFailed(ip2, ""); d != time.Second {
		t.Fatalf("fresh IP delay = %v, want 1s", d)
	}
}

func TestBackoffNoOverflow(t *testing.T) {
	if d := backoff(time.Nanosecond, time.Hour, 1<<30); d != time.Hour {
		t.Fatalf("backoff after 2^30 failures = %v, want cap 1h", d)
	}
}

func TestSuccessResetsStreak(t *testing.T) {
	g := New(Limits{FailDelay: time.Second, MaxFailDelay: time.Minute, BanAfter: 100}, WithClock(newFakeClock()))
	g.AuthFailed(ip1, "alice")
	if d, _ := g.AuthFailed(ip1, "alice"); d != 2*time.Second {
		t.Fatalf("second failure delay = %v, want 2s", d)
	}
	g.AuthSucceeded(ip1, "alice")
	if d, _ := g.AuthFailed(ip1, "alice"); d != time.Second {
		t.Fatalf("delay after success = %v, want 1s (streak reset)", d)
	}
}

func TestStreakForgottenAfterQuietWindow(t *testing.T) {
	clk := newFakeClock()
	g := New(Limits{FailDelay: time.Second, BanAfter: 100, BanWindow: time.Minute}, WithClock(clk))
	g.AuthFailed(ip1, "")
	g.AuthFailed(ip1, "")
	clk.Advance(time.Minute)
	if d, _ := g.AuthFailed(ip1, ""); d != time.Second {
		t.Fatalf("delay after a quiet BanWindow = %v, want 1s", d)
	}
}

func TestBanAfterFailuresInWindow(t *testing.T) {
	clk := newFakeClock()
	lim := Limits{BanAfter: 3, BanWindow: 10 * time.Minute, BanDuration: time.Hour}
	g := New(lim, WithClock(clk))

	for i := range 2 {
		if _, banned := g.AuthFailed(ip1, "bob"); banned {
			t.Fatalf("banned after %d failures, BanAfter is 3", i+1)
		}
		clk.Advance(4 * time.Minute)
	}
	// Third failure at 8m: all three within 10m.
	banAt := clk.Now()
	if _, banned := g.AuthFailed(ip1, "bob"); !banned {
		t.Fatal("not banned after 3 failures within the window")
	}
	b, until := g.Banned(ip1)
	if !b || !until.Equal(banAt.Add(time.Hour)) {
		t.Fatalf("Banned = %v, %v; want true, %v", b, until, banAt.Add(time.Hour))
	}
	wantRefused(t, g, ip1, ErrBanned)
	mustAdmit(t, g, ip2)
	if s := g.Stats(); s.Bans != 1 {
		t.Fatalf("Stats.Bans = %d, want 1", s.Bans)
	}

	// Success does not lift a ban; a failure while banned does not extend it.
	g.AuthSucceeded(ip1, "bob")
	clk.Advance(30 * time.Minute)
	if _, banned := g.AuthFailed(ip1, "bob"); !banned {
		t.Fatal("AuthFailed while banned reported not banned")
	}
	clk.Advance(30*time.Minute - time.Nanosecond)
	if b, _ := g.Banned(ip1); !b {
		t.Fatal("ban ended before BanDuration")
	}
	wantRefused(t, g, ip1, ErrBanned)

	clk.Advance(time.Nanosecond)
	if b, _ := g.Banned(ip1); b {
		t.Fatal("still banned after BanDuration (a failure while banned must not extend the ban)")
	}
	mustAdmit(t, g, ip1)
	if s := g.Stats(); s.Bans != 0 {
		t.Fatalf("Stats.Bans = %d after expiry, want 0", s.Bans)
	}
	// The count starts afresh after a ban.
	if _, banned := g.AuthFailed(ip1, "bob"); banned {
		t.Fatal("re-banned by the first failure after the ban ended")
	}
}

func TestBanExpiryWithoutLookup(t *testing.T) {
	// Admit (not only Banned) must notice the ban has ended.
	clk := newFakeClock()
	g := New(Limits{BanAfter: 1, BanDuration: time.Minute}, WithClock(clk))
	g.AuthFailed(ip1, "")
	wantRefused(t, g, ip1, ErrBanned)
	clk.Advance(time.Minute)
	mustAdmit(t, g, ip1)
}

func TestBanShorterThanWindowCountsAfresh(t *testing.T) {
	// With BanDuration < BanWindow the failures that caused the ban are still inside the window when it ends; they
	// must not re-ban on the first failure after it.
	clk := newFakeClock()
	g := New(Limits{BanAfter: 2, BanWindow: 10 * time.Minute, BanDuration: time.Minute}, WithClock(clk))
	g.AuthFailed(ip1, "")
	if _, banned := g.AuthFailed(ip1, ""); !banned {
		t.Fatal("not banned")
	}
	clk.Advance(time.Minute)
	if _, banned := g.AuthFailed(ip1, ""); banned {
		t.Fatal("re-banned by the first failure after a ban ended")
	}
	if _, banned := g.AuthFailed(ip1, ""); !banned {
		t.Fatal("not re-banned after BanAfter fresh failures")
	}
}

func TestFailuresSpreadBeyondWindowDoNotBan(t *testing.T) {
	clk := newFakeClock()
	g := New(Limits{BanAfter: 3, BanWindow: 10 * time.Minute}, WithClock(clk))
	// Every 5 minutes: any 10-minute window holds at most two, or exactly three at its closed ends, which the
	// window excludes (a failure exactly BanWindow old has left it).
	for i := range 50 {
		if _, banned := g.AuthFailed(ip1, ""); banned {
			t.Fatalf("banned at failure %d though never 3 within 10m", i+1)
		}
		clk.Advance(5 * time.Minute)
	}
	// Now squeeze: a failure 5m after the last and another 1m later puts 3 inside 10m.
	g.AuthFailed(ip1, "")
	clk.Advance(time.Minute)
	if _, banned := g.AuthFailed(ip1, ""); !banned {
		t.Fatal("3 failures within 6m did not ban")
	}
}

func TestSuccessDoesNotResetBanCount(t *testing.T) {
	// An attacker holding one valid account must not be able to log in between guesses to dodge the ban.
	g := New(Limits{BanAfter: 3}, WithClock(newFakeClock()))
	for range 2 {
		g.AuthFailed(ip1, "victim")
		g.AuthSucceeded(ip1, "mine")
	}
	if _, banned := g.AuthFailed(ip1, "victim"); !banned {
		t.Fatal("successes between failures reset the ban count")
	}
}

func TestUnban(t *testing.T) {
	g := New(Limits{BanAfter: 2}, WithClock(newFakeClock()))
	g.AuthFailed(ip1, "")
	g.AuthFailed(ip1, "")
	if !g.Unban(ip1) {
		t.Fatal("Unban reported no ban")
	}
	mustAdmit(t, g, ip1)
	if g.Unban(ip1) {
		t.Fatal("second Unban reported a ban")
	}
	// Unban also forgets the streak: the next failure waits FailDelay, not 4×.
	if d, banned := g.AuthFailed(ip1, ""); banned || d != g.Limits().FailDelay {
		t.Fatalf("first failure after Unban = %v, %v; want %v, false", d, banned, g.Limits().FailDelay)
	}
}

func TestUsernameThrottle(t *testing.T) {
	clk := newFakeClock()
	lim := Limits{FailDelay: time.Second, MaxFailDelay: 8 * time.Second, BanAfter: 2, UserDelayAfter: 4,
		BanWindow: 10 * time.Minute}
	g := New(lim, WithClock(clk))
	// Each guess from a new IP: the IP streak alone would always give 1s and never ban.
	want := []time.Duration{1, 1, 1, 1, 1, 2, 4, 8, 8, 8}
	for i, w := range want {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		user := "Alice"
		if i%2 == 1 {
			user = "ALICE" // case must not split the count
		}
		d, banned := g.AuthFailed(ip, user)
		if d != w*time.Second || banned {
			t.Fatalf("guess %d: AuthFailed = %v, %v; want %v, false", i+1, d, banned, w*time.Second)
		}
		clk.Advance(time.Second)
	}
	// Another user is not slowed; nor is the same user from an IP with a success (the owner logging in).
	if d, _ := g.AuthFailed(netip.MustParseAddr("198.51.100.1"), "bob"); d != time.Second {
		t.Fatalf("other user's delay = %v, want 1s", d)
	}
	// The username is never banned: Banned is per IP, and every IP used had one failure.
	for i := range want {
		if b, _ := g.Banned(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})); b {
			t.Fatalf("IP %d banned after one failure", i)
		}
	}
	// After two quiet windows the username is forgotten.
	clk.Advance(20 * time.Minute)
	if d, _ := g.AuthFailed(netip.MustParseAddr("198.51.100.2"), "alice"); d != time.Second {
		t.Fatalf("delay after two quiet windows = %v, want 1s", d)
	}
	if s := g.Stats(); s.TrackedUsers != 1 {
		t.Fatalf("TrackedUsers = %d, want 1 (bob pruned? alice re-added)", s.TrackedUsers)
	}
}

func TestUserWindowSlides(t *testing.T) {
	// The estimate weighs the previous fixed window by its overlap, so a burst just before a window boundary still
	// counts just after it.
	var u userFails
	w := 10 * time.Minute
	for range 10 {
		u.add(9*time.Minute, w)
	}
	if c := u.add(11*time.Minute, w); c != 1+9 { // prev 10 × 0.9 overlap + this one
		t.Fatalf("estimate just past the boundary = %d, want 10", c)
	}
	if c := u.add(19*time.Minute+59*time.Second, w); c < 2 || c > 3 {
		t.Fatalf("estimate near the end of the next window = %d, want 2..3", c)
	}
	if c := u.add(45*time.Minute, w); c != 1 {
		t.Fatalf("estimate after two empty windows = %d, want 1", c)
	}
}

func TestMemoryBound(t *testing.T) {
	clk := newFakeClock()
	const maxTracked = 1000
	var logs bytes.Buffer
	g := New(Limits{BanAfter: 1, BanDuration: time.Hour}, WithClock(clk), WithMaxTracked(maxTracked),
		WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	const n = 200_000
	var last netip.Addr
	for i := range n {
		last = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if _, banned := g.AuthFailed(last, fmt.Sprintf("u%d", i)); !banned {
			t.Fatalf("failure %d did not ban with BanAfter 1", i)
		}
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	s := g.Stats()
	if s.TrackedIPs > maxTracked || s.TrackedUsers > maxTracked || s.Bans > maxTracked {
		t.Fatalf("Stats = %+v, want every table <= %d", s, maxTracked)
	}
	if s.TrackedIPs != maxTracked || s.Bans != maxTracked || s.TrackedUsers != maxTracked {
		t.Fatalf("Stats = %+v, want tables full at %d (nothing has expired)", s, maxTracked)
	}
	if s.Evicted != 3*(n-maxTracked) {
		t.Fatalf("Evicted = %d, want %d", s.Evicted, 3*(n-maxTracked))
	}
	// Overflow is reported, but not once per sprayed address: the fake clock moved 200ms in all.
	if c := strings.Count(logs.String(), "tracking tables full"); c != 1 {
		t.Fatalf("overflow warning logged %d times, want 1", c)
	}
	// The stalest record went, the latest offender is still banned.
	if b, _ := g.Banned(last); !b {
		t.Fatal("most recent offender forgotten")
	}
	if b, _ := g.Banned(netip.AddrFrom4([4]byte{10, 0, 0, 0})); b {
		t.Fatal("oldest ban kept though the table overflowed")
	}
	// Internal sizes agree with Stats: the map and its list stay in step.
	if len(g.fails.m) != maxTracked || len(g.users.m) != maxTracked || len(g.bans.m) != maxTracked {
		t.Fatalf("map sizes %d %d %d", len(g.fails.m), len(g.users.m), len(g.bans.m))
	}

	// Everything expires: after the window and the ban, the tables empty out.
	clk.Advance(time.Hour)
	if s := g.Stats(); s.TrackedIPs != 0 || s.TrackedUsers != 0 || s.Bans != 0 {
		t.Fatalf("after expiry Stats = %+v, want empty tables", s)
	}
}

func TestLongUsernameBounded(t *testing.T) {
	g := New(Limits{}, WithClock(newFakeClock()))
	g.AuthFailed(ip1, strings.Repeat("x", 1<<20))
	for k := range g.users.m {
		if len(k) > maxUserKey {
			t.Fatalf("stored username key of %d bytes, want <= %d", len(k), maxUserKey)
		}
	}
}

func TestBanIsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	g := New(Limits{BanAfter: 2}, WithClock(newFakeClock()), WithLogger(log))
	v6 := netip.MustParseAddr("2001:db8:1:2::7")
	g.AuthFailed(v6, "mallory")
	if buf.Len() != 0 {
		t.Fatalf("logged before the ban: %q", buf.String())
	}
	g.AuthFailed(v6, "mallory")
	out := buf.String()
	for _, want := range []string{"level=INFO", "ip banned", "ip=2001:db8:1:2::/64", "user=mallory"} {
		if !strings.Contains(out, want) {
			t.Errorf("ban log %q lacks %q", out, want)
		}
	}
}
