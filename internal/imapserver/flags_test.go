package imapserver

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

func TestFlagList(t *testing.T) {
	tests := []struct {
		f    mailstore.Flags
		want []string
	}{
		{mailstore.Flags{}, []string{}},
		{mailstore.Flags{System: mailstore.Draft | mailstore.Seen}, []string{`\Seen`, `\Draft`}},
		{mailstore.Flags{System: mailstore.Seen | mailstore.Answered | mailstore.Flagged | mailstore.Deleted | mailstore.Draft,
			Keywords: []string{"$Forwarded", "work"}},
			[]string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "$Forwarded", "work"}},
		{mailstore.Flags{Keywords: []string{"$Junk"}}, []string{"$Junk"}},
	}
	for _, tc := range tests {
		if got := flagList(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("flagList(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		in   []string
		want mailstore.Flags
	}{
		{nil, mailstore.Flags{}},
		{[]string{`\Seen`}, mailstore.Flags{System: mailstore.Seen}},
		// RFC 9051 2.3.2: case-insensitive.
		{[]string{`\SEEN`, `\answered`, `\fLaGgEd`, `\DELETED`, `\draft`},
			mailstore.Flags{System: mailstore.Seen | mailstore.Answered | mailstore.Flagged | mailstore.Deleted | mailstore.Draft}},
		// \Recent is dropped silently.
		{[]string{`\Recent`, `\recent`, `\Seen`}, mailstore.Flags{System: mailstore.Seen}},
		{[]string{`\Recent`}, mailstore.Flags{}},
		// Keywords: deduplicated case-insensitively (first spelling kept), sorted case-insensitively.
		{[]string{"b", "A", "a", "B", "c", `\Flagged`}, mailstore.Flags{System: mailstore.Flagged, Keywords: []string{"A", "b", "c"}}},
		{[]string{"$MDNSent", "$Forwarded", "$forwarded"}, mailstore.Flags{Keywords: []string{"$Forwarded", "$MDNSent"}}},
		{[]string{"Zeta", "alpha"}, mailstore.Flags{Keywords: []string{"alpha", "Zeta"}}},
	}
	for _, tc := range tests {
		got, err := parseFlags(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseFlags(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, in := range [][]string{
		{`\Foo`},
		{`\*`},
		{`\`},
		{`\Seen`, `\Important`},
		{""},
		{"two words"},
		{"paren("},
		{"brace{"},
		{"star*"},
		{"pct%"},
		{`quote"`},
		{"bracket]"},
		{"caf\u00e9"},
		{"tab\there"},
		{"del\x7f"},
	} {
		if f, err := parseFlags(in); !errors.Is(err, errBadFlag) {
			t.Errorf("parseFlags(%q) = %+v, %v; want errBadFlag", in, f, err)
		}
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	for _, f := range []mailstore.Flags{
		{},
		{System: mailstore.Seen},
		{System: mailstore.Deleted | mailstore.Answered, Keywords: []string{"$Junk", "NonJunk", "x"}},
		{System: mailstore.Seen | mailstore.Answered | mailstore.Flagged | mailstore.Deleted | mailstore.Draft, Keywords: []string{"a"}},
	} {
		got, err := parseFlags(flagList(f))
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("parseFlags(flagList(%+v)) = %+v, %v", f, got, err)
		}
	}
	// And the other way round, from what a client may send.
	in := []string{"later", `\draft`, "$Work", `\Recent`, "LATER"}
	f, err := parseFlags(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := flagList(f), []string{`\Draft`, "$Work", "later"}; !reflect.DeepEqual(got, want) {
		t.Errorf("flagList(parseFlags(%q)) = %q, want %q", in, got, want)
	}
}

func TestMailboxFlagLines(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	e := imapwire.NewEncoder(w)
	kw := []string{"work", "$Forwarded", "Work"}
	if err := e.Flags(mailboxFlags(kw)...); err != nil {
		t.Fatal(err)
	}
	if err := e.Untagged(imapwire.OK, imapwire.CodePermanentFlags(permanentFlags(kw)...), "Flags permitted"); err != nil {
		t.Fatal(err)
	}
	if err := e.Untagged(imapwire.OK, imapwire.CodePermanentFlags(permanentFlags(nil)...), "Flags permitted"); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded work)\r\n" +
		"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded work \\*)] Flags permitted\r\n" +
		"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] Flags permitted\r\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// The caller's slice is left alone.
	if !reflect.DeepEqual(kw, []string{"work", "$Forwarded", "Work"}) {
		t.Errorf("mailboxFlags changed its argument: %q", kw)
	}
}
