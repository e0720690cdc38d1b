package imapserver

import (
	"fmt"
	"math/rand"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// psess is one session of the property test and its model of the selected
// mailbox: the UID at each sequence number, learnt only from what the
// server said (EXISTS, EXPUNGE, VANISHED, FETCH ... UID), as a client must
// (RFC 9051 2.3.1.2, 7.4.1, 7.5.1; RFC 7162 3.2.10). 0 is a message the
// session was told exists but whose UID it has not fetched yet.
type psess struct {
	t       *testing.T
	name    string
	c       *tconn
	mailbox string
	qresync bool
	uids    []uint32
}

var (
	vanishedRE = regexp.MustCompile(`^\* VANISHED (\(EARLIER\) )?([0-9:,]+)$`)
	anyFetchRE = regexp.MustCompile(`^\* (\d+) FETCH \(`)
	uidItemRE  = regexp.MustCompile(`[( ]UID (\d+)[ )]`)
)

// parseSet expands a sequence set of numbers (no "*").
func parseSet(t *testing.T, s string) []uint32 {
	var out []uint32
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			t.Fatalf("bad set %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				t.Fatalf("bad set %q", s)
			}
		}
		for n := min(a, b); n <= max(a, b); n++ {
			out = append(out, uint32(n))
		}
	}
	return out
}

// apply updates the model from the untagged responses of one command.
func (s *psess) apply(cmd string, lines []string) {
	s.t.Helper()
	for _, l := range lines {
		if m := existsRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n < len(s.uids) {
				s.t.Fatalf("%s: %s: %q with %d messages known (RFC 9051 7.4.1: EXISTS never shrinks the mailbox)", s.name, cmd, l, len(s.uids))
			}
			for len(s.uids) < n {
				s.uids = append(s.uids, 0)
			}
			continue
		}
		if m := expungeRE.FindStringSubmatch(l); m != nil {
			if s.qresync {
				s.t.Fatalf("%s: %s: EXPUNGE under QRESYNC (RFC 7162 3.2.10 says VANISHED)", s.name, cmd)
			}
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > len(s.uids) {
				s.t.Fatalf("%s: %s: %q with %d messages known", s.name, cmd, l, len(s.uids))
			}
			s.uids = slices.Delete(s.uids, n-1, n)
			continue
		}
		if m := vanishedRE.FindStringSubmatch(l); m != nil {
			if !s.qresync {
				s.t.Fatalf("%s: %s: VANISHED without QRESYNC", s.name, cmd)
			}
			if m[1] != "" {
				continue // EARLIER: about messages the session was never told of
			}
			for _, u := range parseSet(s.t, m[2]) {
				i := slices.Index(s.uids, u)
				if i < 0 {
					s.t.Fatalf("%s: %s: VANISHED UID %d, which the session does not know (model %v)", s.name, cmd, u, s.uids)
				}
				s.uids = slices.Delete(s.uids, i, i+1)
			}
			continue
		}
		if m := anyFetchRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > len(s.uids) {
				s.t.Fatalf("%s: %s: %q with %d messages known", s.name, cmd, l, len(s.uids))
			}
			if um := uidItemRE.FindStringSubmatch(l); um != nil {
				u, _ := strconv.ParseUint(um[1], 10, 32)
				switch s.uids[n-1] {
				case 0:
					s.uids[n-1] = uint32(u)
				case uint32(u):
				default:
					s.t.Fatalf("%s: %s: %q but the session has UID %d at %d", s.name, cmd, l, s.uids[n-1], n)
				}
			}
		}
	}
	// UIDs grow with the sequence numbers (RFC 9051 2.3.1.1).
	last := uint32(0)
	for _, u := range s.uids {
		if u == 0 {
			continue
		}
		if u <= last {
			s.t.Fatalf("%s: %s: UIDs out of order: %v", s.name, cmd, s.uids)
		}
		last = u
	}
}

