package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

var small = Limits{MaxLine: 1000, MaxLiteral: 100, MaxCommand: 2000, MaxArgs: 20, MaxDepth: 8, MaxSkip: 10000, MaxAppend: 5000}

// syntaxErrorTests are bad commands and what the decoder must say; the inputs also seed
// FuzzReadCommand.
var syntaxErrorTests = []struct {
	name   string
	in     string
	lim    Limits
	opts   []Option
	tag    string
	status Status
	code   Code
	msg    string // substring of Msg
	unk    bool   // Err is ErrUnknownCommand
	fatal  bool
	// fatalLater: the error is not fatal, but skipping the rest of the command is impossible,
	// which the next ReadCommand reports with a fatal error.
	fatalLater bool
}{
	{name: "unknown", in: "a1 FOO bar\r\n", tag: "a1", msg: "unknown command", unk: true},
	{name: "unknown UID", in: "a1 UID FROB 1\r\n", tag: "a1", msg: "unknown command", unk: true},
	{name: "no tag", in: "+ x\r\n", tag: "", msg: "tag"},
	{name: "tag only", in: "a1\r\n", tag: "a1", msg: "space"},
	{name: "tab", in: "a1\tNOOP\r\n", tag: "a1", msg: "space"},
	{name: "two spaces", in: "a1  NOOP\r\n", tag: "a1", msg: "command name"},
	{name: "missing argument", in: "a1 SELECT\r\n", tag: "a1", msg: "space"},
	{name: "extra argument", in: "a1 NOOP extra\r\n", tag: "a1", msg: "too many arguments"},
	{name: "bare CR", in: "a1 NOOP\rb\r\n", tag: "a1", msg: "end of command"},
	{name: "zero in set", in: "a1 FETCH 0 FLAGS\r\n", tag: "a1", msg: "sequence set"},
	{name: "number overflow", in: "a1 FETCH 4294967296 FLAGS\r\n", tag: "a1", msg: "sequence set"},
	{name: "bad range", in: "a1 FETCH 1: FLAGS\r\n", tag: "a1", msg: "sequence set"},
	{name: "unknown fetch item", in: "a1 FETCH 1 (FLAGS X-GM-LABELS)\r\n", tag: "a1", msg: "FETCH item"},
	{name: "macro in list", in: "a1 FETCH 1 (ALL)\r\n", tag: "a1", msg: "FETCH item"},
	{name: "MIME without part", in: "a1 FETCH 1 BODY[MIME]\r\n", tag: "a1", msg: "section"},
	{name: "part zero", in: "a1 FETCH 1 BODY[0]\r\n", tag: "a1", msg: "part number"},
	{name: "binary with text", in: "a1 FETCH 1 BINARY[1.TEXT]\r\n", tag: "a1", msg: "part numbers only"},
	{name: "partial zero count", in: "a1 FETCH 1 BODY[]<0.0>\r\n", tag: "a1", msg: "octet count"},
	{name: "empty header list", in: "a1 FETCH 1 BODY[HEADER.FIELDS ()]\r\n", tag: "a1", msg: "empty list"},
	{name: "VANISHED in FETCH", in: "a1 FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n", tag: "a1", msg: "only allowed with UID FETCH"},
	{name: "VANISHED alone", in: "a1 UID FETCH 1 (FLAGS) (VANISHED)\r\n", tag: "a1", msg: "requires CHANGEDSINCE"},
	{name: "CHANGEDSINCE 0", in: "a1 FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\n", tag: "a1", msg: "mod-sequence"},
	{name: "modseq overflow", in: "a1 FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)\r\n", tag: "a1", msg: "mod-sequence"},
	{name: "select param", in: "a1 SELECT INBOX (ANNOTATE)\r\n", tag: "a1", msg: "SELECT parameter"},
	{name: "QRESYNC star", in: "a1 SELECT INBOX (QRESYNC (1 2 1:*))\r\n", tag: "a1", msg: "not allowed"},
	{name: "RECURSIVEMATCH alone", in: "a1 LIST (RECURSIVEMATCH) \"\" %\r\n", tag: "a1", msg: "RECURSIVEMATCH"},
	{name: "RECURSIVEMATCH REMOTE", in: "a1 LIST (REMOTE RECURSIVEMATCH) \"\" %\r\n", tag: "a1", msg: "RECURSIVEMATCH"},
	{name: "list return option", in: "a1 LIST \"\" % RETURN (MYRIGHTS)\r\n", tag: "a1", msg: "return option"},
	{name: "status item", in: "a1 STATUS INBOX (MESSAGES BOGUS)\r\n", tag: "a1", msg: "STATUS item"},
	{name: "search key", in: "a1 SEARCH FROBNICATE\r\n", tag: "a1", msg: "search key"},
	{name: "search return", in: "a1 SEARCH RETURN (PARTIAL 1:10) ALL\r\n", tag: "a1", msg: "return option"},
	{name: "bad date", in: "a1 SEARCH SINCE 31-Feb-2020\r\n", tag: "a1", msg: "date"},
	{name: "bad month", in: "a1 SEARCH SINCE 1-Foo-2020\r\n", tag: "a1", msg: "date"},
	{name: "store item", in: "a1 STORE 1 +FLAGS.LOUD (\\Seen)\r\n", tag: "a1", msg: "FLAGS"},
	{name: "bad escape", in: "a1 LOGIN \"a\\x\" b\r\n", tag: "a1", msg: "escape"},
	{name: "unterminated quoted", in: "a1 LOGIN \"abc\r\n", tag: "a1", msg: "unterminated"},
	{name: "invalid UTF-8 quoted", in: "a1 LOGIN \"\xff\xfe\" b\r\n", tag: "a1", msg: "UTF-8"},
	{name: "NUL quoted", in: "a1 LOGIN \"a\x00\" b\r\n", tag: "a1", msg: "NUL"},
	{name: "bad mUTF-7", in: "a1 SELECT \"R&D\"\r\n", tag: "a1", msg: "modified UTF-7"},
	{name: "8-bit name without UTF8", in: "a1 SELECT \"Entwürfe\"\r\n", tag: "a1", msg: "modified UTF-7"},
	{name: "bad base64 IR", in: "a1 AUTHENTICATE PLAIN abc\r\n", tag: "a1", msg: "base64"},
	{name: "unknown CREATE param", in: "a1 CREATE x (FOO)\r\n", tag: "a1", msg: "CREATE parameter"},
	{name: "USE without backslash", in: "a1 CREATE x (USE (Sent))\r\n", tag: "a1", msg: "special-use"},
	{name: "ID bad", in: "a1 ID foo\r\n", tag: "a1", msg: "NIL"},
	{name: "semantic error after EOL", in: "a1 UID FETCH 1 FLAGS (VANISHED)\r\n", tag: "a1", msg: "CHANGEDSINCE"},
	// Literals: NUL in a literal (CHAR8), literal8 outside APPEND, LITERAL- (RFC 7888 5).
	{name: "NUL in literal", in: "a1 LOGIN {5+}\r\nab\x00cd x\r\n", tag: "a1", msg: "NUL"},
	{name: "literal8 in LOGIN", in: "a1 LOGIN ~{3+}\r\nabc x\r\n", tag: "a1", msg: "literal8"},
	{name: "LITERAL- 4097", in: "a1 LOGIN {4097+}\r\n" + strings.Repeat("x", 4097) + " y\r\n", tag: "a1", status: BAD, code: CodeTooBig, msg: "4096"},
	{name: "LITERAL+ 4097 ok but too big", in: "a1 LOGIN {4097+}\r\n" + strings.Repeat("x", 4097) + " y\r\n", opts: []Option{WithLiteralPlus()},
		lim: Limits{MaxLiteral: 4096}, tag: "a1", code: CodeTooBig, msg: "too big"},
	{name: "sync literal too big", in: "a1 LOGIN {70000}\r\n", tag: "a1", code: CodeTooBig, msg: "too big"},
	{name: "literal past MaxCommand", in: "a1 LOGIN {100+}\r\n" + strings.Repeat("x", 100) + " {100+}\r\n" + strings.Repeat("y", 100) + "\r\n",
		lim: Limits{MaxCommand: 150}, tag: "a1", code: CodeLimit, msg: "command too long"},
	{name: "unknown with sync literal", in: "A044 BLURDYBLOOP {102856}\r\n", tag: "A044", unk: true, msg: "unknown"},
	{name: "unknown with non-sync literal", in: "A044 BLURDYBLOOP {5+}\r\nhello\r\n", tag: "A044", unk: true, msg: "unknown"},
	{name: "unknown, literal chain", in: "A044 BLURDYBLOOP {5+}\r\nhello {3+}\r\nabc more {2}\r\n", tag: "A044", unk: true, msg: "unknown"},
	{name: "literal size overflow", in: "a1 LOGIN {99999999999999999999+}\r\n", tag: "a1", msg: "literal size", fatal: true},
	// Limits.
	{name: "line too long", in: "a1 LOGIN " + strings.Repeat("x", 2000) + " y\r\n", lim: small, tag: "a1", code: CodeLimit, msg: "line too long"},
	{name: "line too long, never ends", in: "a1 LOGIN " + strings.Repeat("x", 20000) + "\r\n", lim: small, tag: "a1", code: CodeLimit, msg: "line too long", fatalLater: true},
	{name: "literal marker split by the error", in: "a1 LOGIN x {123+}\r\n" + strings.Repeat("x", 123) + "\r\n", lim: Limits{MaxLine: 14},
		tag: "a1", code: CodeLimit, msg: "line too long"},
	{name: "too many args", in: "a1 STORE 1 FLAGS (" + strings.Repeat("a ", 25) + "b)\r\n", lim: small, tag: "a1", code: CodeLimit, msg: "too many arguments"},
	{name: "nesting", in: "a1 SEARCH " + strings.Repeat("NOT ", 20) + "ALL\r\n", lim: small, tag: "a1", code: CodeLimit, msg: "nesting"},
	{name: "nesting parens", in: "a1 SEARCH " + strings.Repeat("(", 20) + "ALL" + strings.Repeat(")", 20) + "\r\n", lim: small, tag: "a1", code: CodeLimit, msg: "nesting"},
	{name: "skip too big", in: "a1 LOGIN {20000+}\r\n" + strings.Repeat("x", 20000) + "\r\n", lim: small, opts: []Option{WithLiteralPlus()},
		tag: "a1", code: CodeTooBig, msg: "too big", fatal: true},
}

