package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clientLine is one "C:" line of an RFC example or a transcript.
type clientLine struct {
	src       string // "rfc9051.txt:3484" or "thunderbird.txt:12"
	text      string
	afterPlus bool // transcripts: the line follows an "S: +" continuation request
}

// readRFCLines reads testdata/rfc-client-lines.txt ("rfcNNNN.txt:LINE: text", see
// testdata/extract-rfc-client-lines.sh).
func readRFCLines(t testing.TB) []clientLine {
	data, err := os.ReadFile("testdata/rfc-client-lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []clientLine
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		file, rest, ok1 := strings.Cut(l, ":")
		num, text, ok2 := strings.Cut(rest, ": ")
		if !ok1 || !ok2 {
			if num, ok := strings.CutSuffix(rest, ":"); ok1 && ok {
				out = append(out, clientLine{src: file + ":" + num})
				continue
			}
			t.Fatalf("bad line %q", l)
		}
		out = append(out, clientLine{src: file + ":" + num, text: text})
	}
	return out
}

// readTranscript reads a testdata/transcripts file: "C: " client lines (exactly one space after
// the colon is dropped), "S: " server lines (only their "+" matters: a client line right after
// one is continuation data if no literal claims it), "#" comments and blank lines.
func readTranscript(t testing.TB, path string) []clientLine {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []clientLine
	plus := false
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "C:"):
			out = append(out, clientLine{src: fmt.Sprintf("%s:%d", filepath.Base(path), i+1), text: strings.TrimPrefix(l[2:], " "), afterPlus: plus})
			plus = false
		case strings.HasPrefix(l, "S:"):
			plus = strings.HasPrefix(strings.TrimPrefix(l[2:], " "), "+")
		}
	}
	return out
}

// chunk is the bytes of one command: its first line and whatever its literals pull in.
type chunk struct {
	first clientLine
	data  []byte
	n     int // lines used
}

// commandChunk joins lines[0] with as many following lines as its literals need, counting
// octets: "C:" lines are joined with CRLF, and a literal's data may span lines (RFC examples
// show message literals that way). refuseAt stops at the literal of that index (0-based), as
// when the example's server refused it. It fails when the literal counts do not fall on the
// lines given.
func commandChunk(lines []clientLine, refuseAt int) (chunk, error) {
	first := lines[0]
	text := strings.TrimLeft(first.text, " ") // RFC 9051 8 indents its sample session
	data := []byte(text + "\r\n")
	used := 1
	lineStart := 0
	for lit := 0; ; lit++ {
		line := data[lineStart : len(data)-2]
		size, _, ok := literalMarker(line)
		if !ok || lit == refuseAt {
			return chunk{first, data, used}, nil
		}
		litStart := len(data)
		for int64(len(data)-litStart) < size || !bytes.Contains(data[litStart+int(size):], []byte("\r\n")) {
			if used == len(lines) {
				return chunk{}, fmt.Errorf("%s: literal {%d} runs past the example", first.src, size)
			}
			data = append(data, lines[used].text+"\r\n"...)
			used++
		}
		lineStart = litStart + int(size)
	}
}