// run sends a command, requires a tagged OK, and applies the untagged
// responses; then it fetches the UIDs of messages it has not seen yet,
// the way a client does after EXISTS.
func (s *psess) run(format string, args ...any) string {
	s.t.Helper()
	cmd := fmt.Sprintf(format, args...)
	r := s.c.do("%s", cmd)
	if !strings.HasPrefix(r.tagged, "OK") {
		s.t.Fatalf("%s: %s: %q (untagged %q)", s.name, cmd, r.tagged, r.untagged)
	}
	s.apply(cmd, r.untagged)
	s.resolve()
	return r.tagged
}

func (s *psess) resolve() {
	s.t.Helper()
	for {
		first := slices.Index(s.uids, 0)
		if first < 0 {
			return
		}
		cmd := fmt.Sprintf("FETCH %d:%d (UID)", first+1, len(s.uids))
		r := s.c.do("%s", cmd)
		if !strings.HasPrefix(r.tagged, "OK") {
			s.t.Fatalf("%s: %s: %q", s.name, cmd, r.tagged)
		}
		s.apply(cmd, r.untagged)
		if s.uids[first] == 0 {
			s.t.Fatalf("%s: %s did not return the UID of %d: %q", s.name, cmd, first+1, r.untagged)
		}
	}
}

// check: after NOOP the session has been told everything, so its model
// must be the store's mailbox, and the server must agree with it.
func (s *psess) check(h *harness, rng *rand.Rand) {
	s.t.Helper()
	s.run("NOOP")
	want := h.storeUIDs(alice, s.mailbox)
	if !slices.Equal(s.uids, want) {
		s.t.Fatalf("%s: after NOOP the session knows %v, the store has %v", s.name, s.uids, want)
	}
	r := s.c.do("UID FETCH 1:* (UID)")
	var got []uint32
	for i, l := range r.untagged {
		m := fetchUIDRE.FindStringSubmatch(l)
		if m == nil {
			s.t.Fatalf("%s: UID FETCH 1:*: unexpected %q", s.name, l)
		}
		n, _ := strconv.Atoi(m[1])
		u, _ := strconv.ParseUint(m[2], 10, 32)
		if n != i+1 {
			s.t.Fatalf("%s: UID FETCH 1:*: %q at position %d", s.name, l, i+1)
		}
		got = append(got, uint32(u))
	}
	if len(want) == 0 && len(got) == 0 {
		// "1:*" in an empty mailbox: nothing to say either way.
	} else if !slices.Equal(got, s.uids) {
		s.t.Fatalf("%s: UID FETCH 1:* says %v, the model %v", s.name, got, s.uids)
	}
	r = s.c.do("SEARCH ALL")
	wantSearch := "* SEARCH"
	for i := range s.uids {
		wantSearch += " " + strconv.Itoa(i+1)
	}
	if len(r.untagged) != 1 || r.untagged[0] != wantSearch || !strings.HasPrefix(r.tagged, "OK") {
		s.t.Fatalf("%s: SEARCH ALL: %q %q, want %q", s.name, r.untagged, r.tagged, wantSearch)
	}
	if len(s.uids) > 0 {
		n := 1 + rng.Intn(len(s.uids))
		r := s.c.do("FETCH %d (UID)", n)
		want := fmt.Sprintf("* %d FETCH (UID %d", n, s.uids[n-1])
		if len(r.untagged) != 1 || !strings.HasPrefix(r.untagged[0], want) {
			s.t.Fatalf("%s: FETCH %d (UID): %q, want %s...)", s.name, n, r.untagged, want)
		}
	}
}

// seqRange picks 1-3 adjacent sequence numbers the session knows.
func (s *psess) seqRange(rng *rand.Rand) string {
	a := 1 + rng.Intn(len(s.uids))
	b := min(len(s.uids), a+rng.Intn(3))
	if a == b {
		return strconv.Itoa(a)
	}
	return fmt.Sprintf("%d:%d", a, b)
}

