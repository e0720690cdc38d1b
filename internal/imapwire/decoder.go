package imapwire

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// Decoder reads IMAP commands from a client. It is not safe for concurrent use: the session
// reads one command at a time (RFC 9051 5.5 allows no more).
type Decoder struct {
	r           *bufio.Reader
	lim         Limits
	cont        ContinueFunc
	literalPlus bool
	utf8        bool

	broken error // the stream is unusable (I/O error or fatal syntax error): every call returns it

	// The command being read.
	tag, name string
	err       error  // first error of this command: a *SyntaxError, or an I/O error
	line      int    // text octets read on the current line
	lineTail  []byte // the last octets read on the current line (a literal marker split by an error)
	total     int    // octets buffered for this command (text and literal data)
	args      int
	depth     int

	// Resynchronization after an error (RFC 9051 7.1.5: BAD, and the session continues).
	dirty   bool  // a command was started and not finished: skip its rest before the next one
	atEnd   bool  // the client has sent all of the command but skipLit
	skipLit int64 // literal octets the client will still send and that must be thrown away
	skipOK  int64 // the part of skipLit already accepted with a continuation: not bounded by MaxSkip

	// APPEND in progress (between ReadCommand and the last NextMessage).
	appending bool
	appendN   int
	litLeft   int64 // unread octets of the current message literal
	closeUTF8 bool  // a ")" follows the current literal (RFC 6855 4 utf8-literal)
	gen       int   // bumped for each message, so a stale Body reader fails
}

// NewDecoder returns a Decoder reading from r under lim (zero fields take their defaults).
func NewDecoder(r *bufio.Reader, lim Limits, opts ...Option) *Decoder {
	d := &Decoder{r: r, lim: lim.WithDefaults()}
	for _, o := range opts {
		o(d)
	}
	return d
}

// SetUTF8 switches mailbox names between modified UTF-7 (RFC 3501 5.1.3, the default) and UTF-8
// (after ENABLE UTF8=ACCEPT, RFC 6855 3, or ENABLE IMAP4rev2, RFC 9051 5.1). The server calls it
// when its ENABLE succeeds; Command.UTF8 records the mode each command was decoded in.
func (d *Decoder) SetUTF8(on bool) { d.utf8 = on }

// Reset makes d read from r, keeping its limits and options: after STARTTLS or COMPRESS the
// session wraps the connection in a new reader. Bytes still buffered in the old reader are
// dropped, as they must be after STARTTLS (RFC 9051 6.2.1: command injection).
func (d *Decoder) Reset(r *bufio.Reader) {
	*d = Decoder{r: r, lim: d.lim, cont: d.cont, literalPlus: d.literalPlus, utf8: d.utf8, gen: d.gen + 1, lineTail: d.lineTail[:0]}
}

// Buffered reports how many octets the client sent beyond the last command read. After
// STARTTLS or COMPRESS a non-zero count means the client pipelined past a command it must not.
func (d *Decoder) Buffered() int { return d.r.Buffered() }

// ReadCommand reads the next command. It returns io.EOF when the client closed the connection
// between commands, an I/O error (io.ErrUnexpectedEOF for a connection closed mid-command) after
// which the connection is unusable, or a *SyntaxError. After a non-fatal *SyntaxError the next
// ReadCommand first skips what remains of the rejected command.
//
// For APPEND, ReadCommand returns after the mailbox name; the server then calls NextMessage until
// it returns nil. For IDLE the server calls ReadDone, and for AUTHENTICATE ReadSASLResponse for
// each challenge it sends.
func (d *Decoder) ReadCommand() (*Command, error) {
	if d.broken != nil {
		return nil, d.broken
	}
	if d.dirty {
		if err := d.resync(); err != nil {
			return nil, err
		}
	}
	d.begin()
	// RFC 9051 7.1.5 shows "* BAD Empty command line"; a stray CRLF (some clients send one after
	// an APPEND literal) is harmless, so empty lines are skipped silently.
	for {
		b, err := d.r.Peek(1)
		if len(b) == 0 {
			if err != io.EOF {
				d.broken = err
			}
			return nil, err
		}
		if b[0] == '\n' {
			d.r.Discard(1)
			continue
		}
		if b[0] == '\r' {
			if b2, _ := d.r.Peek(2); len(b2) == 2 && b2[1] == '\n' {
				d.r.Discard(2)
				continue
			}
		}
		break
	}
	d.dirty = true
	c := &Command{UTF8: d.utf8}
	// RFC 9051 9: command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
	c.Tag = d.token(&tagChar)
	if c.Tag == "" {
		d.fail("missing or invalid tag")
	}
	d.tag = c.Tag
	d.expectSP()
	name := strings.ToUpper(d.token(&atomChar))
	if name == "" {
		d.fail("missing command name")
	}
	if name == "UID" {
		// RFC 9051 9: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
		d.expectSP()
		name = "UID " + strings.ToUpper(d.token(&atomChar))
		c.UID = true
	}
	d.name = name
	c.Name = name
	if d.err == nil {
		if p := commandParsers[name]; p != nil {
			p(d, c)
		} else {
			d.failErr(&SyntaxError{Msg: "unknown command", Err: ErrUnknownCommand})
		}
	}
	if d.err != nil {
		return nil, d.finish()
	}
	if !d.appending {
		d.dirty = false
	}
	return c, nil
}

