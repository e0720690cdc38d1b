package pop3server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Command is one parsed command line.
type Command struct {
	// Verb is the keyword in upper case (RFC 1939 3: keywords are
	// case-insensitive).
	Verb string
	// Args are the arguments, split at spaces.
	Args []string
	// Rest is everything after the keyword and the one space that follows
	// it, verbatim: PASS takes it whole, since a password may contain spaces
	// (RFC 1939 7 PASS).
	Rest string
}

// Syntax errors from ParseCommand and readLine. The dispatcher answers each
// with -ERR; only errLineFlood ends the session.
var (
	errEmptyCommand = errors.New("pop3: empty command line")
	errBadVerb      = errors.New("pop3: malformed command keyword")
	errControlChar  = errors.New("pop3: control character in command line")
	// errLineTooLong: the line was longer than allowed; it has been read to
	// its end and dropped, so the session can go on.
	errLineTooLong = errors.New("pop3: command line too long")
	// errLineFlood: a line went on far past the limit without ending; the
	// session is closed rather than reading it for ever.
	errLineFlood = errors.New("pop3: endless command line")
)

// maxVerbLen bounds the keyword. RFC 1939 3: keywords are three or four
// characters; extensions keep to four. A little slack costs nothing: an
// unknown keyword is refused by the command table anyway.
const maxVerbLen = 16

// ParseCommand parses one command line without its line ending (RFC 1939 3:
// a keyword, then arguments, each separated by a single space). It is
// lenient where that is harmless: runs of spaces separate arguments as one,
// and octets of 0x80 and above are allowed (UTF-8 user names and passwords,
// which sasl.PreparePassword handles). Control characters are not: RFC 1939 3
// says arguments are printable ASCII, and a NUL or CR inside a line is never
// a client's honest intent.
func ParseCommand(line []byte) (Command, error) {
	if len(line) == 0 {
		return Command{}, errEmptyCommand
	}
	for _, b := range line {
		if b < 0x20 || b == 0x7f {
			return Command{}, errControlChar
		}
	}
	verb, rest, hasRest := bytes.Cut(line, []byte{' '})
	if len(verb) == 0 || len(verb) > maxVerbLen {
		return Command{}, errBadVerb
	}
	up := make([]byte, len(verb))
	for i, b := range verb {
		switch {
		case b >= 'a' && b <= 'z':
			up[i] = b - 'a' + 'A'
		case b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
			up[i] = b
		default:
			return Command{}, errBadVerb
		}
	}
	cmd := Command{Verb: string(up)}
	if hasRest {
		cmd.Rest = string(rest)
		for _, f := range bytes.Split(rest, []byte{' '}) {
			if len(f) > 0 {
				cmd.Args = append(cmd.Args, string(f))
			}
		}
	}
	return cmd, nil
}

// parseMsgNum parses a message-number argument (RFC 1939 5: decimal, 1 and
// up). Nine digits at most, so it never overflows.
func parseMsgNum(s string) (int, bool) {
	n, ok := parseCount(s)
	return n, ok && n >= 1
}

// parseCount parses a non-negative decimal number of at most nine digits
// (TOP's line count, RFC 1939 7).
func parseCount(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// floodFactor: a line that runs on past floodFactor times its limit without
// a line ending ends the session (errLineFlood).
const floodFactor = 64

// readLine reads one line and returns it without CRLF. max is the longest
// line accepted, line ending included (RFC 2449 4 counts the CRLF). A bare
// LF also ends a line: lenient for hand-typed sessions, and harmless since
// no POP3 client command carries data.
//
// The returned slice is valid until the next read from r.
func readLine(r *bufio.Reader, max int, buf []byte) ([]byte, error) {
	line := buf[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			if err == nil {
				return nil, errLineTooLong
			}
			if err != bufio.ErrBufferFull {
				return nil, err
			}
			return nil, discardLine(r, int64(max)*floodFactor)
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// discardLine reads and drops the rest of an over-long line: errLineTooLong
// once its end is found, errLineFlood if none comes within limit octets.
func discardLine(r *bufio.Reader, limit int64) error {
	var n int64
	for n < limit {
		chunk, err := r.ReadSlice('\n')
		n += int64(len(chunk))
		if err == nil {
			return errLineTooLong
		}
		if err != bufio.ErrBufferFull {
			return err
		}
	}
	return errLineFlood
}

// dotWriter writes the body of a multi-line response (RFC 1939 3): every
// line that begins with the termination octet "." gets one more "." in
// front. Lines are taken to begin after every LF, not only after CRLF, so
// not even a stored body with a bare LF can end the response early for a
// client that splits lines at LF. Close ends the response.
type dotWriter struct {
	w   *bufio.Writer
	bol bool // the next octet begins a line
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, bol: true} }

var lfDot = []byte("\n.")

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	if d.bol && p[0] == '.' {
		if err := d.w.WriteByte('.'); err != nil {
			return 0, err
		}
	}
	for {
		i := bytes.Index(p, lfDot)
		if i < 0 {
			break
		}
		// Up to and including the LF, then the stuffed dot; p goes on with
		// the line's own dot, which the next search starts past.
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		if err := d.w.WriteByte('.'); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	if _, err := d.w.Write(p); err != nil {
		return 0, err
	}
	d.bol = p[len(p)-1] == '\n'
	return n, nil
}

// Close writes the termination line. RFC 1939 3: the response ends with
// CRLF "." CRLF, so a body that does not end with a line break gets a CRLF
// first (it is not part of the message; the size reported does not count
// it). A body that ends with a bare LF is taken as ended: the client sees
// LF "." CRLF, the only reading of which is the end.
func (d *dotWriter) Close() error {
	if !d.bol {
		if _, err := d.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// errTopDone stops the copy of a message once TOP has what it asked for.
var errTopDone = errors.New("pop3: TOP has sent the lines asked for")

// topWriter passes on a message's header, the blank line after it, and then
// the first lines body lines, and returns errTopDone once it has (RFC 1939 7
// TOP). A message without a blank line is all header and goes out whole.
type topWriter struct {
	w        io.Writer
	inHeader bool
	lines    int  // body lines still to pass
	lineLen  int  // octets of the current line so far, LF excluded
	crOnly   bool // the current line so far is a single CR
	done     bool
}

func newTopWriter(w io.Writer, lines int) *topWriter {
	return &topWriter{w: w, inHeader: true, lines: lines}
}

func (t *topWriter) Write(p []byte) (int, error) {
	if t.done {
		return 0, errTopDone
	}
	if !t.inHeader && t.lines == 0 {
		t.done = true
		return 0, errTopDone
	}
	n := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := t.w.Write(p); err != nil {
				return n, err
			}
			t.crOnly = t.lineLen == 0 && len(p) == 1 && p[0] == '\r'
			t.lineLen += len(p)
			return n + len(p), nil
		}
		seg := p[:i+1]
		if _, err := t.w.Write(seg); err != nil {
			return n, err
		}
		n += len(seg)
		content := t.lineLen + i // octets before the LF
		blank := content == 0 || (content == 1 && (t.crOnly || (t.lineLen == 0 && p[0] == '\r')))
		t.lineLen, t.crOnly = 0, false
		p = p[i+1:]
		if t.inHeader {
			if blank {
				t.inHeader = false
			}
		} else {
			t.lines--
		}
		if !t.inHeader && t.lines == 0 {
			t.done = true
			return n, errTopDone
		}
	}
	return n, nil
}