// decodeChunk decodes one chunk completely: an APPEND's messages, IDLE's DONE and SASL
// responses in follow (continuation data), and checks that every octet was used.
func decodeChunk(c chunk, follow []string, opts ...Option) (*Command, []*AppendMessage, [][]byte, error) {
	in := append([]byte(nil), c.data...)
	for _, f := range follow {
		in = append(in, f+"\r\n"...)
	}
	src := bytes.NewReader(in)
	d := NewDecoder(bufio.NewReader(src), Limits{}, opts...)
	cmd, err := d.ReadCommand()
	if err != nil {
		return nil, nil, nil, err
	}
	var msgs []*AppendMessage
	var bodies [][]byte
	if cmd.Name == "APPEND" {
		for {
			m, err := d.NextMessage()
			if err != nil {
				return cmd, msgs, bodies, err
			}
			if m == nil {
				break
			}
			b, err := io.ReadAll(m.Body)
			if err != nil {
				return cmd, msgs, bodies, err
			}
			msgs = append(msgs, m)
			bodies = append(bodies, b)
		}
	}
	for _, f := range follow {
		switch {
		case cmd.Name == "IDLE":
			err = d.ReadDone()
		case cmd.Name == "AUTHENTICATE":
			_, err = d.ReadSASLResponse()
		default:
			err = fmt.Errorf("continuation line %q after %s", f, cmd.Name)
		}
		if err != nil {
			return cmd, msgs, bodies, err
		}
	}
	if n := d.Buffered() + src.Len(); n != 0 {
		return cmd, msgs, bodies, fmt.Errorf("%d octets left over", n)
	}
	return cmd, msgs, bodies, nil
}

// rfcKind says how to treat an RFC example line that is not a complete valid command by itself.
type rfcKind struct {
	kind string // "sasl", "sasl-wrapped", "refuse", "unknown", "bad"
	// refuse: how many literals the example's server accepted before it refused one.
	accepted int
	why      string
}

// rfcExceptions is the allow-list of RFC example client lines that are not, by themselves, a
// valid command this server accepts. Every other line of rfc-client-lines.txt must decode
// completely; each line listed here must fail (or be consumed) the way its kind says, so an
// entry that is no longer needed makes the test fail.
var rfcExceptions = map[string]rfcKind{
	// Continuation data of AUTHENTICATE, read with ReadSASLResponse.
	"rfc9051.txt:1526": {kind: "sasl-wrapped", why: "GSSAPI token, wrapped by the RFC editor"},
	"rfc9051.txt:1543": {kind: "sasl", why: "empty GSSAPI response"},
	"rfc9051.txt:1546": {kind: "sasl-wrapped", why: "GSSAPI token, wrapped by the RFC editor"},
	"rfc9051.txt:1576": {kind: "sasl", why: "PLAIN response after an empty challenge"},
	"rfc9051.txt:6216": {kind: "sasl-wrapped", why: "SCRAM client-final, wrapped"},
	"rfc9051.txt:6221": {kind: "sasl", why: "empty SCRAM response"},
	"rfc3501.txt:1634": {kind: "sasl-wrapped", why: "GSSAPI token, wrapped by the RFC editor"},
	"rfc3501.txt:1651": {kind: "sasl", why: "empty GSSAPI response"},
	"rfc3501.txt:1654": {kind: "sasl-wrapped", why: "GSSAPI token, wrapped by the RFC editor"},
	"rfc4959.txt:159":  {kind: "sasl", why: "PLAIN response"},
	"rfc4959.txt:195":  {kind: "sasl", why: "empty EXTERNAL response"},
	// The example's server refuses a literal instead of sending "+".
	"rfc3502.txt:199": {kind: "refuse", why: "A004 NO [TRYCREATE]: the literal is never sent"},
	"rfc3502.txt:201": {kind: "refuse", accepted: 1, why: "A005 NO: quota exceeded at the second message's literal"},
	// Commands this server does not implement: BAD, and the session goes on.
	"rfc9051.txt:4866": {kind: "unknown", why: "XPIG-LATIN, the RFC's example of an unknown command"},
	"rfc3501.txt:3449": {kind: "unknown", why: "XPIG-LATIN"},
	"rfc9051.txt:6199": {kind: "unknown", why: "BLURDYBLOOP {102856}: rejected before its literal"},
	"rfc3501.txt:4410": {kind: "unknown", why: "BLURDYBLOOP {102856}"},
	"rfc6154.txt:432":  {kind: "unknown", why: "GETMETADATA (RFC 5464) is not offered"},
	"rfc6154.txt:437":  {kind: "unknown", why: "SETMETADATA (RFC 5464) is not offered"},
	"rfc6154.txt:442":  {kind: "unknown", why: "SETMETADATA (RFC 5464) is not offered"},
	"rfc7162.txt:1226": {kind: "unknown", why: "SORT (RFC 5256) is not offered"},
	// Lines that are not valid commands.
	"rfc9051.txt:5327": {kind: "unknown", why: "prose, read as a tag and an unknown command: ...very long command line..."},
	"rfc9051.txt:5329": {kind: "unknown", why: "prose, read as a tag and an unknown command: ...empty line..."},
	"rfc3501.txt:3703": {kind: "unknown", why: "prose, read as a tag and an unknown command: ...very long command line..."},
	"rfc3501.txt:3705": {kind: "unknown", why: "prose, read as a tag and an unknown command: ...empty line..."},
	"rfc4959.txt:155":  {kind: "bad", why: "an editorial note in parentheses joined to the command line"},
	"rfc4959.txt:191":  {kind: "bad", why: "an editorial note in parentheses joined to the command line"},
	"rfc4466.txt:182":  {kind: "bad", why: "ANNOTATE select parameter (RFC 5257) is not offered: RFC 4466 2.1 says BAD"},
	"rfc4466.txt:191":  {kind: "bad", why: "ANNOTATE select parameter is not offered"},
	"rfc4466.txt:202":  {kind: "bad", why: "BLURDYBLOOP select parameter: the RFC's own example of a BAD"},
	"rfc5819.txt:150":  {kind: "bad", why: `typo in the RFC: no space in ")""` + `"`},
}