// begin resets the per-command state.
func (d *Decoder) begin() {
	d.tag, d.name, d.err = "", "", nil
	d.newLine()
	d.total, d.args, d.depth = 0, 0, 0
	d.atEnd, d.skipLit, d.skipOK = false, 0, 0
	d.appending, d.appendN, d.litLeft, d.closeUTF8 = false, 0, 0, false
}

// finish turns the recorded error into what the caller gets.
func (d *Decoder) finish() error {
	d.appending = false
	d.litLeft = 0
	se, ok := d.err.(*SyntaxError)
	if !ok {
		d.broken = d.err
		return d.err
	}
	se.Tag, se.Command = d.tag, d.name
	if se.Status == "" {
		se.Status = BAD
	}
	if d.skipLit-d.skipOK > d.lim.MaxSkip {
		// RFC 7888 4: reading a huge non-synchronizing literal only to reject it is the first
		// choice; past MaxSkip the second one applies: BYE and close.
		se.Fatal = true
	}
	if se.Fatal {
		d.broken = se
	}
	d.dirty = true
	return se
}

// resync skips the rest of an abandoned command: the rest of its current line, and for every
// line that ends with a non-synchronizing literal, the literal and the line after it. A line
// ending with a synchronizing literal ends the skipping: the client waits for a continuation
// request that will not come and takes the tagged reply instead (RFC 9051 7.5).
func (d *Decoder) resync() error {
	d.dirty = false
	d.gen++ // an APPEND Body handed out before is dead
	if d.appending && d.litLeft > 0 {
		// The server abandoned an APPEND whose literal it had accepted: the client sends it all.
		d.skipLit, d.skipOK = d.litLeft, d.litLeft
		d.atEnd = false
	}
	d.appending, d.litLeft, d.closeUTF8 = false, 0, false
	budget := d.lim.MaxSkip
	for {
		if d.skipLit > 0 {
			n, free := d.skipLit, d.skipOK
			d.skipLit, d.skipOK = 0, 0
			if n-free > budget {
				return d.fatal("too much data to skip after a rejected command")
			}
			budget -= n - free
			if err := d.discard(n); err != nil {
				return err
			}
			d.atEnd = false
		}
		if d.atEnd {
			return nil
		}
		tail, err := d.discardLine(&budget, d.lineTail)
		if err != nil {
			return err
		}
		size, sync, ok := literalMarker(tail)
		if !ok || sync {
			return nil
		}
		d.skipLit = size
	}
}

func (d *Decoder) fatal(msg string) error {
	se := &SyntaxError{Status: BAD, Msg: msg, Fatal: true}
	d.broken = se
	return se
}

func (d *Decoder) discard(n int64) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		m, err := d.r.Discard(int(chunk))
		n -= int64(m)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.broken = err
			return err
		}
	}
	return nil
}

// discardLine throws away input up to and including the next LF, charging it to budget, and
// returns the last octets before the line end (enough to recognise a literal marker), counting
// the octets of the line already read (tail).
func (d *Decoder) discardLine(budget *int64, tail []byte) ([]byte, error) {
	tail = append([]byte(nil), tail...)
	for {
		buf, err := d.r.Peek(1)
		if len(buf) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.broken = err
			return nil, err
		}
		buf, _ = d.r.Peek(d.r.Buffered())
		i := bytes.IndexByte(buf, '\n')
		seg := buf
		if i >= 0 {
			seg = buf[:i]
		}
		if int64(len(seg)) > *budget {
			return nil, d.fatal("line too long")
		}
		*budget -= int64(len(seg))
		tail = appendTail(tail, seg)
		if i >= 0 {
			d.r.Discard(i + 1)
			return tail, nil
		}
		d.r.Discard(len(buf))
	}
}

