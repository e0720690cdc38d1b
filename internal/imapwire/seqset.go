package imapwire

import (
	"errors"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Star is the value of "*" in a SeqRange: the largest number in use (RFC 9051 9 seq-number).
// Zero is never a valid sequence number or UID (nz-number), so it can stand for it.
const Star uint32 = 0

// SeqRange is seq-number or seq-range (RFC 9051 9). A single number n is {n, n}. In a normalised
// SeqSet, Start <= Stop with "*" counted as the largest, so "*:4" is {4, Star}.
type SeqRange struct {
	Start, Stop uint32
}

// SeqSet is a sequence-set (RFC 9051 9) of message sequence numbers or UIDs, normalised: Ranges
// holds the ranges of plain numbers first, ascending, with overlapping and adjacent ones merged,
// then the ranges that involve "*", ascending by Start and without duplicates. Ranges with "*"
// are never merged with others: "*" may be smaller than the numbers around it (RFC 9051 9:
// "3291:* includes the UID of the last message in the mailbox, even if that value is less than
// 3291"). The zero SeqSet is empty; a parsed one never is.
type SeqSet struct {
	Ranges []SeqRange
	// Saved is "$", the result saved by the last SEARCH RETURN (SAVE) (RFC 5182 2.1): the server
	// adds its saved set (Union) before using the others.
	Saved bool
}

var errSeqSet = errors.New("imapwire: invalid sequence set")

// ParseSeqSet parses a sequence-set: RFC 9051 9 sequence-set = (seq-number / seq-range)
// ["," sequence-set], with RFC 5182 3 sequence-set =/ seq-last-command ("$").
func ParseSeqSet(s string) (SeqSet, error) {
	var set SeqSet
	if s == "" {
		return set, errSeqSet
	}
	for len(s) > 0 {
		elem := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			elem, s = s[:i], s[i+1:]
			if s == "" {
				return SeqSet{}, errSeqSet
			}
		} else {
			s = ""
		}
		if elem == "$" {
			set.Saved = true
			continue
		}
		a, b, isRange := strings.Cut(elem, ":")
		start, ok := parseSeqNumber(a)
		if !ok {
			return SeqSet{}, errSeqSet
		}
		stop := start
		if isRange {
			if stop, ok = parseSeqNumber(b); !ok {
				return SeqSet{}, errSeqSet
			}
		}
		set.Ranges = append(set.Ranges, SeqRange{start, stop})
	}
	set.normalise()
	return set, nil
}

// seq-number = nz-number / "*"
func parseSeqNumber(s string) (uint32, bool) {
	if s == "*" {
		return Star, true
	}
	if s == "" || s[0] == '0' {
		return 0, false
	}
	n, ok := parseUint([]byte(s), maxNumber)
	return uint32(n), ok
}

// less orders with "*" above every number.
func seqLess(a, b uint32) bool {
	if a == Star {
		return false
	}
	return b == Star || a < b
}

func (s *SeqSet) normalise() {
	rs := s.Ranges
	for i, r := range rs {
		if seqLess(r.Stop, r.Start) {
			rs[i] = SeqRange{r.Stop, r.Start}
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if (a.Stop == Star) != (b.Stop == Star) {
			return b.Stop == Star
		}
		if a.Start != b.Start {
			return seqLess(a.Start, b.Start)
		}
		return seqLess(a.Stop, b.Stop)
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if r.Stop != Star && last.Stop != Star && uint64(r.Start) <= uint64(last.Stop)+1 {
				if r.Stop > last.Stop {
					last.Stop = r.Stop
				}
				continue
			}
			if r == *last {
				continue
			}
		}
		out = append(out, r)
	}
	s.Ranges = out
}

// SeqSetOf returns the normalised set of the given numbers (none may be zero).
func SeqSetOf(nums ...uint32) SeqSet {
	set := SeqSet{Ranges: make([]SeqRange, 0, len(nums))}
	for _, n := range nums {
		set.Ranges = append(set.Ranges, SeqRange{n, n})
	}
	set.normalise()
	return set
}

// IsEmpty reports whether the set has no ranges and no "$".
func (s SeqSet) IsEmpty() bool { return len(s.Ranges) == 0 && !s.Saved }

