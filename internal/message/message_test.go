package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// crlf turns a test message written with "\n" into stored form.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func mustParse(t testing.TB, s string) *Message {
	t.Helper()
	m, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := checkInvariants(m, Limits{}); err != nil {
		t.Fatalf("invariants: %v", err)
	}
	return m
}

// checkInvariants verifies what every caller relies on: offsets inside the message and ordered, children inside
// their parent's body and in order, an encapsulated message filling its part's body, at least one child per
// multipart, an envelope on every message root, and the limits respected.
func checkInvariants(m *Message, lim Limits) error {
	lim = lim.withDefaults()
	if m.Root == nil || m.Root.Envelope == nil {
		return errors.New("root or its envelope missing")
	}
	if m.Root.HeaderStart != 0 || m.Root.End != m.Size {
		return fmt.Errorf("root spans [%d,%d), message is %d", m.Root.HeaderStart, m.Root.End, m.Size)
	}
	parts := 0
	var walk func(p *Part, depth int, path string) error
	walk = func(p *Part, depth int, path string) error {
		parts++
		if !(0 <= p.HeaderStart && p.HeaderStart <= p.BodyStart && p.BodyStart <= p.End && p.End <= m.Size) {
			return fmt.Errorf("part %s: offsets %d %d %d, size %d", path, p.HeaderStart, p.BodyStart, p.End, m.Size)
		}
		if p.Lines < 0 || p.Lines > p.Size() {
			return fmt.Errorf("part %s: %d lines in %d octets", path, p.Lines, p.Size())
		}
		if depth > lim.MaxDepth {
			return fmt.Errorf("part %s: depth %d past the limit", path, depth)
		}
		if p.Type == "multipart" && len(p.Children) == 0 {
			return fmt.Errorf("part %s: multipart without children", path)
		}
		if p.Type != "multipart" && len(p.Children) > 0 {
			return fmt.Errorf("part %s: %s/%s with children", path, p.Type, p.Subtype)
		}
		prev := p.BodyStart
		for i, c := range p.Children {
			if c.HeaderStart < prev || c.End > p.End {
				return fmt.Errorf("part %s.%d: [%d,%d) outside parent body [%d,%d) or before sibling end %d",
					path, i+1, c.HeaderStart, c.End, p.BodyStart, p.End, prev)
			}
			prev = c.End
			if err := walk(c, depth+1, fmt.Sprintf("%s.%d", path, i+1)); err != nil {
				return err
			}
		}
		if e := p.Encapsulated; e != nil {
			if e.Envelope == nil || e.HeaderStart != p.BodyStart || e.End != p.End {
				return fmt.Errorf("part %s: encapsulated message [%d,%d) does not fill body [%d,%d)",
					path, e.HeaderStart, e.End, p.BodyStart, p.End)
			}
			if err := walk(e, depth+1, path+".M"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(m.Root, 0, "R"); err != nil {
		return err
	}
	// Each multipart may add one placeholder child beyond MaxParts.
	if parts > 2*lim.MaxParts {
		return fmt.Errorf("%d parts, limit %d", parts, lim.MaxParts)
	}
	return nil
}

func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/mime/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestRFC2231Continuations(t *testing.T) {
	msg := crlf(`Content-Type: application/x-stuff;
 title*2="isn't it!";
 title*0*=us-ascii'en'This%20is%20even%20more%20;
 title*1*=%2A%2A%2Afun%2A%2A%2A%20;
 name*0="long";
 name*1="name.txt";
 gap*0=a; gap*2=c;
 plain=x
Content-Disposition: attachment;
 filename*0*=utf-8''%E3%81%8B%E3%81%8D;
 filename*1*=%E3%81%8F.txt;
 size=12

body
`)
	m := mustParse(t, msg)
	p := m.Root
	wantParams := []Param{
		{"plain", "x"},
		{"gap*0", "a"}, {"gap*2", "c"}, // RFC 2231 3: a missing segment; reported as given
		{"name", "longname.txt"},
		// RFC 2231 4.1: segments joined, the plain one's '%' escaped, the value left encoded for BODYSTRUCTURE.
		{"title*", "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!"},
	}
	if !reflect.DeepEqual(p.Params, wantParams) {
		t.Errorf("Params\n got %q\nwant %q", p.Params, wantParams)
	}
	if v, _ := ParamValue(p.Params, "TITLE"); v != "This is even more ***fun*** isn't it!" {
		t.Errorf("title decoded to %q", v)
	}
	if v, _ := ParamValue(p.Params, "name"); v != "longname.txt" {
		t.Errorf("name decoded to %q", v)
	}
	if got := p.Filename(); got != "かきく.txt" {
		t.Errorf("Filename() = %q", got)
	}
	if got, want := string(m.IMAPBodyStructure(true)),
		`("application" "x-stuff" ("plain" "x" "gap*0" "a" "gap*2" "c" "name" "longname.txt" "title*" "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!") NIL NIL "7bit" 6 NIL ("attachment" ("size" "12" "filename*" "utf-8''%E3%81%8B%E3%81%8D%E3%81%8F.txt")) NIL NIL)`; got != want {
		t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, want)
	}

	// A plain first segment after extended ones gets an empty charset'language' prefix.
	params := finishParams(nil, []rfc2231Segment{{name: "f", idx: 0, value: "100%"}, {name: "f", idx: 1, extended: true, value: "%41"}})
	if want := []Param{{"f*", "''100%25%41"}}; !reflect.DeepEqual(params, want) {
		t.Errorf("mixed segments: %q, want %q", params, want)
	}
	if v, _ := ParamValue(params, "f"); v != "100%A" {
		t.Errorf("mixed segments decode to %q", v)
	}
	// Latin-1 in RFC 2231.
	if v := decodeRFC2231("iso-8859-1'fr'caf%E9"); v != "café" {
		t.Errorf("latin-1 value: %q", v)
	}
}

func TestContentTypeLeniency(t *testing.T) {
	for _, tc := range []struct{ in, typ, sub, params string }{
		{`text/plain; charset="utf-8"`, "text", "plain", `[{charset utf-8}]`},
		{`Text/HTML ; CharSet = UTF-8 (comment)`, "text", "html", `[{charset UTF-8}]`},
		{`multipart/alternative; boundary=----=_Part_1`, "multipart", "alternative", `[{boundary ----}]`},
		{`application/pdf; name==?utf-8?B?YS5wZGY=?=`, "application", "pdf", `[{name =?utf-8?B?YS5wZGY=?=}]`},
		{`text/plain; a=1; b; c=3`, "text", "plain", `[{a 1}]`},
		{`text/plain; a="unterminated`, "text", "plain", `[]`},
		{`application-x-gzip; name=a`, "", "", `[]`},
		{`text/`, "", "", `[]`},
		{``, "", "", `[]`},
		{"text/plain;\r\n\tname=\"a\r\n b\"", "text", "plain", `[{name a b}]`},
	} {
		typ, sub, params := parseContentType([]byte(tc.in))
		if got := fmt.Sprint(params); typ != tc.typ || sub != tc.sub || (got != tc.params && !(got == "[]" && tc.params == "[]")) {
			t.Errorf("%q: got %q %q %s, want %q %q %s", tc.in, typ, sub, got, tc.typ, tc.sub, tc.params)
		}
	}
}

func TestDecodeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?caf=C3=A9?=", "café"},
		{"=?ISO-8859-1?Q?Nicolas_Fouch=E9?= <a@b>", "Nicolas Fouché <a@b>"},
		// RFC 2047 6.2: white space between adjacent encoded words is dropped, other text kept.
		{"=?utf-8?q?a?= \r\n =?utf-8?q?b?= c =?utf-8?q?d?=", "ab c d"},
		// A UTF-8 character split across two words (028 in the corpus).
		{"=?utf-8?q?=F0=9F?= =?utf-8?b?l7o=?=", "🗺"},
		{"=?utf-8?b?0J/QntCU?=", "ПОД"},
		// Unknown charset and bad padding: kept as written (029 in the corpus).
		{"=?NONE?B?VEVTVA=?=", "=?NONE?B?VEVTVA=?="},
		{"=?utf-8?B?VEVTVA=?=", "TEST"},
		{"=?utf-8?B?VEVTVA?=", "TEST"},
		{"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
		{"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"},
		{"a =? b ?= c", "a =? b ?= c"},
		// RFC 2231 5 language suffix.
		{"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"},
		{"=?ISO-2022-JP?B?GyRCRnxLXDhsJWEhPCVrJUYlOSVIGyhCICh0ZXN0aW5nIEph?= =?ISO-2022-JP?B?cGFuZXNlIGVtYWlscyk=?=",
			"日本語メールテスト (testing Japanese emails)"},
		{"=?ks_c_5601-1987?B?x9GxuQ==?=", "한국"},
		// Raw 8-bit: UTF-8 kept (RFC 6532), anything else read as Latin-1.
		{"Säying", "Säying"},
		{"GA.com\xf4 x", "GA.comô x"},
	} {
		if got := DecodeText(tc.in); got != tc.want {
			t.Errorf("DecodeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnvelopeGroupsAndAddresses(t *testing.T) {
	msg := crlf(`From: "Doe, John" <john@example.com>, jane@example.org (Jane Roe)
Sender: <@relay.example,@b.example:bounce@example.net>
To: undisclosed-recipients:;
Cc: A Team: alice@example.com, Bob <bob@example.com>;, carol@example.com
Bcc: Big Bug bb@bug.com
Reply-To: <>
Subject: =?utf-8?q?caf=C3=A9?= "quoted" \back
Date:   Mon, 1 Jan 2024 00:00:00 +0000
Message-ID: <id@host>
In-Reply-To: <a@b>
 <c@d>

x
`)
	m := mustParse(t, msg)
	want := `("Mon, 1 Jan 2024 00:00:00 +0000" "=?utf-8?q?caf=C3=A9?= \"quoted\" \\back" ` +
		`(("Doe, John" NIL "john" "example.com")("Jane Roe" NIL "jane" "example.org")) ` +
		`((NIL "@relay.example,@b.example" "bounce" "example.net")) ` +
		`((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ` +
		`((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ` +
		`((NIL NIL "A Team" NIL)(NIL NIL "alice" "example.com")("Bob" NIL "bob" "example.com")(NIL NIL NIL NIL)(NIL NIL "carol" "example.com")) ` +
		`(("Big Bug bb" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ` +
		`"<a@b> <c@d>" "<id@host>")`
	if got := string(m.IMAPEnvelope()); got != want {
		t.Errorf("ENVELOPE\n got %s\nwant %s", got, want)
	}
	e := m.Envelope()
	if !e.To[0].IsGroupStart() || !e.To[1].IsGroupEnd() || e.Cc[1].IsGroupStart() {
		t.Errorf("group markers wrong: %+v %+v", e.To, e.Cc)
	}

	// A repeated field: the last counts, as in Dovecot.
	m = mustParse(t, crlf("Subject: one\nFrom: a@b\nSubject: two\nFrom: c@d\n\n"))
	if e := m.Envelope(); e.Subject != "two" || e.From[0].Mailbox != "c" {
		t.Errorf("repeated fields: %+v", e)
	}

	// Sender and Reply-To default to From (RFC 9051 7.5.2); a missing From leaves all three NIL.
	m = mustParse(t, crlf("From: a@b\nSubject: s\n\nx\n"))
	if got, want := string(m.IMAPEnvelope()), `(NIL "s" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) NIL NIL NIL NIL NIL)`; got != want {
		t.Errorf("defaults\n got %s\nwant %s", got, want)
	}
	// 8-bit and CR/LF-free values: literal for 8-bit, quoted otherwise.
	m = mustParse(t, crlf("Subject: S\xc3\xa4ying\n\n"))
	if got, want := string(m.IMAPEnvelope()), "(NIL {7}\r\nS\xc3\xa4ying NIL NIL NIL NIL NIL NIL NIL NIL)"; got != want {
		t.Errorf("8-bit subject\n got %q\nwant %q", got, want)
	}
}

const nestedMessage = `From: outer@example.com
Subject: outer
Content-Type: multipart/mixed; boundary=out

--out
Content-Type: text/plain

hello
--out
Content-Type: message/rfc822

From: inner@example.com
Subject: inner
Content-Type: multipart/alternative; boundary="in"

--in
Content-Type: text/plain; charset=utf-8

inner text
--in
Content-Type: message/rfc822

Subject: innermost

deep
--in--
--out--
`

func TestNestedMessage(t *testing.T) {
	raw := crlf(nestedMessage)
	m := mustParse(t, raw)
	// The line break before a delimiter is the delimiter's (RFC 2046 5.1.1), but the one ending "--in--" stays
	// in part 2, since no text lies between it and "--out--" (Dovecot's reading, see 020 in the corpus).
	want := `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)` +
		`("message" "rfc822" NIL NIL NIL "7bit" 230 (NIL "inner" ((NIL NIL "inner" "example.com")) ((NIL NIL "inner" "example.com")) ((NIL NIL "inner" "example.com")) NIL NIL NIL NIL NIL) ` +
		`(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)` +
		`("message" "rfc822" NIL NIL NIL "7bit" 26 (NIL "innermost" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)` +
		` "alternative" ("boundary" "in") NIL NIL NIL) 15 NIL NIL NIL NIL)` +
		` "mixed" ("boundary" "out") NIL NIL NIL)`
	if got := string(m.IMAPBodyStructure(true)); got != want {
		t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct{ spec, want string }{
		{"1", "hello"},
		{"2.HEADER", "From: inner@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"in\"\r\n\r\n"},
		{"2.HEADER.FIELDS (subject)", "Subject: inner\r\n\r\n"},
		{"2.HEADER.FIELDS.NOT (subject content-type)", "From: inner@example.com\r\n\r\n"},
		{"2.1", "inner text"},
		{"2.1.MIME", "Content-Type: text/plain; charset=utf-8\r\n\r\n"},
		{"2.2.HEADER", "Subject: innermost\r\n\r\n"},
		{"2.2.TEXT", "deep"},
		{"2.2.1", "deep"},
		{"2.2.1.MIME", "Subject: innermost\r\n\r\n"},
		{"2.TEXT", "--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ninner text\r\n--in\r\nContent-Type: message/rfc822\r\n\r\nSubject: innermost\r\n\r\ndeep\r\n--in--\r\n"},
	} {
		if got := sectionBytes(t, m, raw, tc.spec); got != tc.want {
			t.Errorf("BODY[%s] = %q, want %q", tc.spec, got, tc.want)
		}
	}
	for _, spec := range []string{"3", "1.1", "1.HEADER", "2.3", "2.2.2", "2.1.TEXT"} {
		sec, err := ParseSection(spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Section(sec); !errors.Is(err, ErrNoPart) {
			t.Errorf("BODY[%s]: err %v, want ErrNoPart", spec, err)
		}
	}
}

func sectionBytes(t *testing.T, m *Message, raw, spec string) string {
	t.Helper()
	sec, err := ParseSection(spec)
	if err != nil {
		t.Fatalf("ParseSection(%q): %v", spec, err)
	}
	span, err := m.Section(sec)
	if err != nil {
		t.Fatalf("Section(%q): %v", spec, err)
	}
	b := []byte(raw[span.Start:span.End])
	if span.Filter {
		b = sec.Filter(b)
	}
	return string(b)
}

func TestMultipartWithoutBoundary(t *testing.T) {
	for _, tc := range []struct{ name, msg string }{
		{"no boundary parameter", "Content-Type: multipart/mixed\n\ntext\n"},
		{"boundary never met", "Content-Type: multipart/mixed; boundary=x\n\ntext\n--y\n"},
		{"empty body", "Content-Type: multipart/mixed; boundary=x\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := crlf(tc.msg)
			m := mustParse(t, raw)
			bs := string(m.IMAPBodyStructure(false))
			if want := `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")`; bs != want {
				t.Errorf("BODY %s, want %s", bs, want)
			}
			if got := sectionBytes(t, m, raw, "TEXT"); got != raw[strings.Index(raw, "\r\n\r\n")+4:] {
				t.Errorf("TEXT lost the body: %q", got)
			}
			if got := sectionBytes(t, m, raw, "1"); got != "" {
				t.Errorf("BODY[1] = %q, want the empty placeholder", got)
			}
		})
	}
}

func TestBoundaryEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name, msg, body string
		sections        map[string]string
	}{
		{
			name:     "bare LF and no final newline",
			msg:      "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\nContent-Type: text/plain\n\none\n--b\n\ntwo\n--b--",
			body:     `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0) "mixed")`,
			sections: map[string]string{"1": "one", "2": "two", "2.MIME": "\n", "1.MIME": "Content-Type: text/plain\n\n"},
		},
		{
			name:     "trailing white space after boundary and epilogue",
			msg:      crlf("Content-Type: multipart/mixed; boundary=b\n\n--b \nX: y\n\na\nb\n--b--  \nepilogue\n"),
			body:     `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1) "mixed")`,
			sections: map[string]string{"1": "a\r\nb", "1.MIME": "X: y\r\n\r\n"},
		},
		{
			name:     "header ended by a boundary",
			msg:      crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b\n\nx\n--b--\n"),
			body:     `(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 0 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) "mixed")`,
			sections: map[string]string{"1": "", "2": "x", "1.MIME": "Content-Type: text/html"},
		},
		{
			name:     "outer boundary closes inner multipart",
			msg:      crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--o\n\nb\n--o--\n"),
			body:     `((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) "alternative")("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) "mixed")`,
			sections: map[string]string{"1.1": "a", "2": "b", "1": "--i\r\n\r\na"},
		},
		{
			name:     "digest defaults to message/rfc822",
			msg:      crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d\nContent-Type: text/plain\n\nplain\n--d--\n"),
			body:     `(("message" "rfc822" NIL NIL NIL "7bit" 20 (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0) 2)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) "digest")`,
			sections: map[string]string{"1.1": "body", "1.HEADER": "Subject: one\r\n\r\n", "2": "plain"},
		},
		{
			// RFC 2046 5.2.1 forbids it; read as a message all the same (Dovecot), keeping the msg form.
			name:     "base64 message/rfc822",
			msg:      crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA0KDQp4\n"),
			body:     `("message" "rfc822" NIL NIL NIL "base64" 22 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 1)`,
			sections: map[string]string{"1": "U3ViamVjdDogeA0KDQp4\r\n", "1.HEADER": "U3ViamVjdDogeA0KDQp4\r\n"},
		},
		{
			// RFC 2045 4: without MIME-Version or Content-Type a message is not MIME; its Content-* fields are ignored.
			name: "non-MIME root",
			msg:  crlf("Content-Transfer-Encoding: base64\nContent-Description: d\n\nx\n"),
			body: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1)`,
		},
		{
			name: "MIME-Version makes Content-* count; junk after the encoding voids it",
			msg:  crlf("MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit junk\nContent-Description: d\n\nx\n"),
			body: `("text" "plain" ("charset" "us-ascii") NIL "d" "7bit" 3 1)`,
		},
		{
			name: "multipart children are MIME without MIME-Version",
			msg:  crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: Base64\n\neA==\n--b--\n"),
			body: `(("text" "plain" ("charset" "us-ascii") NIL NIL "base64" 4 0) "mixed")`,
		},
		{
			name:     "empty message",
			msg:      "",
			body:     `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)`,
			sections: map[string]string{"": "", "HEADER": "", "TEXT": "", "1": ""},
		},
		{
			name:     "header only, no blank line",
			msg:      "Subject: x\r\nFrom: a@b",
			body:     `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)`,
			sections: map[string]string{"HEADER": "Subject: x\r\nFrom: a@b", "HEADER.FIELDS (FROM)": "From: a@b\r\n\r\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.msg)
			if got := string(m.IMAPBodyStructure(false)); got != tc.body {
				t.Errorf("BODY\n got %s\nwant %s", got, tc.body)
			}
			for spec, want := range tc.sections {
				if got := sectionBytes(t, m, tc.msg, spec); got != want {
					t.Errorf("BODY[%s] = %q, want %q", spec, got, want)
				}
			}
		})
	}
}

func TestLimits(t *testing.T) {
	// Nesting past MaxDepth: the deepest multipart is a leaf, offsets stay exact.
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	b.WriteString("--b9\r\n\r\nleaf\r\n")
	lim := Limits{MaxDepth: 5, MaxParts: 100, MaxHeaderBytes: 1000}
	m, err := ParseLimits(strings.NewReader(b.String()), lim)
	var le *LimitError
	if !errors.Is(err, ErrLimit) || !errors.As(err, &le) || le.What != "depth" {
		t.Fatalf("depth: err %v", err)
	}
	if err := checkInvariants(m, lim); err != nil {
		t.Fatal(err)
	}

	// Parts past MaxParts: no further boundary recognised, the rest stays in the last part.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "--b\r\n\r\npart %d\r\n", i)
	}
	b.WriteString("--b--\r\n")
	lim = Limits{MaxParts: 5}
	m, err = ParseLimits(strings.NewReader(b.String()), lim)
	if !errors.As(err, &le) || le.What != "parts" {
		t.Fatalf("parts: err %v", err)
	}
	if n := len(m.Root.Children); n != 4 {
		t.Errorf("%d children, want 4 (root + 4 = MaxParts)", n)
	}
	if err := checkInvariants(m, lim); err != nil {
		t.Fatal(err)
	}
	if last := m.Root.Children[3]; last.End != m.Size {
		t.Errorf("last part ends at %d, want the message end %d", last.End, m.Size)
	}

	// Header past MaxHeaderBytes: the fields within the limit still count, offsets are exact.
	big := "Subject: s\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nFrom: late@example.com\r\n\r\nbody\r\n"
	m, err = ParseLimits(strings.NewReader(big), Limits{MaxHeaderBytes: 1000})
	if !errors.As(err, &le) || le.What != "header" {
		t.Fatalf("header: err %v", err)
	}
	if e := m.Envelope(); e.Subject != "s" || e.From != nil {
		t.Errorf("envelope %+v", e)
	}
	if m.Root.BodyStart != int64(strings.Index(big, "body")) {
		t.Errorf("BodyStart %d", m.Root.BodyStart)
	}
}

// hugeReader produces a multipart message with a base64 attachment of n octets without holding it.
type hugeReader struct {
	head, tail string
	n, done    int64
	stage      int
	line       []byte
}

func newHugeReader(n int64) *hugeReader {
	line := bytes.Repeat([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0"), 1)
	return &hugeReader{
		head: crlf("From: a@example.com\nSubject: big\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\nsee attachment\n--zz\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"),
		tail: crlf("\n--zz--\n"),
		n:    n,
		line: append(line, '\r', '\n'),
	}
}

func (h *hugeReader) Read(p []byte) (int, error) {
	switch h.stage {
	case 0:
		n := copy(p, h.head)
		h.head = h.head[n:]
		if h.head == "" {
			h.stage++
		}
		return n, nil
	case 1:
		total := 0
		for len(p) > 0 && h.done < h.n {
			off := h.done % int64(len(h.line))
			c := copy(p, h.line[off:])
			c = int(min(int64(c), h.n-h.done))
			p = p[c:]
			h.done += int64(c)
			total += c
		}
		if h.done == h.n {
			h.stage++
		}
		return total, nil
	case 2:
		n := copy(p, h.tail)
		h.tail = h.tail[n:]
		if h.tail == "" {
			h.stage++
		}
		return n, nil
	}
	return 0, io.EOF
}

func TestBoundedMemory(t *testing.T) {
	// A dedicated parser, not the pool: under -race sync.Pool drops items at random, which would add noise.
	p := &parser{buf: make([]byte, windowSize)}
	parse := func(n int64) (*Message, uint64) {
		r := newHugeReader(n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := p.parse(r, Limits{})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return m, after.TotalAlloc - before.TotalAlloc
	}
	parse(1 << 20)
	small, allocSmall := parse(1 << 20)
	big, allocBig := parse(20 << 20)
	if got := big.Root.Children[1].Size(); got != 20<<20 {
		t.Fatalf("attachment size %d", got)
	}
	if small.Root.Children[1].Lines == big.Root.Children[1].Lines {
		t.Fatal("line counts do not differ")
	}
	t.Logf("allocated %d bytes for a 1 MiB attachment, %d for 20 MiB", allocSmall, allocBig)
	// The body streams through a fixed window: allocation must not grow with
	// it. TotalAlloc is process-wide, so the race runtime and the GC add a few
	// KiB of noise; 20x the body must not cost even 32 KiB more.
	if allocBig > allocSmall+32<<10 || allocBig > 64<<10 {
		t.Errorf("allocation grows with the body: %d bytes for 1 MiB, %d for 20 MiB", allocSmall, allocBig)
	}
	allocs := testing.AllocsPerRun(3, func() { _, _ = p.parse(newHugeReader(20<<20), Limits{}) })
	allocsSmall := testing.AllocsPerRun(3, func() { _, _ = p.parse(newHugeReader(1<<10), Limits{}) })
	if allocs != allocsSmall {
		t.Errorf("%v allocations for 20 MiB, %v for 1 KiB", allocs, allocsSmall)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	msgs := corpus(t)
	msgs["nested"] = []byte(crlf(nestedMessage))
	for name, raw := range msgs {
		m, err := Parse(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		blob, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := back.UnmarshalBinary(blob); err != nil {
			t.Fatalf("%s: Unmarshal: %v", name, err)
		}
		if !reflect.DeepEqual(m, &back) {
			t.Errorf("%s: round trip differs", name)
		}
		if !bytes.Equal(m.IMAPBodyStructure(true), back.IMAPBodyStructure(true)) || !bytes.Equal(m.IMAPEnvelope(), back.IMAPEnvelope()) {
			t.Errorf("%s: renderings differ after round trip", name)
		}
		// Every truncation and a flipped byte are rejected or decoded, never a panic.
		for i := 0; i < len(blob); i++ {
			var x Message
			if err := x.UnmarshalBinary(blob[:i]); err == nil {
				t.Errorf("%s: truncated blob of %d bytes accepted", name, i)
			}
			c := bytes.Clone(blob)
			c[i] ^= 0x41
			if x.UnmarshalBinary(c) == nil {
				if err := checkOffsetsOnly(&x); err != nil {
					t.Errorf("%s: corrupt blob decoded to bad offsets: %v", name, err)
				}
			}
		}
	}
	var empty Message
	if err := empty.UnmarshalBinary(nil); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("nil blob: %v", err)
	}
}

// checkOffsetsOnly verifies that a decoded message never points past its own size.
func checkOffsetsOnly(m *Message) error {
	var walk func(p *Part) error
	walk = func(p *Part) error {
		if p.HeaderStart < 0 || p.HeaderStart > p.BodyStart || p.BodyStart > p.End || p.End > m.Size {
			return fmt.Errorf("offsets %d %d %d size %d", p.HeaderStart, p.BodyStart, p.End, m.Size)
		}
		for _, c := range p.Children {
			if err := walk(c); err != nil {
				return err
			}
		}
		if p.Encapsulated != nil {
			return walk(p.Encapsulated)
		}
		return nil
	}
	if m.Root == nil {
		return nil
	}
	return walk(m.Root)
}

func TestParseSection(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Section
	}{
		{"", Section{}},
		{"HEADER", Section{Spec: SpecHeader}},
		{"text", Section{Spec: SpecText}},
		{"1", Section{Part: []int{1}}},
		{"1.2.3", Section{Part: []int{1, 2, 3}}},
		{"1.MIME", Section{Part: []int{1}, Spec: SpecMIME}},
		{"2.HEADER", Section{Part: []int{2}, Spec: SpecHeader}},
		{"2.TEXT", Section{Part: []int{2}, Spec: SpecText}},
		{"HEADER.FIELDS (FROM SUBJECT)", Section{Spec: SpecHeaderFields, Fields: []string{"FROM", "SUBJECT"}}},
		{"header.fields.not (x-a \"Quoted\\\"\")", Section{Spec: SpecHeaderFieldsNot, Fields: []string{"x-a", "Quoted\""}}},
		{"1.HEADER.FIELDS ({4}\r\nDate To)", Section{Part: []int{1}, Spec: SpecHeaderFields, Fields: []string{"Date", "To"}}},
	} {
		got, err := ParseSection(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSection(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil {
			again, err := ParseSection(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("%q: String() %q does not parse back: %+v %v", tc.in, got.String(), again, err)
			}
		}
	}
	for _, in := range []string{
		"0", "01", "1.", ".1", "1..2", "MIME", "1.mimex", "HEADER.", "HEADER.FIELDS", "HEADER.FIELDS ()",
		"HEADER.FIELDS (A", "HEADER.FIELDS (A) x", "HEADER.FIELDS  (A)", "HEADER.FIELDS (\"\")", "TEXT.1",
		"1.HEADER.FIELDS.NOTX (A)", "99999999999", "1 ", "HEADER.FIELDS ({9}\r\nA)", "HEADER.FIELDS (A\tB)",
		"HEADER.FIELDS (\"caf\xc3\xa9\")", "HEADER.FIELDS (\"a b\")", "HEADER.FIELDS ({3}\r\na\x01b)",
	} {
		_, err := ParseSection(in)
		var se *SectionError
		if !errors.As(err, &se) {
			t.Errorf("ParseSection(%q): err %v, want *SectionError", in, err)
		}
	}
}

func TestHeaderHelpers(t *testing.T) {
	h := Header(crlf("From joe Fri Feb 19 2010\nSubject: =?utf-8?q?caf=C3=A9?=\n  continued\nX-Dup: 1\nx-dup : 2\nbroken line\n continuation of broken\nTo: a@b\n"))
	if v, ok := h.Get("SUBJECT"); !ok || v != "=?utf-8?q?caf=C3=A9?=  continued" {
		t.Errorf("Get: %q %v", v, ok)
	}
	if v, _ := h.Text("subject"); v != "café  continued" {
		t.Errorf("Text: %q", v)
	}
	if vs := h.Values("x-dup"); !reflect.DeepEqual(vs, []string{"1", "2"}) {
		t.Errorf("Values: %q", vs)
	}
	if _, ok := h.Get("broken line"); ok {
		t.Error("a line without colon became a field")
	}
	if got, want := string(h.Filter([]string{"x-DUP", "to"}, false)), "X-Dup: 1\r\nx-dup : 2\r\nTo: a@b\r\n\r\n"; got != want {
		t.Errorf("Filter: %q, want %q", got, want)
	}
	if got, want := string(h.Filter([]string{"x-dup", "to"}, true)), "Subject: =?utf-8?q?caf=C3=A9?=\r\n  continued\r\n\r\n"; got != want {
		t.Errorf("Filter NOT: %q, want %q", got, want)
	}
}