// appendTail keeps the last 32 octets of a line.
func appendTail(tail, seg []byte) []byte {
	const keep = 32
	if len(seg) >= keep {
		return append(tail[:0], seg[len(seg)-keep:]...)
	}
	tail = append(tail, seg...)
	if len(tail) > keep {
		tail = append(tail[:0], tail[len(tail)-keep:]...)
	}
	return tail
}

// literalMarker recognises a line ending in a literal header: "{n}", "{n+}", "~{n}" or "~{n+}"
// (RFC 9051 9 literal, literal8; RFC 7888 8).
func literalMarker(line []byte) (size int64, sync, ok bool) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	line = line[:len(line)-1]
	sync = true
	if line[len(line)-1] == '+' {
		sync = false
		line = line[:len(line)-1]
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	n, ok := parseUint(line[i+1:], maxNumber64)
	return int64(n), sync, ok
}

// Errors are recorded, not returned: the first one wins and every later grammar method is a
// no-op, so call sites read like the ABNF.

func (d *Decoder) fail(msg string) { d.failErr(&SyntaxError{Status: BAD, Msg: msg}) }

func (d *Decoder) failCode(code Code, msg string) {
	d.failErr(&SyntaxError{Status: BAD, Code: code, Msg: msg})
}

func (d *Decoder) failErr(se *SyntaxError) {
	if d.err == nil {
		d.err = se
	}
}

func (d *Decoder) ioFail(err error) {
	if d.err != nil {
		return
	}
	if err == io.EOF || err == nil {
		err = io.ErrUnexpectedEOF
	}
	d.err = err
}

// peek returns the next octet without consuming it.
func (d *Decoder) peek() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	b, err := d.r.Peek(1)
	if len(b) == 0 {
		d.ioFail(err)
		return 0, false
	}
	return b[0], true
}

// peekIs reports whether the next octet is c.
func (d *Decoder) peekIs(c byte) bool {
	b, ok := d.peek()
	return ok && b == c
}

// newLine starts a line: after a CRLF, and after literal data.
func (d *Decoder) newLine() {
	d.line = 0
	d.lineTail = d.lineTail[:0]
}

// consume drops n buffered octets of command text, charging them to the line and command limits.
func (d *Decoder) consume(n int) {
	if buf, _ := d.r.Peek(n); len(buf) > 0 {
		d.lineTail = appendTail(d.lineTail, buf)
	}
	d.r.Discard(n)
	d.line += n
	d.total += n
	if d.line > d.lim.MaxLine {
		d.failCode(CodeLimit, "command line too long")
	} else if d.total > d.lim.MaxCommand {
		d.failCode(CodeLimit, "command too long")
	}
}

