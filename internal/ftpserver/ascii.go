package ftpserver

import (
	"bufio"
	"io"
)

// TYPE A (RFC 959 3.1.1.1): on the wire every end of line is CRLF; on disk
// (Unix) it is LF. Sending turns each LF not already preceded by CR into
// CRLF, so files stored with CRLF go out unchanged; receiving turns CRLF into
// LF and keeps a lone CR. A file uploaded in TYPE A therefore comes back
// byte-exact in TYPE A.

// toWire reads a stored file and yields its TYPE A form.
type toWire struct {
	r      *bufio.Reader
	prevCR bool
	lfNext bool // a CR was emitted for an LF; the LF comes next
}

func newToWire(r io.Reader) *toWire { return &toWire{r: bufio.NewReaderSize(r, 32<<10)} }

func (t *toWire) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if t.lfNext {
			p[n] = '\n'
			n++
			t.lfNext, t.prevCR = false, false
			continue
		}
		c, err := t.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c == '\n' && !t.prevCR {
			p[n] = '\r'
			n++
			t.lfNext = true
			continue
		}
		p[n] = c
		n++
		t.prevCR = c == '\r'
	}
	return n, nil
}

// fromWire reads TYPE A data from the network and yields what is stored.
type fromWire struct {
	r      *bufio.Reader
	cr     bool // a CR was read; what it means depends on the next byte
	held   byte // a byte read after a lone CR, not yet returned
	isHeld bool
}

func newFromWire(r io.Reader) *fromWire { return &fromWire{r: bufio.NewReaderSize(r, 32<<10)} }

func (f *fromWire) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if f.isHeld {
			p[n] = f.held
			n++
			f.isHeld = false
			continue
		}
		if n > 0 && f.r.Buffered() == 0 {
			return n, nil // do not block for more while holding data
		}
		c, err := f.r.ReadByte()
		if err != nil {
			if f.cr {
				f.cr = false
				p[n] = '\r'
				n++
				continue
			}
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if f.cr {
			f.cr = false
			if c == '\n' {
				p[n] = '\n'
				n++
				continue
			}
			p[n] = '\r' // a lone CR stays
			n++
			if c == '\r' {
				f.cr = true
			} else {
				f.held, f.isHeld = c, true
			}
			continue
		}
		if c == '\r' {
			f.cr = true
			continue
		}
		p[n] = c
		n++
	}
	return n, nil
}

// wireSize counts the octets r would take in TYPE A (RFC 3659 4: SIZE
// reports the transfer size in the current TYPE).
func wireSize(r io.Reader) (int64, error) {
	return io.Copy(io.Discard, newToWire(r))
}

// diskOffset finds the stored offset whose TYPE A form is wire octets long,
// for REST before STOR in TYPE A (RFC 3659 5.1: the marker counts octets of
// the data stream). ok is false when wire falls inside an inserted CRLF or
// past the end.
func diskOffset(r io.Reader, wire int64) (disk int64, ok bool, err error) {
	br := bufio.NewReaderSize(r, 32<<10)
	var w int64
	prevCR := false
	for w < wire {
		c, err := br.ReadByte()
		if err == io.EOF {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		if c == '\n' && !prevCR {
			w += 2
		} else {
			w++
		}
		prevCR = c == '\r'
		disk++
	}
	return disk, w == wire, nil
}
