package imapserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"posta/internal/imapwire"
	"posta/internal/message"
)

// errUnknownCTE is returned by writeFetch when BINARY or BINARY.SIZE asks for a part whose
// Content-Transfer-Encoding the server cannot decode. RFC 3516 4.3 (and RFC 9051 6.4.5): the server "MUST fail
// the request and issue a NO response that contains the UNKNOWN-CTE" code. Nothing has been written when it is
// returned.
var errUnknownCTE = errors.New("imapserver: unknown Content-Transfer-Encoding")

// errFetchBroken wraps any error that happened after writeFetch began the response: the bytes of a partial
// "* n FETCH (" response may already be in the encoder's buffer or on the wire, so the session cannot go on
// with the connection and must close it.
var errFetchBroken = errors.New("imapserver: FETCH response broken off")

// binaryBufferMax is the largest encoded part BINARY decodes in memory. Buffered data goes out as a string,
// literal or literal8 as its octets require (RFC 3516 4.3: a <string> SHOULD be used when there is no NUL);
// a larger part is decoded twice, once to learn its size and once to stream it as a literal8, so that memory
// does not grow with attachments.
const binaryBufferMax = 256 << 10

// fetchStep writes one prepared FETCH item. Steps are prepared before the response starts, so every error that
// can be reported with a tagged NO (a message gone, a corrupt structure, an unknown CTE, a failed read of a
// header) is found while nothing has been written yet.
type fetchStep func(fw *imapwire.FetchWriter)

// needsSeen reports whether items set \Seen: a BODY[...] or BINARY[...] without .PEEK, RFC822 or RFC822.TEXT
// (RFC 9051 6.4.5: "The \Seen flag is implicitly set"; RFC 3501 6.4.5 for the RFC822 items; RFC 3516 4.2).
// RFC822.HEADER is BODY.PEEK[HEADER] and BINARY.SIZE reads nothing, so neither does.
func needsSeen(items []imapwire.FetchItem) bool {
	for _, it := range items {
		switch it.Attr {
		case imapwire.FetchBodySection, imapwire.FetchBinary:
			if !it.Peek {
				return true
			}
		case imapwire.FetchRFC822, imapwire.FetchRFC822Text:
			return true
		}
	}
	return false
}

// writeFetch writes one untagged FETCH response for m with items, in the order given. The caller sets \Seen
// first when needsSeen says so, puts the new flags into m.Meta and adds FLAGS to items if they changed (RFC 9051
// 6.4.5: "they SHOULD be included"), and adds UID for UID FETCH. rev2 is whether the session speaks IMAP4rev2;
// no item is rendered differently today (RFC 9051 Appendix E deprecated the RFC822 items but kept their form),
// the flag is there so that a future difference stays inside this file.
//
// An error wrapping errFetchBroken means a response was begun and the connection must be closed; any other
// error (errUnknownCTE, mailstore.ErrNoMessage, a read failure) comes before anything was written.
func writeFetch(ctx context.Context, e *imapwire.Encoder, m *msg, items []imapwire.FetchItem, rev2 bool) error {
	steps := make([]fetchStep, 0, len(items))
	for _, it := range items {
		s, err := m.prepareFetch(ctx, it)
		if err != nil {
			return fmt.Errorf("imapserver: FETCH %s of UID %d: %w", it, m.Meta.UID, err)
		}
		steps = append(steps, s)
	}
	fw := e.Fetch(m.Seq)
	for _, s := range steps {
		s(fw)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("%w: UID %d: %w", errFetchBroken, m.Meta.UID, err)
	}
	return nil
}