// TestSyntaxErrors checks the error for each bad command, and that the decoder then finds the
// next command ("z NOOP") unless the error is fatal (RFC 9051 7.1.5: BAD, and the session goes on).
func TestSyntaxErrors(t *testing.T) {
	tests := syntaxErrorTests
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(bufio.NewReader(strings.NewReader(tc.in+"z NOOP\r\n")), tc.lim, tc.opts...)
			c, err := d.ReadCommand()
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, %v; want a *SyntaxError", c, err)
			}
			want := tc.status
			if want == "" {
				want = BAD
			}
			if se.Tag != tc.tag || se.Status != want || se.Code != tc.code || !strings.Contains(se.Msg, tc.msg) ||
				errors.Is(err, ErrUnknownCommand) != tc.unk || se.Fatal != tc.fatal {
				t.Fatalf("got %+v\nwant tag %q status %s code %q msg ~%q unknown %v fatal %v", se, tc.tag, want, tc.code, tc.msg, tc.unk, tc.fatal)
			}
			next, err := d.ReadCommand()
			if tc.fatal {
				if err != se {
					t.Fatalf("after a fatal error: %v, %v", next, err)
				}
				return
			}
			if tc.fatalLater {
				if !errors.As(err, &se) || !se.Fatal || se.Tag != "" {
					t.Fatalf("after an error that cannot be skipped: %v, %v", next, err)
				}
				return
			}
			if err != nil || next.Tag != "z" || next.Name != "NOOP" {
				t.Fatalf("no resync: %v, %v", next, err)
			}
		})
	}
}