// TestInterleavedSessions: random interleavings of APPEND, STORE, EXPUNGE,
// UID EXPUNGE, MOVE, COPY and NOOP by three sessions (two on INBOX, one of
// them with QRESYNC so it hears VANISHED; one on Archive) keep every
// session's sequence numbers and UIDs consistent with what it was told and,
// after NOOP, with the store.
func TestInterleavedSessions(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			interleave(t, seed, 200)
		})
	}
}

func interleave(t *testing.T, seed int64, steps int) {
	h := start(t)
	rng := rand.New(rand.NewSource(seed))
	n := 0
	msg := func() string { n++; return testMsg(n) }
	h.add(alice, "INBOX", msg(), msg(), msg(), msg(), msg())
	h.add(alice, "Archive", msg(), msg())
	open := func(name, mailbox string, qresync bool) *psess {
		s := &psess{t: t, name: name, c: h.login(t, alice), mailbox: mailbox, qresync: qresync}
		if qresync {
			s.c.ok("ENABLE QRESYNC")
		}
		s.run("SELECT %s", mailbox)
		s.check(h, rng)
		return s
	}
	sessions := []*psess{open("s1", "INBOX", false), open("s2", "INBOX", true), open("s3", "Archive", false)}
	other := func(s *psess) string {
		if s.mailbox == "INBOX" {
			return "Archive"
		}
		return "INBOX"
	}
	flags := []string{`\Seen`, `\Flagged`, `\Answered`, `$Label1`, `\Seen $Label2`}
	for step := range steps {
		s := sessions[rng.Intn(len(sessions))]
		op := rng.Intn(10)
		if len(s.uids) == 0 && op >= 2 && op <= 8 {
			op = 0
		}
		switch op {
		case 0: // APPEND to its own mailbox or the other one
			to := s.mailbox
			if rng.Intn(3) == 0 {
				to = other(s)
			}
			m := msg()
			tag := s.c.nextTag()
			s.c.write(fmt.Sprintf("%s APPEND %s {%d+}\r\n%s\r\n", tag, to, len(m), m))
			r := s.c.until(tag)
			if !strings.HasPrefix(r.tagged, "OK [APPENDUID ") {
				t.Fatalf("step %d: %s: APPEND: %q", step, s.name, r.tagged)
			}
			s.apply("APPEND", r.untagged)
			s.resolve()
		case 1:
			s.check(h, rng)
		case 2: // STORE +FLAGS / -FLAGS
			sign := "+-"[rng.Intn(2)]
			silent := []string{"", ".SILENT"}[rng.Intn(2)]
			s.run("STORE %s %cFLAGS%s (%s)", s.seqRange(rng), sign, silent, flags[rng.Intn(len(flags))])
		case 3: // UID STORE
			s.run("UID STORE %d %cFLAGS (%s)", s.uids[rng.Intn(len(s.uids))], "+-"[rng.Intn(2)], flags[rng.Intn(len(flags))])
		case 4: // \Deleted + EXPUNGE
			s.run(`STORE %s +FLAGS.SILENT (\Deleted)`, s.seqRange(rng))
			s.run("EXPUNGE")
		case 5: // UID STORE \Deleted + UID EXPUNGE of just those
			u := s.uids[rng.Intn(len(s.uids))]
			s.run(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u)
			s.run("UID EXPUNGE %d", u)
		case 6:
			s.run("MOVE %s %s", s.seqRange(rng), other(s))
		case 7:
			s.run("UID MOVE %d %s", s.uids[rng.Intn(len(s.uids))], other(s))
		case 8:
			if rng.Intn(2) == 0 {
				s.run("COPY %s %s", s.seqRange(rng), other(s))
			} else {
				s.run("UID COPY %d:* %s", s.uids[rng.Intn(len(s.uids))], other(s))
			}
		case 9: // somebody else's \Deleted is expunged by this EXPUNGE too
			s.run("NOOP")
		}
	}
	for _, s := range sessions {
		s.check(h, rng)
	}
}
