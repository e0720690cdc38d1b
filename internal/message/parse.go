package message

import (
	"bytes"
	"io"
	"sync"
)

// Parse reads a whole message and returns its structure. Line endings may be CRLF (as stored) or bare LF, and
// the last line may lack one.
//
// Parse never fails on malformed MIME; it answers what Dovecot answers: a multipart whose boundary never occurs
// keeps its text as preamble and gets one empty text/plain child, a missing close delimiter ends the multipart at
// its parent's end, an unparsable Content-Type yields an empty type, undecodable encodings are kept as given.
//
// Memory does not grow with the body: only the current part's header (up to Limits.MaxHeaderBytes) and the active
// boundaries are held, the body streams through a fixed window.
//
// The error is non-nil only for a read error (then the Message is nil) or when a limit was reached (then the
// Message is complete and usable, and the error wraps ErrLimit).
func Parse(r io.Reader) (*Message, error) {
	return ParseLimits(r, DefaultLimits)
}

// ParseLimits is Parse with explicit limits; zero fields take DefaultLimits.
func ParseLimits(r io.Reader, lim Limits) (*Message, error) {
	p := parserPool.Get().(*parser)
	defer parserPool.Put(p)
	return p.parse(r, lim)
}

// parseWindow parses with a window of the given size (tests use small ones to reach the window's edges). A
// boundary line is recognised only if it fits in the window.
func parseWindow(r io.Reader, lim Limits, size int) (*Message, error) {
	p := &parser{buf: make([]byte, size)}
	return p.parse(r, lim)
}

func (p *parser) parse(r io.Reader, lim Limits) (*Message, error) {
	p.reset(r, lim.withDefaults())
	p.run()
	if p.s.err != nil {
		return nil, p.s.err
	}
	m := &Message{Size: p.s.pos(), Root: p.root}
	if p.limitErr != nil {
		return m, p.limitErr
	}
	return m, nil
}

// windowSize is the scanner's window: the longest line looked at as a whole, so the longest boundary line
// recognised (RFC 2046 5.1.1 caps boundaries at 70 characters). Longer lines are streamed through.
const windowSize = 32 << 10

var parserPool = sync.Pool{New: func() any {
	return &parser{buf: make([]byte, windowSize), hdr: make([]byte, 0, 4096)}
}}

// frame is one open part on the parser's stack.
type frame struct {
	part     *Part
	boundary []byte // multipart boundary while it can still be met; nil otherwise
	depth    int
	nlBody   int64 // scanner.nl at BodyStart
	digest   bool  // multipart/digest: children default to message/rfc822 (RFC 2046 5.1.5)
	isMsg    bool  // the root of a message: its header carries an envelope
}

type parser struct {
	s        scanner
	buf      []byte
	lim      Limits
	stack    []frame
	root     *Part
	nparts   int
	inHeader bool
	hdr      []byte // the current part's header, at most lim.MaxHeaderBytes
	limitErr error
	nBounds  int // frames with an active boundary

	lastBoundaryEnd int64 // offset just past the last boundary line read
	partsFull       bool  // MaxParts reached: boundaries are no longer recognised
}

func (p *parser) reset(r io.Reader, lim Limits) {
	p.s.reset(r, p.buf)
	p.lim = lim
	clear(p.stack)
	p.stack = p.stack[:0]
	p.root = nil
	p.nparts = 0
	p.limitErr = nil
	p.nBounds = 0
	p.lastBoundaryEnd = 0
	p.partsFull = false
	if cap(p.hdr) > 64<<10 {
		p.hdr = make([]byte, 0, 4096) // do not keep a huge header buffer in the pool
	}
	p.hdr = p.hdr[:0]
}

func (p *parser) setLimit(what string, max int) {
	if p.limitErr == nil {
		p.limitErr = &LimitError{What: what, Max: max}
	}
}

func (p *parser) run() {
	p.root = &Part{Type: "text", Subtype: "plain"}
	p.nparts = 1
	p.stack = append(p.stack, frame{part: p.root, isMsg: true})
	p.inHeader = true
	for {
		var more bool
		if p.inHeader {
			more = p.header()
		} else {
			more = p.body()
		}
		if !more {
			break
		}
	}
	end := p.s.pos()
	for len(p.stack) > 0 {
		p.closeTop(end, p.s.nl)
	}
}

// boundariesLive reports whether a boundary line can still be recognised.
func (p *parser) boundariesLive() bool {
	return p.nBounds > 0 && !p.partsFull
}

