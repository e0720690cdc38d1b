package imapwire

import (
	"reflect"
	"slices"
	"testing"
)

func TestParseSeqSet(t *testing.T) {
	tests := []struct{ in, out string }{
		{"1", "1"},
		{"2,4:7,9,12:*", "2,4:7,9,12:*"},
		{"*:4,5:7", "5:7,4:*"}, // RFC 9051 9: "*:4" is 4 to the largest; "*" may be below 5
		{"1:5,3:10", "1:10"},
		{"1,2,3,5", "1:3,5"},
		{"7:2", "2:7"},
		{"4:*,2:*,*,*:4", "2:*,4:*,*"},
		{"*", "*"},
		{"$", "$"},
		{"$,1:3", "1:3,$"},
		{"1:3,$", "1:3,$"},
		{"1:4294967295", "1:4294967295"},
		{"4294967295,1", "1,4294967295"},
		{"41,43:211,214:541", "41,43:211,214:541"},
	}
	for _, tc := range tests {
		s, err := ParseSeqSet(tc.in)
		if err != nil || s.String() != tc.out {
			t.Errorf("%q: got %q, %v; want %q", tc.in, s, err, tc.out)
			continue
		}
		again, err := ParseSeqSet(s.String())
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Errorf("%q: round trip %v, %v", tc.in, again, err)
		}
	}
	for _, bad := range []string{"", "0", "01", "1:", ":1", "1,,2", ",1", "1,", "a", "1:2:3", "4294967296", "1:0", "-1", "$:1", " 1", "**"} {
		if s, err := ParseSeqSet(bad); err == nil {
			t.Errorf("%q: accepted as %v", bad, s)
		}
	}
}

func collect(s SeqSet, count uint32) []uint32 { return slices.Collect(s.Seqs(count)) }

func TestSeqSetExpand(t *testing.T) {
	if got := collect(mustSeq("1:4294967295"), 10); !slices.Equal(got, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("1:4294967295 in 10: %v", got)
	}
	if got := collect(mustSeq("*:4,2"), 6); !slices.Equal(got, []uint32{2, 4, 5, 6}) {
		t.Errorf("*:4,2 in 6: %v", got)
	}
	if got := collect(mustSeq("*"), 0); len(got) != 0 {
		t.Errorf("* in an empty mailbox: %v", got)
	}
	if got := collect(mustSeq("4294967295"), 4294967295); !slices.Equal(got, []uint32{4294967295}) {
		t.Errorf("max: %v", got)
	}
	// Stops early when the consumer stops.
	for n := range mustSeq("1:4294967295").Seqs(4294967295) {
		if n == 3 {
			break
		}
	}

	uids := []uint32{3, 5, 100, 3291, 5000}
	match := func(set string) []uint32 {
		var out []uint32
		for i, u := range mustSeq(set).MatchUIDs(uids) {
			if uids[i] != u {
				t.Fatalf("index %d is %d, not %d", i, uids[i], u)
			}
			out = append(out, u)
		}
		return out
	}
	for _, tc := range []struct {
		set  string
		want []uint32
	}{
		{"1:4294967295", uids},
		{"3291:*", []uint32{3291, 5000}},
		{"6000:*", []uint32{5000}}, // RFC 9051 9: includes the last UID even if less than 6000
		{"*", []uint32{5000}},
		{"4,6:99", nil},
		{"5,100:3291", []uint32{5, 100, 3291}},
	} {
		if got := match(tc.set); !slices.Equal(got, tc.want) {
			t.Errorf("MatchUIDs(%s) = %v, want %v", tc.set, got, tc.want)
		}
	}
	if n := 0; true {
		for range mustSeq("1:*").MatchUIDs(nil) {
			n++
		}
		if n != 0 {
			t.Errorf("empty mailbox matched %d", n)
		}
	}

	s := mustSeq("2,4:7,12:*")
	for _, tc := range []struct {
		n, star uint32
		want    bool
	}{{2, 15, true}, {3, 15, false}, {13, 15, true}, {16, 15, false}, {11, 10, true}, {12, 10, true}, {9, 10, false}, {0, 10, false}} {
		if s.Contains(tc.n, tc.star) != tc.want {
			t.Errorf("Contains(%d, *=%d) != %v", tc.n, tc.star, tc.want)
		}
	}
	if got := s.Largest(15); got != 15 {
		t.Errorf("Largest: %d", got)
	}
	if got := s.Largest(3); got != 12 {
		t.Errorf("Largest with a small *: %d", got)
	}
	if got := s.Resolve(10).String(); got != "2,4:7,10:12" {
		t.Errorf("Resolve: %s", got)
	}
	if got := mustSeq("1:3").Union(SeqSet{Saved: true}).Union(mustSeq("4,9")).String(); got != "1:4,9,$" {
		t.Errorf("Union: %s", got)
	}
	if got := SeqSetOf(304, 319, 320, 1, 2, 2).String(); got != "1:2,304,319:320" {
		t.Errorf("SeqSetOf: %s", got)
	}
	if !mustSeq("1:5").Static() || mustSeq("1:*").Static() || (SeqSet{Saved: true}).Static() || !(SeqSet{}).IsEmpty() {
		t.Error("Static/IsEmpty")
	}
}
