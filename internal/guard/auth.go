package guard

import (
	"net/netip"
	"strings"
	"time"
)

// ipFails is the failure record of one IP (IPv6 prefix).
type ipFails struct {
	// streak counts failures since the last success; it drives the delay. It is forgotten with the record, one
	// BanWindow after the last failure, so a user who mistypes once a day does not wait longer each day.
	streak int
	// times is a ring of the last BanAfter failure times: the IP is banned when the oldest of them is still inside
	// BanWindow. Exact, where a fixed window reset at its end would let an attacker place nearly 2×BanAfter
	// guesses around each reset.
	times []time.Duration
	next  int // slot the next failure goes to
	n     int // filled slots
}

func (f *ipFails) reset(size int) {
	f.streak, f.next, f.n = 0, 0, 0
	if cap(f.times) >= size {
		f.times = f.times[:size]
	} else {
		f.times = make([]time.Duration, size)
	}
}

func (f *ipFails) record(at time.Duration) {
	f.times[f.next] = at
	f.next = (f.next + 1) % len(f.times)
	f.n = min(f.n+1, len(f.times))
}

// full reports whether the ring holds len(times) failures all later than cutoff.
func (f *ipFails) full(cutoff time.Duration) bool {
	// When the ring is full, next points at the oldest entry.
	return f.n == len(f.times) && f.times[f.next] > cutoff
}

// userFails estimates one username's failures over the sliding BanWindow from two fixed windows, the previous
// weighted by how much of it still overlaps: O(1) memory per username, which matters because usernames are
// attacker-chosen, and exact enough for a delay (it never bans).
type userFails struct {
	start     time.Duration // start of the current fixed window
	cur, prev int
}

func (u *userFails) add(now, w time.Duration) int {
	switch el := now - u.start; {
	case el >= 2*w:
		u.start, u.cur, u.prev = now, 0, 0
	case el >= w:
		u.start, u.cur, u.prev = u.start+w, 0, u.cur
	}
	u.cur++
	// float64 because prev × nanoseconds overflows int64 after a few million failures.
	overlap := float64(w-(now-u.start)) / float64(w)
	return u.cur + int(float64(u.prev)*overlap)
}

// maxUserKey bounds a stored username. RFC 5321 4.5.3.1.3: a path is at most 256 octets, so no real account name
// is longer, and a client sending megabytes of name cannot make the table hold them.
const maxUserKey = 256

// userKey normalises username for counting: case-folded, so alternating case does not split an attack across keys.
func userKey(username string) string {
	if len(username) > maxUserKey {
		username = username[:maxUserKey]
	}
	return strings.ToLower(username)
}

// backoff returns base doubled n-1 times, capped at ceiling.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// AuthFailed records a failed authentication from ip for username (which may be empty when the client never sent
// one) and returns how long the protocol should wait before answering, and whether ip is now banned, in which case
// the protocol closes the session after answering.
//
// The delay is FailDelay doubled for each earlier failure in ip's streak, capped at MaxFailDelay. Once username has
// failed more than UserDelayAfter times within BanWindow from any addresses, its own doubling delay applies too
// (the larger of the two is returned): that slows a distributed guess at one account, but since it only ever
// delays failures, the real owner still logs in at once with the right password. Only IPs are banned.
//
// A failure while already banned (from a session opened before the ban) is counted in the streak but does not
// extend the ban. Under ExemptLoopback a loopback peer gets (0, false) and leaves no record.
func (g *Guard) AuthFailed(ip netip.Addr, username string) (delay time.Duration, banned bool) {
	k, exempt := g.key(ip)
	if exempt {
		return 0, false
	}
	user := userKey(username)
	now := g.now()

	g.mu.Lock()
	g.pruneLocked(now)
	evictedBefore := g.fails.evicted + g.users.evicted + g.bans.evicted

	f := g.fails.get(k)
	if f == nil {
		f, _ = g.fails.insert(k, now)
		f.val.reset(g.lim.BanAfter)
	} else {
		g.fails.touch(f, now)
	}
	f.val.streak++
	delay = backoff(g.lim.FailDelay, g.lim.MaxFailDelay, f.val.streak)

	var newBan bool
	var until time.Duration
	if b := g.bans.get(k); b != nil && b.at > now {
		banned, until = true, b.at
	} else {
		f.val.record(now)
		if f.val.full(now - g.lim.BanWindow) {
			banned, newBan, until = true, true, now+g.lim.BanDuration
			if b != nil {
				g.bans.remove(b) // expired, not yet pruned
			}
			// bans.at is the end of the ban; all bans last BanDuration, so list order is expiry order and a full
			// table gives up the ban closest to ending.
			g.bans.insert(k, until)
			// A fresh count after the ban ends; the streak stays, so the delay picks up where it was.
			f.val.n, f.val.next = 0, 0
		}
	}

	if user != "" {
		u := g.users.get(user)
		if u == nil {
			u, _ = g.users.insert(user, now)
			u.val = userFails{start: now}
		} else {
			g.users.touch(u, now)
		}
		if c := u.val.add(now, g.lim.BanWindow); c > g.lim.UserDelayAfter {
			delay = max(delay, backoff(g.lim.FailDelay, g.lim.MaxFailDelay, c-g.lim.UserDelayAfter))
		}
	}

	// Overflow is logged at most once a minute: under a spray it would otherwise be a line per attempt.
	evicted := g.fails.evicted + g.users.evicted + g.bans.evicted
	warnEvict := evicted > evictedBefore && (!g.warnedEvict || now-g.lastWarn >= time.Minute)
	if warnEvict {
		g.warnedEvict, g.lastWarn = true, now
	}
	g.mu.Unlock()

	if newBan {
		g.log.Info("guard: ip banned", "ip", g.describe(k), "user", user,
			"failures", g.lim.BanAfter, "window", g.lim.BanWindow, "until", g.start.Add(until))
	}
	if warnEvict {
		g.log.Warn("guard: tracking tables full, forgetting the stalest records", "max", g.maxTracked,
			"evicted_total", evicted)
	}
	return delay, banned
}

// AuthSucceeded ends ip's failure streak, so its next failure waits FailDelay again. It does not lift a ban, and
// the failures already counted toward a ban stay in the window: otherwise an attacker holding one valid account
// could log in between guesses and never be banned. The username's count is not cleared either, for the same
// reason across IPs; it only ever delays failures, so the owner is not hindered by it.
func (g *Guard) AuthSucceeded(ip netip.Addr, username string) {
	k, exempt := g.key(ip)
	if exempt {
		return
	}
	g.mu.Lock()
	if f := g.fails.get(k); f != nil {
		f.val.streak = 0
	}
	g.mu.Unlock()
}