func TestRFCClientLines(t *testing.T) {
	lines := readRFCLines(t)
	seen := map[string]bool{}
	parsed := 0
	for i := 0; i < len(lines); {
		l := lines[i]
		ex, listed := rfcExceptions[l.src]
		seen[l.src] = listed
		switch ex.kind {
		case "sasl", "sasl-wrapped":
			// Reached when the AUTHENTICATE before it is itself allow-listed: check it alone.
			text := l.text
			if ex.kind == "sasl-wrapped" {
				text = strings.ReplaceAll(text, " ", "")
			}
			d := NewDecoder(bufio.NewReader(strings.NewReader(text+"\r\n")), Limits{})
			if _, err := d.ReadSASLResponse(); err != nil {
				t.Errorf("%s: SASL response %q: %v", l.src, l.text, err)
			}
			i++
			continue
		case "unknown", "bad":
			_, _, _, err := decodeChunk(chunk{first: l, data: []byte(strings.TrimLeft(l.text, " ") + "\r\n")}, nil,
				WithContinue(func(LiteralInfo) error { return errors.New("no literal expected") }))
			var se *SyntaxError
			switch {
			case !errors.As(err, &se) || se.Fatal:
				t.Errorf("%s: %q (%s): got %v, want a non-fatal *SyntaxError", l.src, l.text, ex.why, err)
			case ex.kind == "unknown" && !errors.Is(err, ErrUnknownCommand):
				t.Errorf("%s: %q: got %v, want ErrUnknownCommand", l.src, l.text, err)
			case ex.kind == "bad" && errors.Is(err, ErrUnknownCommand):
				t.Errorf("%s: %q: got an unknown-command error, want a syntax error", l.src, l.text)
			}
			i++
			continue
		}
		refuseAt := -1
		if ex.kind == "refuse" {
			refuseAt = ex.accepted
		}
		c, err := commandChunk(lines[i:], refuseAt)
		if err != nil {
			t.Errorf("%v", err)
			i++
			continue
		}
		i += c.n
		// Continuation data: DONE after IDLE, SASL responses after AUTHENTICATE.
		var follow []string
		for i < len(lines) {
			next := lines[i]
			k := rfcExceptions[next.src].kind
			if k == "sasl" || k == "sasl-wrapped" {
				seen[next.src] = true
				text := next.text
				if k == "sasl-wrapped" {
					text = strings.ReplaceAll(text, " ", "")
				}
				follow = append(follow, strings.TrimLeft(text, " "))
			} else if strings.EqualFold(next.text, "DONE") {
				follow = append(follow, next.text)
			} else {
				break
			}
			i++
		}
		var opts []Option
		accepted := 0
		if refuseAt >= 0 {
			opts = append(opts, WithContinue(func(LiteralInfo) error {
				if accepted == refuseAt {
					return errors.New("refused as in the example")
				}
				accepted++
				return nil
			}))
		}
		cmd, _, _, err := decodeChunk(c, follow, opts...)
		if refuseAt >= 0 {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag == "" || se.Fatal || se.Err == nil {
				t.Errorf("%s: %q: got %v, want the refusal as a *SyntaxError with the tag", l.src, l.text, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %q: %v", l.src, c.data, err)
			continue
		}
		parsed++
		checkRoundTrip(t, l.src, cmd)
	}
	for src := range rfcExceptions {
		if !seen[src] {
			t.Errorf("allow-list entry %s matches no line of rfc-client-lines.txt", src)
		}
	}
	if parsed < 400 {
		t.Errorf("only %d RFC example commands decoded", parsed)
	}
	t.Logf("%d RFC example commands decoded, %d allow-listed lines", parsed, len(rfcExceptions))
}

// checkRoundTrip decodes cmd.String() again and compares (not for APPEND, whose String stops at
// the mailbox).
func checkRoundTrip(t testing.TB, src string, cmd *Command) {
	t.Helper()
	if cmd.Name == "APPEND" {
		return
	}
	opts := []Option{WithLiteralPlus()}
	if cmd.UTF8 {
		opts = append(opts, WithUTF8())
	}
	s := cmd.String()
	d := NewDecoder(bufio.NewReader(strings.NewReader(s+"\r\n")), Limits{}, opts...)
	again, err := d.ReadCommand()
	if err != nil {
		t.Errorf("%s: String() %q does not decode: %v", src, s, err)
		return
	}
	if !commandsEqual(cmd, again) {
		t.Errorf("%s: round trip differs:\n first  %#v\n String %q\n second %#v", src, cmd, s, again)
	}
}

func TestTranscripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(paths) < 6 {
		t.Fatalf("transcripts: %v %v", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			lines := readTranscript(t, p)
			n := 0
			for i := 0; i < len(lines); {
				c, err := commandChunk(lines[i:], -1)
				if err != nil {
					t.Fatal(err)
				}
				i += c.n
				var follow []string
				for i < len(lines) && lines[i].afterPlus {
					follow = append(follow, lines[i].text)
					i++
				}
				cmd, _, _, err := decodeChunk(c, follow, WithLiteralPlus())
				if err != nil {
					t.Errorf("%s: %q: %v", c.first.src, c.data, err)
					continue
				}
				n++
				checkRoundTrip(t, c.first.src, cmd)
			}
			if n < 10 {
				t.Errorf("only %d commands", n)
			}
		})
	}
}

// seedChunks returns every RFC example and transcript command as bytes, for fuzzing.
func seedChunks(t testing.TB) [][]byte {
	var out [][]byte
	lines := readRFCLines(t)
	for i := 0; i < len(lines); i++ {
		if c, err := commandChunk(lines[i:], -1); err == nil {
			out = append(out, c.data)
		}
	}
	paths, _ := filepath.Glob("testdata/transcripts/*.txt")
	for _, p := range paths {
		lines := readTranscript(t, p)
		var whole []byte
		for i := 0; i < len(lines); {
			c, err := commandChunk(lines[i:], -1)
			if err != nil {
				break
			}
			i += c.n
			out = append(out, c.data)
			whole = append(whole, c.data...)
			for i < len(lines) && lines[i].afterPlus {
				whole = append(whole, lines[i].text+"\r\n"...)
				i++
			}
		}
		out = append(out, whole)
	}
	return out
}
