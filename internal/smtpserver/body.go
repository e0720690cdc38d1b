package smtpserver

import (
	"errors"
	"io"
)

// bodyReader passes message data to the Deliverer and stops it at the first
// bare CR or bare LF.
//
// RFC 5321 2.3.8: CR and LF "MUST only occur together as CRLF"; 4.1.1.4: the
// data ends with <CRLF>.<CRLF> and nothing else. go-smtp v0.25.1's DATA reader
// ends only on <CRLF>.<CRLF> but passes a bare LF (or CR) through as data, so
// "<LF>.<CRLF>MAIL FROM:..." arrives here as part of one message. Another
// server that ends data on <LF>.<LF> or <LF>.<CRLF> would read a second,
// smuggled message from the same bytes, so the whole message is refused
// (and nothing is stored: the Deliverer sees the error before EOF). BDAT data
// (RFC 3030) has no end marker to confuse, but without BINARYMIME it is still
// text whose lines end in CRLF (RFC 6152 3), and a stored bare LF could
// smuggle on when the message is relayed with DATA later, so it is checked
// the same way.
//
// A message may not begin with white space either: see Read.
//
// The first error from the underlying reader (too big, timeout, the client
// gone) is kept too, because it, not what the Deliverer made of it, is the
// reason to give the client.
type bodyReader struct {
	r      io.Reader
	n      int64 // bytes passed on
	prevCR bool
	err    error // first error other than io.EOF; sticky
	eof    bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	for i := 0; i < n; i++ {
		c := p[i]
		if b.n == 0 && i == 0 && (c == ' ' || c == '\t') {
			// RFC 5322 2.2.3: a line starting with white space continues
			// the field above it. Above the message's first line is our
			// Received header, so such a line would extend it with text
			// the client chose (forged trace information).
			b.err = errLeadingWhitespace
			return 0, b.err
		}
		if (b.prevCR && c != '\n') || (c == '\n' && !b.prevCR) {
			b.err = errBareLineEnding
			b.n += int64(i)
			return i, b.err
		}
		b.prevCR = c == '\r'
	}
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		if b.prevCR {
			b.err = errBareLineEnding
			return n, b.err
		}
		b.eof = true
	case err != nil:
		b.err = err
	}
	return n, err
}
