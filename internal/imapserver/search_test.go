package imapserver

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// Three messages with distinct flags, dates, headers and body encodings; each test key says which match.
var (
	searchMsgA = crlf(`From: =?iso-8859-1?q?Caf=E9_Owner?= <owner@cafe.example>
To: Alice <alice@example.org>
Cc: bob@example.net
Subject: Quarterly Report
Date: Mon, 11 Mar 2024 01:30:00 +0900
X-Custom: hello value
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

The numbers look GOOD this quarter. Straße.
`)
	searchMsgB = crlf(`From: Dave <dave@example.com>
To: team@example.com
Bcc: secret@example.com
Subject: =?utf-8?b?` + base64.StdEncoding.EncodeToString([]byte("Menu du jour")) + `?=
X-Empty:
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=xx

--xx
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString([]byte("Le caf\xe9 est pr\xeat.\r\n")) + `
--xx
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString([]byte("secretword inside")) + `
--xx--
`)
	searchMsgC = crlf(`From: eve@example.com
Subject: Fwd: stuff
Date: 1 Apr 2024 12:00:00 -0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=yy

--yy
Content-Type: text/plain

See below.
--yy
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>caf=C3=A9 <b>bold</b> and a soft=
 break</p>
--yy
Content-Type: message/rfc822

From: inner@example.com
Subject: Inner topic

nested needle here
--yy--
`)
)

type searchFixture struct {
	f    *fakeStore
	msgs []*msg
	env  *searchEnv
}