// prepareFetch prepares one item.
func (m *msg) prepareFetch(ctx context.Context, it imapwire.FetchItem) (fetchStep, error) {
	switch it.Attr {
	case imapwire.FetchUID:
		uid := m.Meta.UID
		return func(fw *imapwire.FetchWriter) { fw.UID(uid) }, nil
	case imapwire.FetchFlags:
		flags := flagList(m.Meta.Flags)
		return func(fw *imapwire.FetchWriter) { fw.Flags(flags...) }, nil
	case imapwire.FetchInternalDate:
		d := m.Meta.InternalDate
		return func(fw *imapwire.FetchWriter) { fw.InternalDate(d) }, nil
	case imapwire.FetchRFC822Size:
		n := m.Meta.Size
		return func(fw *imapwire.FetchWriter) { fw.RFC822Size(n) }, nil
	case imapwire.FetchModSeq:
		ms := m.Meta.ModSeq
		return func(fw *imapwire.FetchWriter) { fw.ModSeq(ms) }, nil
	case imapwire.FetchEnvelope:
		pm, err := m.parsed(ctx)
		if err != nil {
			return nil, err
		}
		raw := pm.IMAPEnvelope()
		return func(fw *imapwire.FetchWriter) { fw.Envelope(raw) }, nil
	case imapwire.FetchBody, imapwire.FetchBodyStructure:
		pm, err := m.parsed(ctx)
		if err != nil {
			return nil, err
		}
		ext := it.Attr == imapwire.FetchBodyStructure
		raw := pm.IMAPBodyStructure(ext)
		return func(fw *imapwire.FetchWriter) { fw.BodyStructure(raw, ext) }, nil
	case imapwire.FetchRFC822:
		// RFC 3501 6.4.5: RFC822 is BODY[] (no partial), named RFC822 in the response.
		return m.sectionStep(ctx, it, imapwire.Section{}, nil)
	case imapwire.FetchRFC822Header:
		return m.sectionStep(ctx, it, imapwire.Section{Spec: imapwire.SpecHeader}, nil)
	case imapwire.FetchRFC822Text:
		return m.sectionStep(ctx, it, imapwire.Section{Spec: imapwire.SpecText}, nil)
	case imapwire.FetchBodySection:
		return m.sectionStep(ctx, it, it.Section, it.Partial)
	case imapwire.FetchBinary, imapwire.FetchBinarySize:
		return m.binaryStep(ctx, it)
	}
	return nil, fmt.Errorf("imapserver: unknown FETCH item %v", it.Attr)
}

// fetchPartialRange applies <offset.count> to a section of size octets (RFC 9051 6.4.5): an origin past the end
// gives an empty string, and a count reaching past the end is truncated.
func fetchPartialRange(size int64, p *imapwire.Partial) (start, n int64) {
	if p == nil {
		return 0, size
	}
	if p.Offset >= uint64(size) {
		return size, 0
	}
	start = int64(p.Offset)
	n = size - start
	if p.Count < uint64(n) {
		n = int64(p.Count)
	}
	return start, n
}

// sectionStep prepares BODY[section]<partial> and the RFC822 items. The data is sent as a literal, as Dovecot
// does, streamed from the body except for HEADER.FIELDS(.NOT), whose filtered header is built in memory.
//
// A section naming no part of the message (a part number past the last, HEADER or TEXT of a part that is not
// message/rfc822) gets an empty string: RFC 9051 leaves the answer open (nstring allows NIL too), and the
// reference server, Dovecot, returns an empty part, which clients have long been tested against.
func (m *msg) sectionStep(ctx context.Context, it imapwire.FetchItem, sec imapwire.Section, p *imapwire.Partial) (fetchStep, error) {
	pm, err := m.parsed(ctx)
	if err != nil {
		return nil, err
	}
	msec := message.Section{Part: sec.Part, Spec: message.Specifier(sec.Spec), Fields: sec.Fields}
	span, err := pm.Section(msec)
	if errors.Is(err, message.ErrNoPart) {
		return func(fw *imapwire.FetchWriter) { fw.SectionReader(it, 0, bytes.NewReader(nil)) }, nil
	}
	if err != nil {
		return nil, err
	}
	if span.Filter {
		raw, err := m.readSpan(ctx, span.Start, span.End)
		if err != nil {
			return nil, err
		}
		// RFC 9051 6.4.5: "A substring fetch of a HEADER.FIELDS or HEADER.FIELDS.NOT part specifier is
		// calculated after subsetting the header."
		data := msec.Filter(raw)
		start, n := fetchPartialRange(int64(len(data)), p)
		data = data[start : start+n]
		return func(fw *imapwire.FetchWriter) {
			fw.SectionReader(it, int64(len(data)), literalNoNULReader{bytes.NewReader(data)})
		}, nil
	}
	body, err := m.body(ctx)
	if err != nil {
		return nil, err
	}
	start, n := fetchPartialRange(span.End-span.Start, p)
	r := io.NewSectionReader(body, span.Start+start, n)
	return func(fw *imapwire.FetchWriter) { fw.SectionReader(it, n, literalNoNULReader{r}) }, nil
}

