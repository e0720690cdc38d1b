package pop3server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in   string
		want Command
		err  error
	}{
		{"STAT", Command{Verb: "STAT"}, nil},
		{"list 1", Command{Verb: "LIST", Args: []string{"1"}, Rest: "1"}, nil},
		{"TOP 1 10", Command{Verb: "TOP", Args: []string{"1", "10"}, Rest: "1 10"}, nil},
		{"PASS  secret with  spaces ", Command{Verb: "PASS", Args: []string{"secret", "with", "spaces"},
			Rest: " secret with  spaces "}, nil},
		{"USER jörg@example.test", Command{Verb: "USER", Args: []string{"jörg@example.test"}, Rest: "jörg@example.test"}, nil},
		{"UTF8", Command{Verb: "UTF8"}, nil},
		{"", Command{}, errEmptyCommand},
		{" STAT", Command{}, errBadVerb},
		{"ST-AT", Command{}, errBadVerb},
		{strings.Repeat("A", maxVerbLen+1), Command{}, errBadVerb},
		{"USER a\x00b", Command{}, errControlChar},
		{"USER a\tb", Command{}, errControlChar},
		{"USER a\rb", Command{}, errControlChar},
		{"NOOP\x7f", Command{}, errControlChar},
	}
	for _, tc := range cases {
		got, err := ParseCommand([]byte(tc.in))
		if !errors.Is(err, tc.err) || (err == nil && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseNumbers(t *testing.T) {
	for s, want := range map[string]int{"1": 1, "007": 7, "999999999": 999999999} {
		if n, ok := parseMsgNum(s); !ok || n != want {
			t.Errorf("parseMsgNum(%q) = %d, %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "0", "-1", "+1", "1e3", "1000000000", " 1", "١"} {
		if _, ok := parseMsgNum(s); ok {
			t.Errorf("parseMsgNum(%q) accepted", s)
		}
	}
	if n, ok := parseCount("0"); !ok || n != 0 {
		t.Error("parseCount(0)")
	}
}

func TestReadLine(t *testing.T) {
	in := "CAPA\r\nNOOP\n" + strings.Repeat("x", 20) + "\r\nLAST\r\n" + strings.Repeat("y", 200) + "\r\nEND\r\npartial"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	for {
		l, err := readLine(r, 12, nil)
		switch {
		case errors.Is(err, errLineTooLong):
			got = append(got, "<too long>")
			continue
		case err != nil:
			got = append(got, "<"+err.Error()+">")
		default:
			got = append(got, string(l))
			continue
		}
		break
	}
	want := []string{"CAPA", "NOOP", "<too long>", "LAST", "<too long>", "END", "<unexpected EOF>"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Exactly the limit, CRLF included, is accepted.
	if l, err := readLine(bufio.NewReader(strings.NewReader("0123456789\r\n")), 12, nil); err != nil || string(l) != "0123456789" {
		t.Fatalf("%q %v", l, err)
	}
	// A line without end is read at most floodFactor times the limit.
	r = bufio.NewReaderSize(&endless{}, 16)
	if _, err := readLine(r, 12, nil); !errors.Is(err, errLineFlood) {
		t.Fatalf("endless line: %v", err)
	}
}

type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	e.n += len(p)
	if e.n > 1<<20 {
		return 0, errors.New("read far too much")
	}
	return len(p), nil
}

// stuffRef is byte-stuffing done the obvious way, one octet at a time.
func stuffRef(msg []byte) []byte {
	var out []byte
	bol := true
	for _, b := range msg {
		if bol && b == '.' {
			out = append(out, '.')
		}
		out = append(out, b)
		bol = b == '\n'
	}
	if !bol {
		out = append(out, '\r', '\n')
	}
	return append(out, ".\r\n"...)
}

// stuffChunked runs dotWriter over msg cut into chunks at the given points.
func stuffChunked(msg []byte, cuts []int) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriterSize(&buf, 16)
	dw := newDotWriter(bw)
	prev := 0
	for _, c := range append(cuts, len(msg)) {
		c = min(max(c, prev), len(msg))
		dw.Write(msg[prev:c])
		prev = c
	}
	dw.Close()
	bw.Flush()
	return buf.Bytes()
}

func TestDotWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{".", "..\r\n.\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.\r\n..\r\nb", "a\r\n..\r\n...\r\nb\r\n.\r\n"},
		{"x\n.y", "x\n..y\r\n.\r\n"},
	} {
		if got := stuffChunked([]byte(tc.in), nil); string(got) != tc.want {
			t.Errorf("stuff(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every chunking gives the reference result.
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte(".\r\nab")
	for range 2000 {
		msg := make([]byte, rng.Intn(40))
		for i := range msg {
			msg[i] = alphabet[rng.Intn(len(alphabet))]
		}
		var cuts []int
		for range rng.Intn(6) {
			cuts = append(cuts, rng.Intn(len(msg)+1))
		}
		slices.Sort(cuts)
		if got, want := stuffChunked(msg, cuts), stuffRef(msg); !bytes.Equal(got, want) {
			t.Fatalf("msg %q cuts %v: got %q, want %q", msg, cuts, got, want)
		}
	}
}

// topRef is TOP done the obvious way: header lines up to and including the
// first empty one, then n lines.
func topRef(msg []byte, n int) []byte {
	lines := bytes.SplitAfter(msg, []byte("\n"))
	var out []byte
	i := 0
	for ; i < len(lines); i++ {
		out = append(out, lines[i]...)
		if l := bytes.TrimSuffix(bytes.TrimSuffix(lines[i], []byte("\n")), []byte("\r")); len(l) == 0 && bytes.HasSuffix(lines[i], []byte("\n")) {
			i++
			break
		}
	}
	for j := 0; j < n && i < len(lines); j, i = j+1, i+1 {
		out = append(out, lines[i]...)
	}
	return out
}

func TestTopWriter(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	alphabet := []byte("\r\nab")
	for range 3000 {
		msg := make([]byte, rng.Intn(30))
		for i := range msg {
			msg[i] = alphabet[rng.Intn(len(alphabet))]
		}
		n := rng.Intn(4)
		var out bytes.Buffer
		tw := newTopWriter(&out, n)
		rest := msg
		for len(rest) > 0 {
			k := min(len(rest), 1+rng.Intn(5))
			if _, err := tw.Write(rest[:k]); err != nil {
				if !errors.Is(err, errTopDone) {
					t.Fatal(err)
				}
				break
			}
			rest = rest[k:]
		}
		if want := topRef(msg, n); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("TOP %d of %q: got %q, want %q", n, msg, out.Bytes(), want)
		}
	}
}

func TestDecodeResponse(t *testing.T) {
	for in, want := range map[string]string{"": "", "=": "", "YQ==": "a", "YWI=": "ab", "YWJj": "abc"} {
		if got, err := decodeResponse(in); err != nil || string(got) != want {
			t.Errorf("decodeResponse(%q) = %q, %v", in, got, err)
		}
	}
	// RFC 5034 4: characters outside the alphabet, and padding anywhere but
	// the end, are rejected.
	for _, in := range []string{"=AAA", "AAA=BBB", "YQ", "Y Q==", "YQ==\r", "YW\nJj", "YQ=", "Y-==", "YQ===", "YWJj=="} {
		if _, err := decodeResponse(in); err == nil {
			t.Errorf("decodeResponse(%q) accepted", in)
		}
	}
}

var _ io.Writer = (*dotWriter)(nil)