func newSearchFixture(t testing.TB) *searchFixture {
	t.Helper()
	f := newFakeStore()
	zone := func(h int) *time.Location { return time.FixedZone("", h*3600) }
	a := f.add(t, 1, 10, []byte(searchMsgA), mailstore.MessageMeta{ModSeq: 5,
		Flags:        mailstore.Flags{System: mailstore.Seen | mailstore.Answered, Keywords: []string{"$Work"}},
		InternalDate: time.Date(2024, 3, 10, 23, 30, 0, 0, zone(-8))}) // 11 Mar in UTC
	b := f.add(t, 2, 20, []byte(searchMsgB), mailstore.MessageMeta{ModSeq: 9,
		Flags:        mailstore.Flags{System: mailstore.Flagged | mailstore.Deleted | mailstore.Draft},
		InternalDate: time.Date(2024, 3, 12, 10, 0, 0, 0, time.UTC)})
	c := f.add(t, 3, 30, []byte(searchMsgC), mailstore.MessageMeta{ModSeq: 12,
		Flags:        mailstore.Flags{Keywords: []string{"Later"}},
		InternalDate: time.Date(2024, 4, 1, 0, 30, 0, 0, zone(2))}) // 31 Mar in UTC
	return &searchFixture{f: f, msgs: []*msg{a, b, c}, env: &searchEnv{MaxSeq: 3, MaxUID: 30, Saved: []uint32{20}}}
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func seqSet(t testing.TB, s string) imapwire.SeqSet {
	t.Helper()
	set, err := imapwire.ParseSeqSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestMatchSearch(t *testing.T) {
	type K = imapwire.SearchKey
	op := func(o imapwire.SearchOp) K { return K{Op: o} }
	str := func(o imapwire.SearchOp, v string) K { return K{Op: o, Value: v} }
	date := func(o imapwire.SearchOp, d time.Time) K { return K{Op: o, Date: d} }
	not := func(k K) K { return K{Op: imapwire.SearchNot, Keys: []K{k}} }
	or := func(a, b K) K { return K{Op: imapwire.SearchOr, Keys: []K{a, b}} }
	and := func(ks ...K) K { return K{Op: imapwire.SearchAnd, Keys: ks} }
	hdr := func(field, v string) K { return K{Op: imapwire.SearchHeader, Field: field, Value: v} }
	uid := func(s string) K { return K{Op: imapwire.SearchUID, Seq: seqSet(t, s)} }
	seq := func(s string) K { return K{Op: imapwire.SearchSeqSet, Seq: seqSet(t, s)} }
	modseq := func(n uint64) K { return K{Op: imapwire.SearchModSeq, Number: n} }

	tests := []struct {
		keys []K
		want string // which of A, B, C match, e.g. "A-C"
	}{
		{[]K{op(imapwire.SearchAll)}, "ABC"},
		{[]K{op(imapwire.SearchAnswered)}, "A--"},
		{[]K{op(imapwire.SearchUnanswered)}, "-BC"},
		{[]K{op(imapwire.SearchDeleted)}, "-B-"},
		{[]K{op(imapwire.SearchUndeleted)}, "A-C"},
		{[]K{op(imapwire.SearchDraft)}, "-B-"},
		{[]K{op(imapwire.SearchUndraft)}, "A-C"},
		{[]K{op(imapwire.SearchFlagged)}, "-B-"},
		{[]K{op(imapwire.SearchUnflagged)}, "A-C"},
		{[]K{op(imapwire.SearchSeen)}, "A--"},
		{[]K{op(imapwire.SearchUnseen)}, "-BC"},
		{[]K{str(imapwire.SearchKeyword, "$work")}, "A--"},
		{[]K{str(imapwire.SearchKeyword, "Later")}, "--C"},
		{[]K{str(imapwire.SearchKeyword, "other")}, "---"},
		{[]K{str(imapwire.SearchUnkeyword, "$Work")}, "-BC"},
		{[]K{op(imapwire.SearchNew)}, "---"},
		{[]K{op(imapwire.SearchOld)}, "ABC"},
		{[]K{op(imapwire.SearchRecent)}, "---"},

		// INTERNALDATE days in their own zone: A is 10 Mar (-0800), C is 1 Apr (+0200).
		{[]K{date(imapwire.SearchBefore, day(2024, 3, 11))}, "A--"},
		{[]K{date(imapwire.SearchBefore, day(2024, 3, 10))}, "---"},
		{[]K{date(imapwire.SearchOn, day(2024, 3, 10))}, "A--"},
		{[]K{date(imapwire.SearchOn, day(2024, 3, 11))}, "---"},
		{[]K{date(imapwire.SearchOn, day(2024, 4, 1))}, "--C"},
		{[]K{date(imapwire.SearchSince, day(2024, 3, 12))}, "-BC"},
		{[]K{date(imapwire.SearchSince, day(2024, 3, 10))}, "ABC"},
		// Date: days in their own zone: A was sent 11 Mar (+0900); B has no Date.
		{[]K{date(imapwire.SearchSentBefore, day(2024, 3, 11))}, "---"},
		{[]K{date(imapwire.SearchSentBefore, day(2024, 3, 12))}, "A--"},
		{[]K{date(imapwire.SearchSentOn, day(2024, 3, 11))}, "A--"},
		{[]K{date(imapwire.SearchSentOn, day(2024, 3, 10))}, "---"},
		{[]K{date(imapwire.SearchSentSince, day(2024, 4, 1))}, "--C"},
		{[]K{date(imapwire.SearchSentSince, day(2024, 4, 2))}, "---"},
		{[]K{not(date(imapwire.SearchSentOn, day(2024, 3, 11)))}, "-BC"},

		// RFC 7162 3.1.5: MODSEQ >= value; entry names do not change the answer.
		{[]K{modseq(9)}, "-BC"},
		{[]K{modseq(10)}, "--C"},
		{[]K{modseq(13)}, "---"},
		{[]K{{Op: imapwire.SearchModSeq, Number: 5, ModSeqEntry: `/flags/\draft`, ModSeqType: "all"}}, "ABC"},

		{[]K{uid("20")}, "-B-"},
		{[]K{uid("25:*")}, "--C"},
		{[]K{uid("*")}, "--C"},
		{[]K{uid("31:*")}, "--C"}, // RFC 9051 9: "*" is the largest UID even below the range start
		{[]K{uid("$")}, "-B-"},
		{[]K{uid("1:15,$")}, "AB-"},
		{[]K{uid("11:19")}, "---"},
		{[]K{seq("2")}, "-B-"},
		{[]K{seq("*")}, "--C"},
		{[]K{seq("2:*")}, "-BC"},
		{[]K{seq("$")}, "-B-"},
		{[]K{seq("1,$")}, "AB-"},

		{[]K{str(imapwire.SearchFrom, "café")}, "A--"}, // RFC 2047 decoded
		{[]K{str(imapwire.SearchFrom, "CAFÉ OWNER")}, "A--"},
		{[]K{str(imapwire.SearchFrom, "Cafe.Example")}, "A--"},
		{[]K{str(imapwire.SearchFrom, "example")}, "ABC"},
		{[]K{str(imapwire.SearchFrom, "nobody")}, "---"},
		{[]K{str(imapwire.SearchFrom, "inner@")}, "---"}, // a header of the attached message is not the From
		{[]K{str(imapwire.SearchTo, "alice")}, "A--"},
		{[]K{str(imapwire.SearchTo, "team@")}, "-B-"},
		{[]K{str(imapwire.SearchTo, "")}, "AB-"}, // C has no To
		{[]K{str(imapwire.SearchCc, "BOB")}, "A--"},
		{[]K{str(imapwire.SearchBcc, "secret")}, "-B-"},
		{[]K{str(imapwire.SearchSubject, "quarterly")}, "A--"},
		{[]K{str(imapwire.SearchSubject, "menu du")}, "-B-"},
		{[]K{str(imapwire.SearchSubject, "inner")}, "---"},
		{[]K{hdr("X-Empty", "")}, "-B-"}, // RFC 9051 6.4.4: empty string, any message with the field
		{[]K{hdr("x-custom", "VALUE")}, "A--"},
		{[]K{hdr("X-Custom", "nomatch")}, "---"},
		{[]K{hdr("subject", "")}, "ABC"},
		{[]K{hdr("X-Missing", "")}, "---"},

		{[]K{str(imapwire.SearchBody, "café est prêt")}, "-B-"}, // base64 ISO-8859-1 text
		{[]K{str(imapwire.SearchBody, "CAFÉ EST")}, "-B-"},
		{[]K{str(imapwire.SearchBody, "secretword")}, "---"}, // not a text part
		{[]K{str(imapwire.SearchBody, "nested needle")}, "--C"},
		{[]K{str(imapwire.SearchBody, "inner topic")}, "--C"},  // header of an attached message is body text
		{[]K{str(imapwire.SearchBody, "quarterly")}, "---"},    // the subject is not body
		{[]K{str(imapwire.SearchBody, "STRASSE")}, "A--"},      // Unicode folding: ß is ss
		{[]K{str(imapwire.SearchBody, "café <b>bold")}, "--C"}, // quoted-printable UTF-8
		{[]K{str(imapwire.SearchBody, "soft break")}, "--C"},   // soft line break removed
		{[]K{str(imapwire.SearchBody, "")}, "ABC"},
		{[]K{str(imapwire.SearchText, "quarterly")}, "A--"},
		{[]K{str(imapwire.SearchText, "x-custom: hello")}, "A--"},
		{[]K{str(imapwire.SearchText, "café owner")}, "A--"},
		{[]K{str(imapwire.SearchText, "nested")}, "--C"},
		{[]K{str(imapwire.SearchText, "prêt")}, "-B-"},
		{[]K{str(imapwire.SearchText, "zzz")}, "---"},

		{[]K{not(op(imapwire.SearchSeen))}, "-BC"},
		{[]K{or(op(imapwire.SearchSeen), op(imapwire.SearchDraft))}, "AB-"},
		{[]K{or(str(imapwire.SearchFrom, "nobody"), str(imapwire.SearchBody, "needle"))}, "--C"},
		{[]K{and(op(imapwire.SearchSeen), str(imapwire.SearchKeyword, "$Work"))}, "A--"},
		{[]K{and(op(imapwire.SearchSeen), op(imapwire.SearchDraft))}, "---"},
		{[]K{op(imapwire.SearchUnseen), str(imapwire.SearchFrom, "example.com")}, "-BC"},
		{[]K{op(imapwire.SearchUnseen), not(or(uid("20"), str(imapwire.SearchSubject, "fwd")))}, "---"},
		{[]K{not(and(op(imapwire.SearchUndeleted), str(imapwire.SearchText, "needle")))}, "AB-"},
	}
	for _, tc := range tests {
		fx := newSearchFixture(t)
		var got strings.Builder
		for i, m := range fx.msgs {
			ok, err := matchSearch(context.Background(), tc.keys, m, fx.env)
			if err != nil {
				t.Fatalf("%v: %v", tc.keys, err)
			}
			if ok {
				got.WriteByte("ABC"[i])
			} else {
				got.WriteByte('-')
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if got.String() != tc.want {
			t.Errorf("SEARCH %s: matched %s, want %s", keysString(tc.keys), got.String(), tc.want)
		}
		if fx.f.opens != fx.f.closes {
			t.Errorf("SEARCH %s: %d bodies opened, %d closed", keysString(tc.keys), fx.f.opens, fx.f.closes)
		}
	}
}

func keysString(keys []imapwire.SearchKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return strings.Join(s, " ")
}

func TestMatchSearchSizes(t *testing.T) {
	fx := newSearchFixture(t)
	a := fx.msgs[0]
	n := uint64(a.Meta.Size)
	tests := []struct {
		k    imapwire.SearchKey
		want bool
	}{
		{imapwire.SearchKey{Op: imapwire.SearchLarger, Number: n - 1}, true},
		{imapwire.SearchKey{Op: imapwire.SearchLarger, Number: n}, false}, // strictly larger
		{imapwire.SearchKey{Op: imapwire.SearchSmaller, Number: n + 1}, true},
		{imapwire.SearchKey{Op: imapwire.SearchSmaller, Number: n}, false},
		{imapwire.SearchKey{Op: imapwire.SearchSmaller, Number: 0}, false},
		{imapwire.SearchKey{Op: imapwire.SearchLarger, Number: 1 << 62}, false},
	}
	for _, tc := range tests {
		got, err := matchSearch(context.Background(), []imapwire.SearchKey{tc.k}, a, fx.env)
		if err != nil || got != tc.want {
			t.Errorf("%s on a %d-octet message: %v, %v; want %v", tc.k, n, got, err, tc.want)
		}
	}
	if fx.f.reads != 0 {
		t.Errorf("size keys read the store %d times", fx.f.reads)
	}
}

func TestMatchSearchNoSavedResult(t *testing.T) {
	fx := newSearchFixture(t)
	fx.env.Saved = nil
	for _, s := range []string{"$"} {
		for _, op := range []imapwire.SearchOp{imapwire.SearchUID, imapwire.SearchSeqSet} {
			k := imapwire.SearchKey{Op: op, Seq: seqSet(t, s)}
			for _, m := range fx.msgs {
				if ok, err := matchSearch(context.Background(), []imapwire.SearchKey{k}, m, fx.env); ok || err != nil {
					t.Errorf("%s with nothing saved matched UID %d (%v)", k, m.Meta.UID, err)
				}
			}
		}
	}
}

// TestMatchSearchLoadsLazily checks that metadata keys never read the store and are tried before keys that do.
func TestMatchSearchLoadsLazily(t *testing.T) {
	type K = imapwire.SearchKey
	tests := []struct {
		keys          []K
		reads, opens  int
		structure, bd bool
	}{
		{[]K{{Op: imapwire.SearchSeen}, {Op: imapwire.SearchUID, Seq: imapwire.SeqSetOf(10)}, {Op: imapwire.SearchModSeq, Number: 1}}, 0, 0, false, false},
		// The flag key fails first, even though it comes second.
		{[]K{{Op: imapwire.SearchBody, Value: "x"}, {Op: imapwire.SearchDraft}}, 0, 0, true, true},
		{[]K{{Op: imapwire.SearchSubject, Value: "quarterly"}}, 1, 1, true, false},
		{[]K{{Op: imapwire.SearchNot, Keys: []K{{Op: imapwire.SearchOr, Keys: []K{{Op: imapwire.SearchSeen}, {Op: imapwire.SearchText, Value: "x"}}}}}}, 0, 0, true, true},
		{[]K{{Op: imapwire.SearchAnd, Keys: []K{{Op: imapwire.SearchSentOn, Date: day(2024, 3, 11)}}}}, 1, 1, true, false},
	}
	for _, tc := range tests {
		fx := newSearchFixture(t)
		a := fx.msgs[0] // seen, not a draft
		if _, err := matchSearch(context.Background(), tc.keys, a, fx.env); err != nil {
			t.Fatal(err)
		}
		a.Close()
		if fx.f.reads != tc.reads || fx.f.opens != tc.opens {
			t.Errorf("%s: %d store reads, %d body opens; want %d, %d", keysString(tc.keys), fx.f.reads, fx.f.opens, tc.reads, tc.opens)
		}
		if got := searchNeedsStructure(tc.keys); got != tc.structure {
			t.Errorf("searchNeedsStructure(%s) = %v", keysString(tc.keys), got)
		}
		if got := searchNeedsBody(tc.keys); got != tc.bd {
			t.Errorf("searchNeedsBody(%s) = %v", keysString(tc.keys), got)
		}
	}
}

// TestMatchSearchBodyCache checks that a second body key reuses the decoded text of the first.
func TestMatchSearchBodyCache(t *testing.T) {
	fx := newSearchFixture(t)
	c := fx.msgs[2]
	defer c.Close()
	keys := []imapwire.SearchKey{{Op: imapwire.SearchBody, Value: "see below"}}
	if ok, err := matchSearch(context.Background(), keys, c, fx.env); !ok || err != nil {
		t.Fatalf("first key: %v, %v", ok, err)
	}
	if len(c.texts) != 1 || len(c.textNext) != 3 {
		t.Errorf("after a match in the first part: %d texts decoded, %d left; want 1, 3", len(c.texts), len(c.textNext))
	}
	keys[0].Value = "nested needle"
	if ok, err := matchSearch(context.Background(), keys, c, fx.env); !ok || err != nil {
		t.Fatalf("second key: %v, %v", ok, err)
	}
	if len(c.texts) != 4 || len(c.textNext) != 0 {
		t.Errorf("after the last part: %d texts, %d left; want 4, 0", len(c.texts), len(c.textNext))
	}
}

func TestMatchSearchCorpusCharsets(t *testing.T) {
	// Real messages: ISO-2022-JP and ks_c_5601-1987 bodies are converted before matching.
	tests := []struct {
		name, needle string
		want         bool
	}{
		{"025-ew-b-iso2022jp", "日本語が", true},
		{"025-ew-b-iso2022jp", "テスト.", true},
		{"025-ew-b-iso2022jp", "日本語が正常", false}, // a line break lies between
		{"040-8bit-ks-c-5601", "스티해", true},
		{"009-mixed-b64-attachment", "THIS IS THE MESSAGE BODY", true},
		{"009-mixed-b64-attachment", "base64 encoded attachment", false}, // application/octet-stream
		{"016-embedded-message", "embedded message body", true},
		{"016-embedded-message", "subject: embedded message", true}, // the attached message's header
		{"016-embedded-message", "nowhere", false},
	}
	for _, tc := range tests {
		f := newFakeStore()
		m := f.add(t, 1, 1, readCorpus(t, tc.name), mailstore.MessageMeta{})
		ok, err := matchSearch(context.Background(), []imapwire.SearchKey{{Op: imapwire.SearchBody, Value: tc.needle}}, m, &searchEnv{MaxSeq: 1, MaxUID: 1})
		m.Close()
		if err != nil || ok != tc.want {
			t.Errorf("%s BODY %q: %v, %v; want %v", tc.name, tc.needle, ok, err, tc.want)
		}
	}
}

func TestMatchSearchErrors(t *testing.T) {
	f := newFakeStore()
	gone := newMsg(f, 1, 1, mailstore.MessageMeta{UID: 5, ModSeq: 1})
	_, err := matchSearch(context.Background(), []imapwire.SearchKey{{Op: imapwire.SearchFrom, Value: "x"}}, gone, &searchEnv{MaxSeq: 1, MaxUID: 5})
	if err == nil {
		t.Error("FROM on a message the store does not have: no error")
	}
	_, err = matchSearch(context.Background(), []imapwire.SearchKey{{Op: imapwire.SearchOp(200)}}, gone, &searchEnv{})
	if err == nil {
		t.Error("unknown key: no error")
	}
	_, err = matchSearch(context.Background(), []imapwire.SearchKey{{Op: imapwire.SearchNot}}, gone, &searchEnv{})
	if err == nil {
		t.Error("NOT without a key: no error")
	}
}

// TestMatchSearchUnlabelled8bit: 8-bit text without a charset that is not UTF-8 is read as ISO-8859-1, and
// the date of the last Date: field counts, as in ENVELOPE.
func TestMatchSearchUnlabelled8bit(t *testing.T) {
	raw := crlf("Subject: legacy\nDate: Tue, 2 Jan 2024 10:00:00 +0000\nDate: Wed, 3 Jan 2024 10:00:00 +0000\n\nUn caf\xe9 cr\xe8me, and UTF-8 na\u00efve.\n")
	m := newFakeStore().add(t, 1, 1, []byte(raw), mailstore.MessageMeta{})
	defer m.Close()
	env := &searchEnv{MaxSeq: 1, MaxUID: 1}
	tests := []struct {
		k    imapwire.SearchKey
		want bool
	}{
		{imapwire.SearchKey{Op: imapwire.SearchBody, Value: "CAFÉ CRÈME"}, true},
		{imapwire.SearchKey{Op: imapwire.SearchBody, Value: "naïve"}, true},
		{imapwire.SearchKey{Op: imapwire.SearchSentOn, Date: day(2024, 1, 3)}, true},
		{imapwire.SearchKey{Op: imapwire.SearchSentOn, Date: day(2024, 1, 2)}, false},
	}
	for _, tc := range tests {
		if got, err := matchSearch(context.Background(), []imapwire.SearchKey{tc.k}, m, env); err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.k, got, err, tc.want)
		}
	}
}