func TestUTF8Mode(t *testing.T) {
	d := NewDecoder(bufio.NewReader(strings.NewReader("a SELECT \"&ZeVnLIqe-\"\r\nb SELECT \"&ZeVnLIqe-\"\r\nc SELECT {4+}\r\n\xff\xfe\xfd\xfc\r\n")), Limits{})
	c, err := d.ReadCommand()
	if err != nil || c.Select.Mailbox != "日本語" || c.UTF8 {
		t.Fatalf("%v %v", c, err)
	}
	d.SetUTF8(true)
	c, err = d.ReadCommand()
	if err != nil || c.Select.Mailbox != "&ZeVnLIqe-" || !c.UTF8 || c.String() != `b SELECT &ZeVnLIqe-` {
		t.Fatalf("%v %v", c, err)
	}
	// RFC 6855 3: a UTF-8 name must be valid UTF-8, also in a literal.
	if _, err := d.ReadCommand(); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid UTF-8 name: %v", err)
	}
}

// TestContinuation checks the hook: called before every literal with the right facts, and a
// refusal ends the command without the client's literal data being read as commands.
func TestContinuation(t *testing.T) {
	var got []LiteralInfo
	hook := func(li LiteralInfo) error { got = append(got, li); return nil }
	in := "A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\nA002 LOGIN {3+}\r\nabc x\r\n"
	d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{}, WithContinue(hook))
	if c, err := d.ReadCommand(); err != nil || c.Login.Password != "fat man" {
		t.Fatal(c, err)
	}
	if c, err := d.ReadCommand(); err != nil || c.Login.Username != "abc" {
		t.Fatal(c, err)
	}
	want := []LiteralInfo{
		{Tag: "A001", Command: "LOGIN", Size: 11, Sync: true},
		{Tag: "A001", Command: "LOGIN", Size: 7, Sync: true},
		{Tag: "A002", Command: "LOGIN", Size: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("hook calls %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// Refused synchronizing literal: the client never sends it (RFC 9051 7.5), the next line is
	// the next command. Refused non-synchronizing literal: its data is skipped.
	errQuota := errors.New("over quota")
	refuse := func(li LiteralInfo) error { return errQuota }
	in = "a1 LOGIN {5}\r\nb1 NOOP\r\na2 LOGIN {5+}\r\nb2 NOO {3+}\r\nxyz\r\nb3 NOOP\r\n"
	d = NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{}, WithContinue(refuse))
	for _, tag := range []string{"a1", "b1", "a2", "b3"} {
		c, err := d.ReadCommand()
		if tag[0] == 'a' {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag != tag || !errors.Is(err, errQuota) || se.Fatal {
				t.Fatalf("%s: got %v %v", tag, c, err)
			}
			continue
		}
		if err != nil || c.Tag != tag {
			t.Fatalf("want %s: got %v %v", tag, c, err)
		}
	}
}

// TestAppend covers APPEND: options, literal kinds, MULTIAPPEND, and abandoning.
func TestAppend(t *testing.T) {
	in := "A003 APPEND saved-messages (\\Seen) \" 7-Feb-1994 22:43:04 -0800\" {5}\r\nhello" +
		" {0+}\r\n" +
		" (\\Flagged $Work) ~{3}\r\na\x00b" +
		" UTF8 (~{4+}\r\nt\xc3\xa9s)" +
		"\r\nb NOOP\r\n"
	var infos []LiteralInfo
	d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{}, WithContinue(func(li LiteralInfo) error {
		infos = append(infos, li)
		return nil
	}))
	c, err := d.ReadCommand()
	if err != nil || c.Name != "APPEND" || c.Mailbox != "saved-messages" {
		t.Fatal(c, err)
	}
	type msg struct {
		flags        string
		date         string
		body         string
		binary, utf8 bool
	}
	var got []msg
	for {
		m, err := d.NextMessage()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			break
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		date := ""
		if !m.Date.IsZero() {
			date = m.Date.UTC().String()
		}
		got = append(got, msg{strings.Join(m.Flags, ","), date, string(b), m.Binary, m.UTF8})
		if int64(len(b)) != m.Size {
			t.Errorf("size %d, read %d", m.Size, len(b))
		}
	}
	want := []msg{
		{`\Seen`, "1994-02-08 06:43:04 +0000 UTC", "hello", false, false},
		{"", "", "", false, false},
		{`\Flagged,$Work`, "", "a\x00b", true, false},
		{"", "", "tés", true, true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(infos) != 4 || !infos[0].Append || !infos[0].Sync || infos[1].Sync || !infos[2].Binary || infos[3].Size != 4 {
		t.Errorf("hook: %+v", infos)
	}
	if c, err := d.ReadCommand(); err != nil || c.Tag != "b" {
		t.Fatal(c, err)
	}
}

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		lim    Limits
		status Status
		code   Code
		msg    string
		fatal  bool
	}{
		{name: "no message", in: "a APPEND INBOX\r\n", msg: "space"},
		{name: "no literal", in: "a APPEND INBOX (\\Seen)\r\n", msg: "space"},
		{name: "string instead of literal", in: "a APPEND INBOX \"hello\"\r\n", msg: "date-time"},
		{name: "bad date", in: "a APPEND INBOX \"32-Jan-2020 00:00:00 +0000\" {1}\r\n", msg: "date-time"},
		{name: "extension", in: "a APPEND INBOX ANNOTATION (/comment (value.priv \"x\")) {1}\r\n", msg: "message literal"},
		{name: "UTF8 needs literal8", in: "a APPEND INBOX UTF8 ({3+}\r\nabc)\r\n", msg: "literal8"},
		{name: "APPENDLIMIT sync", in: "a APPEND INBOX {6000}\r\n", lim: Limits{MaxAppend: 5000}, status: NO, code: CodeTooBig, msg: "APPENDLIMIT"},
		{name: "APPENDLIMIT non-sync skipped", in: "a APPEND INBOX {4000+}\r\n" + strings.Repeat("x", 4000) + "\r\n", lim: Limits{MaxAppend: 3000},
			status: NO, code: CodeTooBig, msg: "APPENDLIMIT"},
		{name: "LITERAL- in APPEND", in: "a APPEND INBOX {5000+}\r\n" + strings.Repeat("x", 5000) + "\r\n", status: BAD, code: CodeTooBig, msg: "4096"},
		{name: "too big to skip", in: "a APPEND INBOX {4000+}\r\n" + strings.Repeat("x", 4000) + "\r\n", lim: Limits{MaxAppend: 3000, MaxSkip: 100},
			status: NO, code: CodeTooBig, msg: "APPENDLIMIT", fatal: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(bufio.NewReader(strings.NewReader(tc.in+"z NOOP\r\n")), tc.lim)
			if c, err := d.ReadCommand(); err != nil || c.Name != "APPEND" {
				t.Fatal(c, err)
			}
			m, err := d.NextMessage()
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, %v", m, err)
			}
			status := tc.status
			if status == "" {
				status = BAD
			}
			if se.Tag != "a" || se.Command != "APPEND" || se.Status != status || se.Code != tc.code || !strings.Contains(se.Msg, tc.msg) || se.Fatal != tc.fatal {
				t.Fatalf("got %+v", se)
			}
			next, err := d.ReadCommand()
			if tc.fatal {
				if err == nil {
					t.Fatalf("read %v after a fatal error", next)
				}
				return
			}
			if err != nil || next.Tag != "z" {
				t.Fatalf("no resync: %v %v", next, err)
			}
		})
	}
}