// literalNoNULReader replaces NUL octets by 0x80, as Dovecot does: a literal may not carry NUL (RFC 9051 9: literal
// holds CHAR8 = %x01-ff) and only BINARY may answer with a literal8. The size is unchanged.
type literalNoNULReader struct{ r io.Reader }

func (nr literalNoNULReader) Read(p []byte) (int, error) {
	n, err := nr.r.Read(p)
	for i, c := range p[:n] {
		if c == 0 {
			p[i] = 0x80
		}
	}
	return n, err
}

// binaryPart finds the part a section-binary names: the part itself, or for BINARY[] (no part number) the root,
// with whole set because the answer then starts with the message header. It follows message.Message.Section:
// part 1 of a non-multipart message is its body, and the parts of a message/rfc822 part are those of the
// message inside it.
func binaryPart(pm *message.Message, path []int) (p *message.Part, whole, ok bool) {
	if len(path) == 0 {
		return pm.Root, true, true
	}
	msg := pm.Root
	var cur *message.Part
	for _, n := range path {
		if cur != nil {
			switch {
			case cur.Encapsulated != nil:
				msg = cur.Encapsulated
			case cur.Type == "multipart":
				msg = cur
			default:
				return nil, false, false
			}
		}
		if msg.Type == "multipart" {
			if n < 1 || n > len(msg.Children) {
				return nil, false, false
			}
			cur = msg.Children[n-1]
		} else {
			if n != 1 {
				return nil, false, false
			}
			cur = msg
		}
	}
	return cur, false, true
}

// isLeafPart reports whether a part is a leaf in the sense of RFC 9051 6.4.5 (BINARY "can only be requested for
// leaf body parts": not multipart/*, message/rfc822 or message/global).
func isLeafPart(p *message.Part) bool { return p.Type != "multipart" && p.Encapsulated == nil }

// binarySource returns a function that opens the decoded data of BINARY[section] and the size of its encoded
// form. A composite part is passed through unchanged: RFC 2045 6.4 allows composite types no encoding but
// 7bit, 8bit or binary, so there is nothing to decode; this is also what the whole message is when its root is
// composite. For a leaf, BINARY[] is its header followed by its decoded body.
func (m *msg) binarySource(ctx context.Context, p *message.Part, whole bool) (func() io.Reader, int64, error) {
	body, err := m.body(ctx)
	if err != nil {
		return nil, 0, err
	}
	start := p.BodyStart
	if whole {
		start = p.HeaderStart
	}
	if !isLeafPart(p) {
		return func() io.Reader { return io.NewSectionReader(body, start, p.End-start) }, p.End - start, nil
	}
	if _, err := decodeCTE(p, bytes.NewReader(nil)); err != nil {
		return nil, 0, err
	}
	open := func() io.Reader {
		dec, _ := decodeCTE(p, io.NewSectionReader(body, p.BodyStart, p.End-p.BodyStart))
		if whole {
			return io.MultiReader(io.NewSectionReader(body, p.HeaderStart, p.BodyStart-p.HeaderStart), dec)
		}
		return dec
	}
	return open, p.End - start, nil
}