// boundaryLine reports which open multipart's boundary line starts the given line, if any (see match). Once
// MaxParts parts exist, no boundary is recognised any more, as in Dovecot: the rest of the message stays in the
// part being read.
func (p *parser) boundaryLine(line []byte) (int, bool) {
	if len(line) < 2 || line[0] != '-' || line[1] != '-' {
		return -1, false
	}
	m, closing := p.match(line[2:])
	if m >= 0 && p.nparts >= p.lim.MaxParts {
		p.partsFull = true
		p.setLimit("parts", p.lim.MaxParts)
		return -1, false
	}
	return m, closing
}

// header reads the header of the part on top of the stack, up to the blank line, the end of input, or a
// boundary line of an enclosing multipart (Dovecot ends a header there too, so a part that lost its blank line
// does not swallow its siblings). It returns false at end of input.
func (p *parser) header() bool {
	s := &p.s
	f := &p.stack[len(p.stack)-1]
	p.hdr = p.hdr[:0]
	for {
		line, complete := s.line()
		if len(line) == 0 { // end of input: the header ends here, the body is empty
			p.endHeader(f, true)
			return false
		}
		if p.boundariesLive() {
			if m, closing := p.boundaryLine(line); m >= 0 {
				p.endHeader(f, true)
				p.boundary(m, closing, line, complete)
				return true
			}
		}
		if complete && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			s.consume(len(line))
			p.endHeader(f, false)
			return true
		}
		p.keepHeader(line)
		s.consume(len(line))
		for !complete { // a line longer than the window
			line, complete = s.line()
			if len(line) == 0 {
				p.endHeader(f, true)
				return false
			}
			p.keepHeader(line)
			s.consume(len(line))
		}
	}
}

func (p *parser) keepHeader(b []byte) {
	room := p.lim.MaxHeaderBytes - len(p.hdr)
	if len(b) > room {
		p.setLimit("header", p.lim.MaxHeaderBytes)
		b = b[:max(room, 0)]
	}
	p.hdr = append(p.hdr, b...)
}

// endHeader records where the body starts, parses the kept header fields, and decides how the body is read.
// closing is set when the part ends right here (end of input or a boundary): nothing is opened inside it.
func (p *parser) endHeader(f *frame, closing bool) {
	pt := f.part
	pt.BodyStart = p.s.pos()
	f.nlBody = p.s.nl
	// Only multiparts set digest, and only their children sit right above them.
	digest := len(p.stack) >= 2 && p.stack[len(p.stack)-2].digest
	// A message root (not a multipart's child) is MIME only with MIME-Version or Content-Type (RFC 2045 4); as
	// in Dovecot, the Content-* fields of a non-MIME root are ignored.
	parseMIMEHeader(pt, p.hdr, digest, f.isMsg)
	if f.isMsg {
		pt.Envelope = parseEnvelope(p.hdr)
	}
	p.inHeader = false
	if closing {
		return
	}
	switch {
	case pt.Type == "multipart":
		if f.depth+1 >= p.lim.MaxDepth {
			p.setLimit("depth", p.lim.MaxDepth)
			return
		}
		f.digest = pt.Subtype == "digest"
		if b := paramValueRaw(pt.Params, "boundary"); b != "" {
			f.boundary = []byte(b)
			p.nBounds++
		}
	case isMessageType(pt):
		// RFC 2046 5.2.1 allows message/rfc822 no encoding but 7bit, 8bit or binary. A part that breaks the rule
		// is still read as a message (as Dovecot does), so BODYSTRUCTURE always has the body-type-msg form RFC 9051
		// 7.5.2 gives "message" "rfc822", never an opaque body a client would misparse.
		if f.depth+1 >= p.lim.MaxDepth {
			p.setLimit("depth", p.lim.MaxDepth)
			return
		}
		if p.nparts >= p.lim.MaxParts {
			p.setLimit("parts", p.lim.MaxParts)
			return
		}
		sub := &Part{HeaderStart: pt.BodyStart, Type: "text", Subtype: "plain"}
		p.nparts++
		pt.Encapsulated = sub
		p.stack = append(p.stack, frame{part: sub, depth: f.depth + 1, isMsg: true})
		p.inHeader = true
	}
}

func isMessageType(pt *Part) bool {
	return pt.Type == "message" && (pt.Subtype == "rfc822" || pt.Subtype == "global")
}

var nlDashDash = []byte("\n--")