// TestAppendAbandoned: the server answers NO after reading part of a message (quota) and reads
// the next command; whatever the client still sends of the APPEND is skipped.
func TestAppendAbandoned(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"inside first body", "a APPEND INBOX {10+}\r\n0123456789 {5+}\r\nhello\r\n"},
		{"before second message", "a APPEND INBOX {10+}\r\n0123456789 (\\Seen) {5}\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(bufio.NewReader(strings.NewReader(tc.in+"z NOOP\r\n")), Limits{})
			if _, err := d.ReadCommand(); err != nil {
				t.Fatal(err)
			}
			m, err := d.NextMessage()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(m.Body, buf); err != nil {
				t.Fatal(err)
			}
			if tc.name == "before second message" {
				io.Copy(io.Discard, m.Body)
			}
			c, err := d.ReadCommand()
			if err != nil || c.Tag != "z" {
				t.Fatalf("got %v %v", c, err)
			}
			if _, err := m.Body.Read(buf); err != errStaleBody {
				t.Errorf("stale body read: %v", err)
			}
		})
	}
}

// repeatReader yields n copies of b.
type repeatReader struct {
	b []byte
	n int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:], r.b)
		if int64(c) > r.n {
			c = int(r.n)
		}
		k += c
		r.n -= int64(c)
	}
	return k, nil
}