// token reads the longest run of octets in class.
func (d *Decoder) token(class *[256]bool) string {
	var acc []byte
	for {
		if _, ok := d.peek(); !ok {
			return ""
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		i := 0
		for i < len(buf) && class[buf[i]] {
			i++
		}
		if i < len(buf) {
			var s string
			if acc == nil {
				s = string(buf[:i])
			} else {
				s = string(append(acc, buf[:i]...))
			}
			d.consume(i)
			if d.err != nil {
				return ""
			}
			return s
		}
		acc = append(acc, buf...)
		d.consume(len(buf))
	}
}

// keyword reads an atom and upper-cases it, for case-insensitive keywords (RFC 9051 9 note 1).
func (d *Decoder) keyword() string { return strings.ToUpper(d.token(&atomChar)) }

func (d *Decoder) expectByte(c byte, msg string) bool {
	b, ok := d.peek()
	if !ok {
		return false
	}
	if b != c {
		d.fail(msg)
		return false
	}
	d.consume(1)
	return true
}

// sp consumes an optional SP.
func (d *Decoder) sp() bool {
	if d.peekIs(' ') {
		d.consume(1)
		return true
	}
	return false
}

// expectSP: RFC 9051 9 note 2: SP is exactly one space.
func (d *Decoder) expectSP() bool { return d.expectByte(' ', "missing space between arguments") }

// expectEOL reads the CRLF that ends the command. A bare LF is accepted as well.
func (d *Decoder) expectEOL() {
	b, ok := d.peek()
	if !ok {
		return
	}
	if b == '\r' {
		d.consume(1)
		if b, ok = d.peek(); !ok {
			return
		}
	}
	if b != '\n' {
		if b == ' ' {
			d.fail("too many arguments")
		} else {
			d.fail("unexpected characters at end of command")
		}
		return
	}
	d.r.Discard(1)
	d.atEnd = true
	d.newLine()
}

// arg counts one element against MaxArgs.
func (d *Decoder) arg() bool {
	d.args++
	if d.args > d.lim.MaxArgs {
		d.failCode(CodeLimit, "too many arguments")
		return false
	}
	return d.err == nil
}

// enter and leave bound nesting by MaxDepth.
func (d *Decoder) enter() bool {
	d.depth++
	if d.depth > d.lim.MaxDepth {
		d.failCode(CodeLimit, "nesting too deep")
		return false
	}
	return d.err == nil
}

func (d *Decoder) leave() { d.depth-- }

// list reads "(" elem *(SP elem) ")", or "()" when empty is allowed, calling elem for each.
func (d *Decoder) list(empty bool, elem func()) {
	if !d.expectByte('(', "expected '('") || !d.enter() {
		return
	}
	defer d.leave()
	if d.peekIs(')') {
		if !empty {
			d.fail("empty list")
			return
		}
		d.consume(1)
		return
	}
	for d.err == nil {
		if !d.arg() {
			return
		}
		elem()
		if d.peekIs(')') {
			d.consume(1)
			return
		}
		d.expectByte(' ', "expected ')' or space in list")
	}
}

// Strings: RFC 9051 9 string = quoted / literal; astring = 1*ASTRING-CHAR / string.

// quoted reads DQUOTE *QUOTED-CHAR DQUOTE (RFC 9051 9). QUOTED-CHAR includes UTF8-2/3/4; the
// octets must be valid UTF-8 (RFC 6855 3: "MUST reject, with a BAD response, any octet
// sequences with the high bit set that fail to comply" with UTF-8).
func (d *Decoder) quoted() string {
	if !d.expectByte('"', "expected '\"'") {
		return ""
	}
	var acc []byte
	high := false
	for {
		if _, ok := d.peek(); !ok {
			return ""
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		i := 0
		for ; i < len(buf); i++ {
			c := buf[i]
			if c == '"' || c == '\\' || c == '\r' || c == '\n' || c == 0 {
				break
			}
			if c >= 0x80 {
				high = true
			}
		}
		if i == len(buf) {
			acc = append(acc, buf...)
			d.consume(len(buf))
			continue
		}
		c := buf[i]
		var s string
		if c == '"' && acc == nil {
			s = string(buf[:i])
		} else {
			acc = append(acc, buf[:i]...)
		}
		d.consume(i)
		switch c {
		case '"':
			d.consume(1)
			if acc != nil {
				s = string(acc)
			}
			if high && !utf8.ValidString(s) {
				d.fail("quoted string is not valid UTF-8")
			}
			if d.err != nil {
				return ""
			}
			return s
		case '\\':
			// QUOTED-CHAR = ... / "\" quoted-specials
			d.consume(1)
			e, ok := d.peek()
			if !ok {
				return ""
			}
			if e != '"' && e != '\\' {
				d.fail("invalid escape in quoted string")
				return ""
			}
			acc = append(acc, e)
			d.consume(1)
		case 0:
			d.fail("NUL in quoted string")
			return ""
		default:
			d.fail("unterminated quoted string")
			return ""
		}
		if acc == nil {
			acc = []byte{}
		}
	}
}

// literalHeader reads "{" number64 ["+"] "}" CRLF, or "~{" ... for literal8 (RFC 9051 9 literal,
// literal8; RFC 7888 8; RFC 4466 literal8 with "+").
func (d *Decoder) literalHeader() (size int64, sync, binary, ok bool) {
	if d.peekIs('~') {
		binary = true
		d.consume(1)
	}
	if !d.expectByte('{', "expected '{'") {
		return
	}
	digits := d.token(&digitChar)
	if d.err != nil {
		return
	}
	n, nok := parseUint([]byte(digits), maxNumber64)
	if !nok {
		// The client may send data we cannot measure: resynchronizing is hopeless.
		d.failErr(&SyntaxError{Status: BAD, Msg: "invalid literal size", Fatal: len(digits) > 18})
		return
	}
	sync = true
	if d.peekIs('+') {
		sync = false
		d.consume(1)
	}
	if !d.expectByte('}', "expected '}' in literal") {
		return
	}
	if d.peekIs('\r') {
		d.consume(1)
	}
	if !d.expectByte('\n', "expected CRLF after literal size") {
		return
	}
	d.newLine()
	return int64(n), sync, binary, d.err == nil
}

// acceptLiteral applies the limits, the LITERAL- rule and the server's hook to a literal whose
// header was just read, and on refusal arranges for resynchronization.
func (d *Decoder) acceptLiteral(info LiteralInfo, max int64) bool {
	refuse := func(se *SyntaxError) bool {
		if info.Sync {
			d.atEnd = true // no "+" will be sent: the client sends nothing more of this command
		} else {
			d.skipLit = info.Size // the data is on its way: throw it away
		}
		d.failErr(se)
		return false
	}
	switch {
	case !info.Sync && !d.literalPlus && info.Size > maxNonSyncLiteral:
		// RFC 7888 5 (LITERAL-) and RFC 9051 4.3: BAD, with TOOBIG when answering APPEND.
		return refuse(&SyntaxError{Status: BAD, Code: CodeTooBig, Msg: "non-synchronizing literal larger than 4096 octets"})
	case info.Size > max:
		if info.Append {
			// RFC 7889 4: an APPEND over the APPENDLIMIT gets a tagged TOOBIG (NO, RFC 4469 4).
			return refuse(&SyntaxError{Status: NO, Code: CodeTooBig, Msg: "message larger than the APPENDLIMIT"})
		}
		return refuse(&SyntaxError{Status: BAD, Code: CodeTooBig, Msg: "literal too big"})
	case !info.Append && int64(d.total)+info.Size > int64(d.lim.MaxCommand):
		return refuse(&SyntaxError{Status: BAD, Code: CodeLimit, Msg: "command too long"})
	}
	if d.cont != nil {
		if err := d.cont(info); err != nil {
			return refuse(&SyntaxError{Status: BAD, Msg: "literal refused", Err: err})
		}
	}
	return true
}

// literal reads a literal outside APPEND data and returns its octets as a string. RFC 9051 9:
// literal = "{" number64 ["+"] "}" CRLF *CHAR8, and CHAR8 excludes NUL.
func (d *Decoder) literal() string {
	size, sync, binary, ok := d.literalHeader()
	if !ok {
		return ""
	}
	info := LiteralInfo{Tag: d.tag, Command: d.name, Size: size, Sync: sync, Binary: binary}
	if binary {
		// literal8 only carries APPEND data (RFC 3516 4.2, RFC 4466).
		d.acceptLiteral(info, -1)
		if se, ok := d.err.(*SyntaxError); ok && se.Err == nil {
			se.Code, se.Msg = "", "literal8 is only allowed for APPEND data"
		}
		return ""
	}
	if !d.acceptLiteral(info, d.lim.MaxLiteral) {
		return ""
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		d.ioFail(err)
		return ""
	}
	d.total += int(size)
	d.newLine()
	if bytes.IndexByte(buf, 0) >= 0 {
		d.fail("NUL in literal")
		return ""
	}
	return string(buf)
}

// atLiteral reports whether a literal ("{") or literal8 ("~{") starts here; "~" alone can
// begin an atom.
func (d *Decoder) atLiteral() bool {
	b, ok := d.peek()
	if !ok {
		return false
	}
	if b == '{' {
		return true
	}
	if b != '~' {
		return false
	}
	b2, _ := d.r.Peek(2)
	return len(b2) == 2 && b2[1] == '{'
}

// string reads a quoted string or a literal.
func (d *Decoder) string() string {
	if d.atLiteral() {
		return d.literal()
	}
	if d.peekIs('"') {
		return d.quoted()
	}
	if d.err == nil {
		d.fail("expected a quoted string or a literal")
	}
	return ""
}

// astring: RFC 9051 9 astring = 1*ASTRING-CHAR / string.
func (d *Decoder) astring(what string) string {
	if d.atLiteral() {
		return d.literal()
	}
	if d.peekIs('"') {
		return d.quoted()
	}
	s := d.token(&astringChar)
	if s == "" && d.err == nil {
		d.fail("expected " + what)
	}
	return s
}

// nstring: RFC 9051 9 nstring = string / nil. It reports false for NIL.
func (d *Decoder) nstring() (string, bool) {
	b, ok := d.peek()
	if !ok {
		return "", false
	}
	if b == 'N' || b == 'n' {
		if a := d.keyword(); a != "NIL" && d.err == nil {
			d.fail("expected a string or NIL")
		}
		return "", false
	}
	return d.string(), true
}

// atom: RFC 9051 9 atom = 1*ATOM-CHAR.
func (d *Decoder) atom(what string) string {
	s := d.token(&atomChar)
	if s == "" && d.err == nil {
		d.fail("expected " + what)
	}
	return s
}

// Numbers: RFC 9051 9 number (32-bit), nz-number, number64 (63-bit), nz-number64; RFC 7162 7
// mod-sequence-value (1 to 2^63-1) and mod-sequence-valzer (0 allowed).

const (
	maxNumber   = 1<<32 - 1
	maxNumber64 = 1<<63 - 1
)

func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (max-uint64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func (d *Decoder) num(max uint64, nonZero bool, what string) uint64 {
	s := d.token(&digitChar)
	if d.err != nil {
		return 0
	}
	n, ok := parseUint([]byte(s), max)
	if !ok || nonZero && n == 0 {
		d.fail("expected " + what)
		return 0
	}
	return n
}

func (d *Decoder) number() uint32   { return uint32(d.num(maxNumber, false, "a number")) }
func (d *Decoder) nzNumber() uint32 { return uint32(d.num(maxNumber, true, "a non-zero number")) }
func (d *Decoder) number64() uint64 { return d.num(maxNumber64, false, "a number") }
func (d *Decoder) modSeq() uint64   { return d.num(maxNumber64, true, "a mod-sequence") }
func (d *Decoder) modSeqZ() uint64  { return d.num(maxNumber64, false, "a mod-sequence") }

// seqSet reads a sequence-set (RFC 9051 9, RFC 5182 3 "$").
func (d *Decoder) seqSet() SeqSet {
	s := d.token(&seqChar)
	if d.err != nil {
		return SeqSet{}
	}
	set, err := ParseSeqSet(s)
	if err != nil {
		d.fail("invalid sequence set")
	}
	return set
}

// uidSet reads a sequence-set without "*" or "$" (RFC 7162 7 known-uids: "*" is not allowed).
func (d *Decoder) uidSet() SeqSet {
	set := d.seqSet()
	if d.err == nil && !set.Static() {
		d.fail("'*' and '$' are not allowed here")
	}
	return set
}

// mailbox: RFC 9051 9 mailbox = "INBOX" / astring, as modified UTF-7 (RFC 3501 5.1.3) unless
// UTF-8 mode is on (RFC 6855 3, RFC 9051 5.1). INBOX is left as sent: see CanonicalMailbox.
func (d *Decoder) mailbox() string {
	return d.decodeMailbox(d.astring("a mailbox name"))
}

func (d *Decoder) decodeMailbox(s string) string {
	if d.err != nil {
		return ""
	}
	if d.utf8 {
		if !utf8.ValidString(s) {
			d.fail("mailbox name is not valid UTF-8")
			return ""
		}
		return s
	}
	name, err := DecodeUTF7(s)
	if err != nil {
		d.fail("mailbox name is not valid modified UTF-7")
		return ""
	}
	return name
}

// listMailbox: RFC 9051 9 list-mailbox = 1*list-char / string.
func (d *Decoder) listMailbox() string {
	var s string
	if d.atLiteral() || d.peekIs('"') {
		s = d.string()
	} else if s = d.token(&listChar); s == "" && d.err == nil {
		d.fail("expected a mailbox pattern")
	}
	return d.decodeMailbox(s)
}

// readLine reads one whole line for IDLE's DONE and SASL responses, bounded by MaxLine.
func (d *Decoder) readLine() (string, error) {
	if d.broken != nil {
		return "", d.broken
	}
	var acc []byte
	for {
		buf, err := d.r.Peek(1)
		if len(buf) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.broken = err
			return "", err
		}
		buf, _ = d.r.Peek(d.r.Buffered())
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf)
		}
		if len(acc)+i > d.lim.MaxLine {
			budget := d.lim.MaxSkip
			if _, err := d.discardLine(&budget, nil); err != nil {
				return "", err
			}
			return "", &SyntaxError{Tag: d.tag, Command: d.name, Status: BAD, Code: CodeLimit, Msg: "line too long"}
		}
		acc = append(acc, buf[:i]...)
		if i < len(buf) {
			d.r.Discard(i + 1)
			return string(bytes.TrimSuffix(acc, []byte{'\r'})), nil
		}
		d.r.Discard(i)
	}
}