// binaryStep prepares BINARY[part]<partial> and BINARY.SIZE[part] (RFC 3516 4.2, 4.3; RFC 9051 6.4.5).
// A part that does not exist gets an empty string and size 0, like BODY[] (and Dovecot).
func (m *msg) binaryStep(ctx context.Context, it imapwire.FetchItem) (fetchStep, error) {
	pm, err := m.parsed(ctx)
	if err != nil {
		return nil, err
	}
	part := it.Section.Part
	p, whole, ok := binaryPart(pm, part)
	if !ok {
		if it.Attr == imapwire.FetchBinarySize {
			return func(fw *imapwire.FetchWriter) { fw.BinarySize(part, 0) }, nil
		}
		return func(fw *imapwire.FetchWriter) { fw.Section(it, nil) }, nil
	}
	open, encSize, err := m.binarySource(ctx, p, whole)
	if err != nil {
		return nil, err
	}
	if encSize <= binaryBufferMax {
		data, err := io.ReadAll(open())
		if err != nil {
			return nil, fmt.Errorf("imapserver: decode part: %w", err)
		}
		if it.Attr == imapwire.FetchBinarySize {
			n := binarySizeClamp(int64(len(data)))
			return func(fw *imapwire.FetchWriter) { fw.BinarySize(part, n) }, nil
		}
		start, n := fetchPartialRange(int64(len(data)), it.Partial)
		data = data[start : start+n]
		return func(fw *imapwire.FetchWriter) { fw.Section(it, data) }, nil
	}
	// Large: learn the decoded size without keeping the data, then decode again while writing.
	size, err := io.Copy(io.Discard, open())
	if err != nil {
		return nil, fmt.Errorf("imapserver: decode part: %w", err)
	}
	if it.Attr == imapwire.FetchBinarySize {
		n := binarySizeClamp(size)
		return func(fw *imapwire.FetchWriter) { fw.BinarySize(part, n) }, nil
	}
	start, n := fetchPartialRange(size, it.Partial)
	return func(fw *imapwire.FetchWriter) {
		r := open()
		if _, err := io.CopyN(io.Discard, r, start); err != nil {
			r = bytes.NewReader(nil) // SectionReader then reports the short literal
		}
		fw.SectionReader(it, n, r)
	}, nil
}

// binarySizeClamp bounds a size to BINARY.SIZE's number (RFC 3516 7: number, 32 bits); messages are far smaller
// than the APPENDLIMIT allows this to matter, but a wrapped value would be a lie.
func binarySizeClamp(n int64) uint32 {
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}

// decodeCTE undoes a part's Content-Transfer-Encoding (RFC 2045 6). 7bit, 8bit and binary are identities;
// base64 and quoted-printable are decoded leniently (broken input yields what can be recovered, never an
// error, because a message already stored cannot be refused). Decoded text/* data gets CRLF line ends (RFC 3516
// 6: "textual line-oriented sections are always transmitted using the IMAP4 CRLF line termination"). Any other
// encoding is errUnknownCTE.
func decodeCTE(p *message.Part, r io.Reader) (io.Reader, error) {
	var dec io.Reader
	switch p.Encoding {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "base64":
		dec = newCTEBase64Reader(r)
	case "quoted-printable":
		dec = newCTEQPReader(r)
	default:
		return nil, fmt.Errorf("%w %q", errUnknownCTE, p.Encoding)
	}
	if p.Type == "text" {
		dec = &cteCRLFReader{r: dec}
	}
	return dec, nil
}

// cteBase64Reader decodes base64 (RFC 2045 6.8) leniently: characters outside the alphabet (line breaks, spaces,
// garbage) are ignored as 6.8 asks, "=" ends a quantum so that concatenated encodings decode as a whole, and
// bits of an incomplete last quantum are dropped.
type cteBase64Reader struct {
	r     io.Reader
	in    [4096]byte
	out   []byte
	acc   uint32
	nbits uint
	err   error
}

var cteBase64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

func newCTEBase64Reader(r io.Reader) *cteBase64Reader { return &cteBase64Reader{r: r} }