// Static reports whether the set uses neither "*" nor "$".
func (s SeqSet) Static() bool {
	if s.Saved {
		return false
	}
	for _, r := range s.Ranges {
		if r.Start == Star || r.Stop == Star {
			return false
		}
	}
	return true
}

// String returns the set in wire form: "1:3,7,10:*", "$" after the ranges.
func (s SeqSet) String() string { return string(s.AppendTo(nil)) }

// AppendTo appends the wire form of s to b.
func (s SeqSet) AppendTo(b []byte) []byte {
	for i, r := range s.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNumber(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = appendSeqNumber(b, r.Stop)
		}
	}
	if s.Saved {
		if len(s.Ranges) > 0 {
			b = append(b, ',')
		}
		b = append(b, '$')
	}
	return b
}

func appendSeqNumber(b []byte, n uint32) []byte {
	if n == Star {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(n), 10)
}

// Union returns the normalised union of s and o; Saved if either is.
func (s SeqSet) Union(o SeqSet) SeqSet {
	u := SeqSet{Ranges: append(slices.Clone(s.Ranges), o.Ranges...), Saved: s.Saved || o.Saved}
	u.normalise()
	return u
}

// Resolve replaces "*" by star (the largest sequence number, or the largest UID in use, or for
// an empty mailbox what the server chooses: RFC 9051 9 seq-number) and returns a set of plain
// numbers. "$" is kept: resolve it first with Union. A star of 0 drops the ranges with "*".
func (s SeqSet) Resolve(star uint32) SeqSet {
	out := SeqSet{Ranges: make([]SeqRange, 0, len(s.Ranges)), Saved: s.Saved}
	for _, r := range s.Ranges {
		if r.Start == Star {
			r.Start = star
		}
		if r.Stop == Star {
			r.Stop = star
		}
		if r.Start == 0 || r.Stop == 0 {
			continue
		}
		out.Ranges = append(out.Ranges, r)
	}
	out.normalise()
	return out
}

// Contains reports whether n is in the set when "*" stands for star. "$" is ignored.
func (s SeqSet) Contains(n, star uint32) bool {
	if n == 0 {
		return false
	}
	for _, r := range s.Ranges {
		a, b := r.Start, r.Stop
		if a == Star {
			a = star
		}
		if b == Star {
			b = star
		}
		if a > b {
			a, b = b, a
		}
		if a <= n && n <= b {
			return true
		}
	}
	return false
}

// Largest returns the largest number in the set when "*" stands for star, or 0 for an empty
// set: the server answers BAD when it exceeds the number of messages (RFC 9051 9 seq-number).
func (s SeqSet) Largest(star uint32) uint32 {
	var max uint32
	for _, r := range s.Ranges {
		for _, n := range [2]uint32{r.Start, r.Stop} {
			if n == Star {
				n = star
			}
			max = maxU32(max, n)
		}
	}
	return max
}

func maxU32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// Seqs yields the message sequence numbers of the set in 1..count, ascending and each once, with
// "*" standing for count. It costs O(ranges + count) at most, whatever the ranges ("1:4294967295"
// in a mailbox of 10 messages yields 10 numbers).
func (s SeqSet) Seqs(count uint32) iter.Seq[uint32] {
	r := s.Resolve(count)
	return func(yield func(uint32) bool) {
		for _, rg := range r.Ranges {
			if rg.Start > count {
				return
			}
			stop := min(rg.Stop, count)
			for n := rg.Start; ; n++ {
				if !yield(n) {
					return
				}
				if n == stop {
					break
				}
			}
		}
	}
}

// MatchUIDs yields (index, uid) for every UID of uids (ascending, as the mailbox lists them) that
// is in the set, with "*" standing for the last UID. It never walks a range number by number: each
// range costs a binary search, so "1:4294967295" costs the same as "1:10".
func (s SeqSet) MatchUIDs(uids []uint32) iter.Seq2[int, uint32] {
	var star uint32
	if len(uids) > 0 {
		star = uids[len(uids)-1]
	}
	r := s.Resolve(star)
	return func(yield func(int, uint32) bool) {
		i := 0
		for _, rg := range r.Ranges {
			i += sort.Search(len(uids)-i, func(k int) bool { return uids[i+k] >= rg.Start })
			for ; i < len(uids) && uids[i] <= rg.Stop; i++ {
				if !yield(i, uids[i]) {
					return
				}
			}
		}
	}
}
