package message

import (
	"encoding/binary"
	"errors"
	"slices"
)

// The stored form is a version byte, then uvarint counts of every kind of item (so decoding allocates each kind
// once), then the part tree in pre-order. Strings are a uvarint length and bytes; decoding copies the blob into one
// string and slices every field out of it, so a message costs a handful of allocations however many parts it has.
//
//	message  = version size nParts nParams nAddrs nLangs nChildren nEnvs part
//	part     = flags headerStart bodyLen-from-header bodyLen lines
//	           type subtype id description md5 location encoding disposition
//	           params params langs [envelope] children [part]
//	envelope = date subject inReplyTo messageID from sender reply-to to cc bcc
//
// sender and reply-to are written as a zero count plus flag when they only repeat from (RFC 9051 7.5.2 default).
const binaryVersion = 1

const (
	flagEnvelope     = 1 << 0
	flagEncapsulated = 1 << 1
)

// maxDecodeDepth bounds recursion when decoding a blob that may be corrupt.
const maxDecodeDepth = 1000

// ErrBadEncoding is returned by UnmarshalBinary for data that is not a stored Message.
var ErrBadEncoding = errors.New("message: bad binary encoding")

// MarshalBinary encodes the message for the store (encoding.BinaryMarshaler).
func (m *Message) MarshalBinary() ([]byte, error) {
	var c counts
	if m.Root != nil {
		c.add(m.Root)
	}
	b := make([]byte, 0, 256)
	b = append(b, binaryVersion)
	for _, v := range [...]int{int(m.Size), c.parts, c.params, c.addrs, c.langs, c.children, c.envs} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	if m.Root == nil {
		return b, nil
	}
	return appendPart(b, m.Root), nil
}

type counts struct{ parts, params, addrs, langs, children, envs int }

func (c *counts) add(p *Part) {
	c.parts++
	c.params += len(p.Params) + len(p.DispositionParams)
	c.langs += len(p.Language)
	c.children += len(p.Children)
	if e := p.Envelope; e != nil {
		c.envs++
		c.addrs += len(e.From) + len(e.To) + len(e.Cc) + len(e.Bcc)
		if !sameAddrs(e.Sender, e.From) {
			c.addrs += len(e.Sender)
		}
		if !sameAddrs(e.ReplyTo, e.From) {
			c.addrs += len(e.ReplyTo)
		}
	}
	for _, ch := range p.Children {
		c.add(ch)
	}
	if p.Encapsulated != nil {
		c.add(p.Encapsulated)
	}
}

func sameAddrs(a, b []Address) bool { return slices.Equal(a, b) }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendPart(b []byte, p *Part) []byte {
	var flags byte
	if p.Envelope != nil {
		flags |= flagEnvelope
	}
	if p.Encapsulated != nil {
		flags |= flagEncapsulated
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.BodyStart-p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.End-p.BodyStart))
	b = binary.AppendUvarint(b, uint64(p.Lines))
	for _, s := range [...]string{p.Type, p.Subtype, p.ID, p.Description, p.MD5, p.Location, p.Encoding, p.Disposition} {
		b = appendStr(b, s)
	}
	for _, ps := range [...][]Param{p.Params, p.DispositionParams} {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, x := range ps {
			b = appendStr(b, x.Name)
			b = appendStr(b, x.Value)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(p.Language)))
	for _, l := range p.Language {
		b = appendStr(b, l)
	}
	if e := p.Envelope; e != nil {
		for _, s := range [...]string{e.Date, e.Subject, e.InReplyTo, e.MessageID} {
			b = appendStr(b, s)
		}
		b = appendAddrs(b, e.From)
		for _, l := range [...][]Address{e.Sender, e.ReplyTo} {
			if sameAddrs(l, e.From) {
				b = append(b, 1)
				continue
			}
			b = append(b, 0)
			b = appendAddrs(b, l)
		}
		for _, l := range [...][]Address{e.To, e.Cc, e.Bcc} {
			b = appendAddrs(b, l)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(p.Children)))
	for _, c := range p.Children {
		b = appendPart(b, c)
	}
	if p.Encapsulated != nil {
		b = appendPart(b, p.Encapsulated)
	}
	return b
}