// ReadDone reads the line that ends IDLE (RFC 9051 6.3.13, RFC 2177 3: idle = "IDLE" CRLF
// "DONE"). Anything else is a *SyntaxError carrying the IDLE command's tag.
func (d *Decoder) ReadDone() error {
	line, err := d.readLine()
	if err != nil {
		return err
	}
	if !strings.EqualFold(line, "DONE") {
		return &SyntaxError{Tag: d.tag, Command: d.name, Status: BAD, Msg: "expected DONE"}
	}
	return nil
}

// ReadSASLResponse reads the client's answer to an AUTHENTICATE challenge (RFC 9051 6.2.2:
// authenticate = ... *(CRLF base64)). A line "*" cancels the exchange and an invalid base64
// string is an error: both are a *SyntaxError (the server MUST answer with a tagged BAD); the
// first has Err ErrSASLCancelled.
func (d *Decoder) ReadSASLResponse() ([]byte, error) {
	line, err := d.readLine()
	if err != nil {
		return nil, err
	}
	if line == "*" {
		return nil, &SyntaxError{Tag: d.tag, Command: d.name, Status: BAD, Msg: "authentication cancelled", Err: ErrSASLCancelled}
	}
	if line == "=" {
		// An empty response the way SASL-IR writes one (RFC 4959 3); some
		// clients (go-imap) answer a final challenge so, and it is unambiguous.
		return []byte{}, nil
	}
	b, err := decodeBase64(line)
	if err != nil {
		return nil, &SyntaxError{Tag: d.tag, Command: d.name, Status: BAD, Msg: "invalid base64 in SASL response"}
	}
	return b, nil
}