// TestAppendStreams: a 40 MiB APPEND goes through without the decoder holding it in memory.
func TestAppendStreams(t *testing.T) {
	const size = 40 << 20
	in := io.MultiReader(strings.NewReader("a APPEND INBOX {41943040}\r\n"), &repeatReader{b: []byte("0123456789abcdef"), n: size},
		strings.NewReader("\r\nb NOOP\r\n"))
	d := NewDecoder(bufio.NewReader(in), Limits{})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	if _, err := d.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	m, err := d.NextMessage()
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, m.Body, make([]byte, 32<<10))
	if err != nil || n != size {
		t.Fatal(n, err)
	}
	if m, err := d.NextMessage(); m != nil || err != nil {
		t.Fatal(m, err)
	}
	runtime.ReadMemStats(&ms)
	if alloc := ms.TotalAlloc - before; alloc > 1<<20 {
		t.Errorf("allocated %d bytes to stream a %d-byte APPEND", alloc, size)
	}
	if c, err := d.ReadCommand(); err != nil || c.Tag != "b" {
		t.Fatal(c, err)
	}
}

func TestIdleAndSASL(t *testing.T) {
	in := "a IDLE\r\ndone\r\nb IDLE\r\nNOPE\r\nc AUTHENTICATE PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\n\r\n*\r\n!!\r\naGk\r=\r\nz NOOP\r\n"
	d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{})
	if c, err := d.ReadCommand(); err != nil || c.Name != "IDLE" {
		t.Fatal(c, err)
	}
	if err := d.ReadDone(); err != nil {
		t.Fatal(err)
	}
	d.ReadCommand()
	var se *SyntaxError
	if err := d.ReadDone(); !errors.As(err, &se) || se.Tag != "b" || se.Command != "IDLE" {
		t.Fatalf("not DONE: %v", err)
	}
	if c, err := d.ReadCommand(); err != nil || c.Auth.Initial != nil {
		t.Fatal(c, err)
	}
	if b, err := d.ReadSASLResponse(); err != nil || string(b) != "test\x00test\x00test" {
		t.Fatal(b, err)
	}
	if b, err := d.ReadSASLResponse(); err != nil || b == nil || len(b) != 0 {
		t.Fatalf("empty response: %q %v", b, err)
	}
	if _, err := d.ReadSASLResponse(); !errors.Is(err, ErrSASLCancelled) || !errors.As(err, &se) || se.Tag != "c" {
		t.Fatalf("cancel: %v", err)
	}
	if _, err := d.ReadSASLResponse(); !errors.As(err, &se) || !strings.Contains(se.Msg, "base64") {
		t.Fatalf("bad base64: %v", err)
	}
	if b, err := d.ReadSASLResponse(); !errors.As(err, &se) || !strings.Contains(se.Msg, "base64") {
		t.Fatalf("CR inside base64: %q %v", b, err)
	}
	if c, err := d.ReadCommand(); err != nil || c.Tag != "z" {
		t.Fatal(c, err)
	}
}

