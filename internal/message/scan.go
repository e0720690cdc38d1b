package message

import (
	"bytes"
	"io"
)

// scanner is a forward-only window over the message that knows the absolute offset of every byte and how many
// line feeds were consumed, so the parser can record offsets and line counts without keeping the body.
type scanner struct {
	r       io.Reader
	buf     []byte
	rd, wr  int   // unread bytes are buf[rd:wr]
	base    int64 // absolute offset of buf[0]
	nl      int64 // line feeds consumed
	scanned int   // buf[rd:rd+scanned] is known to hold no '\n'
	eof     bool
	err     error // first read error other than io.EOF
}

// keepBehind bytes before rd survive compaction, so the parser can look at the line break before a boundary.
const keepBehind = 2

func (s *scanner) reset(r io.Reader, buf []byte) {
	*s = scanner{r: r, buf: buf}
}

func (s *scanner) pos() int64 { return s.base + int64(s.rd) }

func (s *scanner) window() []byte { return s.buf[s.rd:s.wr] }

// before returns the byte k positions before the read position, or 0 when there is none.
func (s *scanner) before(k int) byte {
	if s.rd < k {
		return 0
	}
	return s.buf[s.rd-k]
}

// bol reports whether the read position is at the start of a line.
func (s *scanner) bol() bool {
	return s.pos() == 0 || s.before(1) == '\n'
}

// fill reads more input into the window. It returns false when nothing more can be added: end of input, a read
// error, or a full window.
func (s *scanner) fill() bool {
	if s.eof {
		return false
	}
	if s.rd > keepBehind && (s.wr == len(s.buf) || s.rd > len(s.buf)/2) {
		shift := s.rd - keepBehind
		copy(s.buf, s.buf[shift:s.wr])
		s.rd -= shift
		s.wr -= shift
		s.base += int64(shift)
	}
	if s.wr == len(s.buf) {
		return false
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.wr:])
		s.wr += n
		if err != nil {
			s.eof = true
			if err != io.EOF {
				s.err = err
			}
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.eof = true
	s.err = io.ErrNoProgress
	return false
}

// line returns the rest of the current line including its '\n', and whether the '\n' is there. Without it, the
// line either ends the input or is longer than the window, and only its start is returned; an empty result means
// end of input. The line stays unread until consume.
func (s *scanner) line() ([]byte, bool) {
	for {
		w := s.buf[s.rd:s.wr]
		if i := bytes.IndexByte(w[s.scanned:], '\n'); i >= 0 {
			return w[:s.scanned+i+1], true
		}
		s.scanned = len(w)
		if !s.fill() {
			return s.buf[s.rd:s.wr], false
		}
	}
}

// consume advances over n unread bytes.
func (s *scanner) consume(n int) {
	s.nl += int64(bytes.Count(s.buf[s.rd:s.rd+n], nlBytes))
	s.rd += n
	s.scanned = max(0, s.scanned-n)
}

// skipLine consumes through the end of the current line and reports whether it ended with '\n'.
func (s *scanner) skipLine() bool {
	for {
		l, ok := s.line()
		s.consume(len(l))
		if ok || len(l) == 0 {
			return ok
		}
	}
}

var nlBytes = []byte{'\n'}