func (b *cteBase64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.r.Read(b.in[:])
		b.err = err
		out := b.out[:0]
		for _, c := range b.in[:n] {
			if c == '=' {
				b.acc, b.nbits = 0, 0
				continue
			}
			v := cteBase64Value[c]
			if v == 0xff {
				continue
			}
			b.acc = b.acc<<6 | uint32(v)
			b.nbits += 6
			if b.nbits >= 8 {
				b.nbits -= 8
				out = append(out, byte(b.acc>>b.nbits))
				b.acc &= 1<<b.nbits - 1
			}
		}
		b.out = out
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// cteQPReader decodes quoted-printable (RFC 2045 6.7) leniently: "=XX" (either case of hex digit) is an octet,
// "=" followed by optional white space and a line break (or the end) is a soft line break, white space at the
// end of a line is dropped (rule 3), and an "=" that starts neither is kept as it is, as are any other octets,
// control characters and 8-bit ones included.
type cteQPReader struct {
	br  *bufio.Reader
	ws  []byte // white space held until we know whether the line ends after it
	out []byte
	off int
	err error
}

// qpMaxHeldSpace bounds the white space held back: a longer run is data however the line ends.
const qpMaxHeldSpace = 4096

func newCTEQPReader(r io.Reader) *cteQPReader { return &cteQPReader{br: bufio.NewReader(r)} }

func (q *cteQPReader) Read(p []byte) (int, error) {
	for q.off == len(q.out) {
		if q.err != nil {
			return 0, q.err
		}
		q.out, q.off = q.out[:0], 0
		q.fill()
	}
	n := copy(p, q.out[q.off:])
	q.off += n
	return n, nil
}

func (q *cteQPReader) flushSpace() {
	q.out = append(q.out, q.ws...)
	q.ws = q.ws[:0]
}

func (q *cteQPReader) fill() {
	for len(q.out) < 2048 && q.err == nil {
		c, err := q.br.ReadByte()
		if err != nil {
			q.ws = q.ws[:0] // trailing white space of the last line
			q.err = err
			return
		}
		switch c {
		case ' ', '\t':
			q.ws = append(q.ws, c)
			if len(q.ws) > qpMaxHeldSpace {
				q.flushSpace()
			}
		case '\n':
			q.ws = q.ws[:0]
			q.out = append(q.out, '\n')
		case '\r':
			if next, _ := q.br.Peek(1); len(next) == 1 && next[0] == '\n' {
				q.ws = q.ws[:0]
				_, _ = q.br.ReadByte()
				q.out = append(q.out, '\r', '\n')
				continue
			}
			q.flushSpace()
			q.out = append(q.out, c)
		case '=':
			q.flushSpace()
			q.escape()
		default:
			q.flushSpace()
			q.out = append(q.out, c)
		}
	}
}

// escape handles what follows an "=".
func (q *cteQPReader) escape() {
	if b, _ := q.br.Peek(2); len(b) == 2 && qpIsHex(b[0]) && qpIsHex(b[1]) {
		q.out = append(q.out, qpUnhex(b[0])<<4|qpUnhex(b[1]))
		_, _ = q.br.Discard(2)
		return
	}
	// A soft line break: "=" then transport padding (white space) then the line break or the end of data.
	for i := 0; ; i++ {
		b, err := q.br.Peek(i + 1)
		if len(b) <= i {
			if err == io.EOF {
				_, _ = q.br.Discard(i)
				return
			}
			break // a read error (kept for the next ReadByte) or a buffer full of white space: not a break
		}
		switch b[i] {
		case ' ', '\t':
			continue
		case '\n':
			_, _ = q.br.Discard(i + 1)
			return
		case '\r':
			if b2, _ := q.br.Peek(i + 2); len(b2) == i+2 && b2[i+1] == '\n' {
				_, _ = q.br.Discard(i + 2)
				return
			}
		}
		break
	}
	q.out = append(q.out, '=')
}

func qpIsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f'
}

func qpUnhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// cteCRLFReader turns bare LF line ends into CRLF.
type cteCRLFReader struct {
	r      io.Reader
	in     [2048]byte
	out    []byte
	off    int
	prevCR bool
	err    error
}

func (c *cteCRLFReader) Read(p []byte) (int, error) {
	for c.off == len(c.out) {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.r.Read(c.in[:])
		c.err = err
		c.out, c.off = c.out[:0], 0
		for _, b := range c.in[:n] {
			if b == '\n' && !c.prevCR {
				c.out = append(c.out, '\r')
			}
			c.out = append(c.out, b)
			c.prevCR = b == '\r'
		}
	}
	n := copy(p, c.out[c.off:])
	c.off += n
	return n, nil
}