// body reads the body of the part on top of the stack until a boundary line of an open multipart. It returns
// false at end of input.
func (p *parser) body() bool {
	s := &p.s
	for {
		if !p.boundariesLive() {
			w := s.window()
			if len(w) == 0 && !s.fill() {
				return false
			}
			s.consume(len(s.window()))
			continue
		}
		w := s.window()
		if len(w) < 3 && s.fill() {
			continue
		}
		if len(w) == 0 {
			return false
		}
		if s.bol() && w[0] == '-' && (len(w) < 2 || w[1] == '-') {
			line, complete := s.line()
			if m, closing := p.boundaryLine(line); m >= 0 {
				p.boundary(m, closing, line, complete)
				return true
			}
			s.consume(len(line))
			continue
		}
		// RFC 2046 5.1.1: a delimiter is "--boundary" at the start of a line.
		if i := bytes.Index(w, nlDashDash); i >= 0 {
			s.consume(i + 1)
			continue
		}
		if s.eof || len(w) < 3 {
			s.consume(len(w))
			continue
		}
		s.consume(len(w) - 2) // "\n-" may continue past the window
	}
}

// match finds the boundary that line (after its leading "--") starts with, as Dovecot does: the longest such
// boundary among the open multiparts, the innermost on a tie (RFC 2046 5.1.2 wants inner boundaries looked at
// first; a prefix match because RFC 2046 5.1.1 allows trailing text after it, which broken senders extend). It
// returns the stack index of the owning frame, or -1, and whether this is the close delimiter ("--" follows).
func (p *parser) match(rest []byte) (int, bool) {
	best := -1
	for i := len(p.stack) - 1; i >= 0; i-- {
		b := p.stack[i].boundary
		if b == nil || len(b) > len(rest) || (best >= 0 && len(b) <= len(p.stack[best].boundary)) {
			continue
		}
		if bytes.Equal(rest[:len(b)], b) {
			best = i
		}
	}
	if best < 0 {
		return -1, false
	}
	rest = rest[len(p.stack[best].boundary):]
	return best, len(rest) >= 2 && rest[0] == '-' && rest[1] == '-'
}

// boundary handles a boundary line of the multipart at stack index m, at the read position: it ends every part
// opened inside that multipart, then starts its next child unless this was the close delimiter.
func (p *parser) boundary(m int, closing bool, line []byte, complete bool) {
	s := &p.s
	at := s.pos()
	// RFC 2046 5.1.1: the line break before "--boundary" belongs to the delimiter, not to the part it ends. Like
	// Dovecot, take it even when it is the blank line of an empty part's header, but not when it ends the previous
	// boundary line (nothing lies between the two lines).
	k := int64(0)
	if at > p.lastBoundaryEnd && s.before(1) == '\n' {
		k = 1
		if at-2 >= p.lastBoundaryEnd && s.before(2) == '\r' {
			k = 2
		}
	}
	end, nl := at-k, s.nl
	if k > 0 {
		nl--
	}
	for len(p.stack)-1 > m {
		p.closeTop(end, nl)
	}
	f := &p.stack[m]
	s.consume(len(line))
	if !complete {
		complete = s.skipLine()
	}
	p.lastBoundaryEnd = s.pos()
	if closing {
		f.boundary = nil
		p.nBounds--
		p.inHeader = false
		return
	}
	if !complete {
		// A delimiter cut off by the end of input starts no part (Dovecot reports none).
		p.inHeader = false
		return
	}
	child := &Part{HeaderStart: s.pos(), Type: "text", Subtype: "plain"}
	p.nparts++
	f.part.Children = append(f.part.Children, child)
	p.stack = append(p.stack, frame{part: child, depth: f.depth + 1})
	p.inHeader = true
}

// closeTop ends the part on top of the stack at end, with nl line feeds consumed before end.
func (p *parser) closeTop(end, nl int64) {
	f := p.stack[len(p.stack)-1]
	p.stack[len(p.stack)-1] = frame{}
	p.stack = p.stack[:len(p.stack)-1]
	if f.boundary != nil {
		p.nBounds--
	}
	pt := f.part
	pt.HeaderStart = min(pt.HeaderStart, end)
	pt.BodyStart = min(max(pt.BodyStart, pt.HeaderStart), end)
	pt.End = end
	pt.Lines = 0
	if pt.BodyStart < end && nl > f.nlBody {
		pt.Lines = nl - f.nlBody
	}
	if pt.Type == "multipart" && len(pt.Children) == 0 {
		// RFC 9051 7.5.2: a multipart has at least one body; Dovecot reports an empty text/plain one.
		pt.Children = []*Part{{HeaderStart: end, BodyStart: end, End: end, Type: "text", Subtype: "plain"}}
	}
}