func appendAddrs(b []byte, l []Address) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, a := range l {
		b = appendStr(b, a.Name)
		b = appendStr(b, a.AtDomainList)
		b = appendStr(b, a.Mailbox)
		b = appendStr(b, a.Host)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary wrote (encoding.BinaryUnmarshaler). Corrupt data gives
// ErrBadEncoding, never a panic.
func (m *Message) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != binaryVersion {
		return ErrBadEncoding
	}
	d := decoder{s: string(data), i: 1}
	size := d.uvarint()
	var n [6]int
	for i := range n {
		n[i] = d.count()
	}
	if d.bad {
		return ErrBadEncoding
	}
	d.parts = make([]Part, n[0])
	d.params = make([]Param, n[1])
	d.addrs = make([]Address, n[2])
	d.langs = make([]string, n[3])
	d.children = make([]*Part, n[4])
	d.envs = make([]Envelope, n[5])
	*m = Message{Size: int64(size)}
	if n[0] == 0 {
		if d.i != len(d.s) {
			return ErrBadEncoding
		}
		return nil
	}
	if size > 1<<60 {
		return ErrBadEncoding
	}
	d.size = int64(size)
	root := d.part(0)
	if d.bad || d.i != len(d.s) {
		return ErrBadEncoding
	}
	m.Root = root
	return nil
}

type decoder struct {
	s    string
	i    int
	bad  bool
	size int64

	parts    []Part
	params   []Param
	addrs    []Address
	langs    []string
	children []*Part
	envs     []Envelope
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	var v uint64
	var shift uint
	for {
		if d.i >= len(d.s) || shift > 63 {
			d.bad = true
			return 0
		}
		c := d.s[d.i]
		d.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
		shift += 7
	}
}

// count reads a count, which can be no larger than the bytes left (every item takes at least one).
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.s)-d.i) {
		d.bad = true
		return 0
	}
	return int(v)
}

func (d *decoder) offset() int64 {
	v := d.uvarint()
	if v > 1<<60 {
		d.bad = true
		return 0
	}
	return int64(v)
}

func (d *decoder) str() string {
	n := d.count()
	if d.bad {
		return ""
	}
	s := d.s[d.i : d.i+n]
	d.i += n
	return s
}

func (d *decoder) byte1() byte {
	if d.bad || d.i >= len(d.s) {
		d.bad = true
		return 0
	}
	c := d.s[d.i]
	d.i++
	return c
}

// take hands out the next n items of a preallocated pool; a blob claiming more than its header counted is bad.
func take[T any](d *decoder, pool *[]T, n int) []T {
	if d.bad || n > len(*pool) {
		d.bad = true
		return nil
	}
	if n == 0 {
		return nil
	}
	s := (*pool)[:n:n]
	*pool = (*pool)[n:]
	return s
}

func (d *decoder) part(depth int) *Part {
	if depth > maxDecodeDepth {
		d.bad = true
	}
	ps := take(d, &d.parts, 1)
	if d.bad {
		return nil
	}
	p := &ps[0]
	flags := d.byte1()
	p.HeaderStart = d.offset()
	p.BodyStart = p.HeaderStart + d.offset()
	p.End = p.BodyStart + d.offset()
	p.Lines = d.offset()
	if p.End > d.size {
		d.bad = true // an offset past the message would send a reader past its end
	}
	p.Type, p.Subtype, p.ID, p.Description = d.str(), d.str(), d.str(), d.str()
	p.MD5, p.Location, p.Encoding, p.Disposition = d.str(), d.str(), d.str(), d.str()
	p.Params = d.paramList()
	p.DispositionParams = d.paramList()
	p.Language = take(d, &d.langs, d.count())
	for i := range p.Language {
		p.Language[i] = d.str()
	}
	if flags&flagEnvelope != 0 {
		es := take(d, &d.envs, 1)
		if d.bad {
			return nil
		}
		e := &es[0]
		e.Date, e.Subject, e.InReplyTo, e.MessageID = d.str(), d.str(), d.str(), d.str()
		e.From = d.addrList()
		for _, l := range [...]*[]Address{&e.Sender, &e.ReplyTo} {
			if d.byte1() == 1 {
				*l = e.From
			} else {
				*l = d.addrList()
			}
		}
		e.To, e.Cc, e.Bcc = d.addrList(), d.addrList(), d.addrList()
		p.Envelope = e
	}
	p.Children = take(d, &d.children, d.count())
	for i := range p.Children {
		p.Children[i] = d.part(depth + 1)
	}
	if flags&flagEncapsulated != 0 {
		p.Encapsulated = d.part(depth + 1)
	}
	if flags&^(flagEnvelope|flagEncapsulated) != 0 {
		d.bad = true
	}
	if d.bad {
		return nil
	}
	return p
}

func (d *decoder) paramList() []Param {
	ps := take(d, &d.params, d.count())
	for i := range ps {
		ps[i] = Param{Name: d.str(), Value: d.str()}
	}
	return ps
}

func (d *decoder) addrList() []Address {
	as := take(d, &d.addrs, d.count())
	for i := range as {
		as[i] = Address{Name: d.str(), AtDomainList: d.str(), Mailbox: d.str(), Host: d.str()}
	}
	return as
}