func TestIOErrors(t *testing.T) {
	// Closed between commands: io.EOF. Closed mid-command or mid-literal: io.ErrUnexpectedEOF,
	// and the decoder stays broken.
	for _, in := range []string{"a NOOP", "a LOGIN {5}\r\nab", "a APPEND INBOX {5}\r\nab", "a LOGIN \"abc"} {
		d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{})
		c, err := d.ReadCommand()
		if err == nil && c.Name == "APPEND" {
			var m *AppendMessage
			if m, err = d.NextMessage(); err == nil {
				_, err = io.ReadAll(m.Body)
			}
		}
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%q: %v", in, err)
		}
		if _, err := d.ReadCommand(); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: afterwards %v", in, err)
		}
	}
}

func TestResetAndBuffered(t *testing.T) {
	d := NewDecoder(bufio.NewReader(strings.NewReader("a STARTTLS\r\nb NOOP\r\n")), Limits{}, WithLiteralPlus())
	if c, err := d.ReadCommand(); err != nil || c.Name != "STARTTLS" {
		t.Fatal(c, err)
	}
	if d.Buffered() == 0 {
		t.Fatal("pipelined command after STARTTLS not reported")
	}
	d.Reset(bufio.NewReader(bytes.NewReader([]byte("c LOGIN {5000+}\r\n" + strings.Repeat("x", 5000) + " y\r\n"))))
	if c, err := d.ReadCommand(); err != nil || c.Tag != "c" {
		t.Fatalf("after Reset (LITERAL+ kept): %v %v", c, err)
	}
}