// decodeBase64 decodes RFC 9051 9 base64 strictly: encoding/base64 would skip CR and LF.
func decodeBase64(s string) ([]byte, error) {
	if !allIn(s, &base64Char) {
		return nil, base64.CorruptInputError(0)
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

var errStaleBody = errors.New("imapwire: APPEND message body read after the decoder moved on")

// literalReader streams APPEND message data straight from the connection.
type literalReader struct {
	d   *Decoder
	gen int
}

func (r *literalReader) Read(p []byte) (int, error) {
	d := r.d
	if r.gen != d.gen {
		return 0, errStaleBody
	}
	if d.broken != nil {
		return 0, d.broken
	}
	if d.litLeft <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.litLeft {
		p = p[:d.litLeft]
	}
	n, err := d.r.Read(p)
	d.litLeft -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.broken = err
		return n, err
	}
	return n, nil
}

// Character classes of RFC 9051 9.
var (
	atomChar    [256]bool // ATOM-CHAR: any CHAR except atom-specials
	astringChar [256]bool // ASTRING-CHAR = ATOM-CHAR / resp-specials
	tagChar     [256]bool // tag = 1*<any ASTRING-CHAR except "+">
	listChar    [256]bool // list-char = ATOM-CHAR / list-wildcards / resp-specials
	digitChar   [256]bool
	seqChar     [256]bool // digits, ":", ",", "*", "$"
	fetchChar   [256]bool // letters, digits and "." of fetch-att names
	base64Char  [256]bool // base64-char and "=" (RFC 9051 9 base64, initial-resp)
)

func init() {
	for c := 0x01; c <= 0x7f; c++ {
		// atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
		if c < 0x20 || c == 0x7f || strings.IndexByte(`(){ %*"\]`, byte(c)) >= 0 {
			continue
		}
		atomChar[c] = true
	}
	astringChar = atomChar
	astringChar[']'] = true
	tagChar = astringChar
	tagChar['+'] = false
	listChar = astringChar
	listChar['%'], listChar['*'] = true, true
	for c := '0'; c <= '9'; c++ {
		digitChar[c], seqChar[c], fetchChar[c], base64Char[c] = true, true, true, true
	}
	for _, c := range ":,*$" {
		seqChar[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		fetchChar[c], fetchChar[c+'a'-'A'] = true, true
		base64Char[c], base64Char[c+'a'-'A'] = true, true
	}
	fetchChar['.'] = true
	for _, c := range "+/=" {
		base64Char[c] = true
	}
}
