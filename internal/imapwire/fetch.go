package imapwire

import (
	"strconv"
	"strings"
)

// FetchAttr is a fetch-att (RFC 9051 9, RFC 3501 9, RFC 3516, RFC 7162).
type FetchAttr uint8

const (
	FetchEnvelope      FetchAttr = iota + 1 // ENVELOPE
	FetchFlags                              // FLAGS
	FetchInternalDate                       // INTERNALDATE
	FetchRFC822                             // RFC822 (RFC 3501: BODY[])
	FetchRFC822Header                       // RFC822.HEADER (RFC 3501: BODY.PEEK[HEADER])
	FetchRFC822Size                         // RFC822.SIZE
	FetchRFC822Text                         // RFC822.TEXT (RFC 3501: BODY[TEXT])
	FetchBody                               // BODY: the non-extensible BODYSTRUCTURE
	FetchBodyStructure                      // BODYSTRUCTURE
	FetchUID                                // UID
	FetchBodySection                        // BODY[section]<partial>, BODY.PEEK[...]
	FetchBinary                             // BINARY[part]<partial>, BINARY.PEEK[...] (RFC 3516)
	FetchBinarySize                         // BINARY.SIZE[part] (RFC 3516)
	FetchModSeq                             // MODSEQ (RFC 7162 3.1.4)
)

var fetchAttrNames = [...]string{
	FetchEnvelope: "ENVELOPE", FetchFlags: "FLAGS", FetchInternalDate: "INTERNALDATE",
	FetchRFC822: "RFC822", FetchRFC822Header: "RFC822.HEADER", FetchRFC822Size: "RFC822.SIZE",
	FetchRFC822Text: "RFC822.TEXT", FetchBody: "BODY", FetchBodyStructure: "BODYSTRUCTURE",
	FetchUID: "UID", FetchBodySection: "BODY", FetchBinary: "BINARY", FetchBinarySize: "BINARY.SIZE",
	FetchModSeq: "MODSEQ",
}

func (a FetchAttr) String() string {
	if int(a) < len(fetchAttrNames) && fetchAttrNames[a] != "" {
		return fetchAttrNames[a]
	}
	return "FetchAttr(" + strconv.Itoa(int(a)) + ")"
}

// SectionSpec is the text part of a section-spec. Its values are those of message.Specifier, in
// the same order, so the server converts with a plain conversion.
type SectionSpec uint8

const (
	SpecNone            SectionSpec = iota // the whole message, or the part's body
	SpecHeader                             // HEADER
	SpecHeaderFields                       // HEADER.FIELDS (...)
	SpecHeaderFieldsNot                    // HEADER.FIELDS.NOT (...)
	SpecText                               // TEXT
	SpecMIME                               // MIME, only after a part number
)

var specNames = [...]string{SpecHeader: "HEADER", SpecHeaderFields: "HEADER.FIELDS",
	SpecHeaderFieldsNot: "HEADER.FIELDS.NOT", SpecText: "TEXT", SpecMIME: "MIME"}

// Section is a section-spec (RFC 9051 9), field for field like message.Section:
// section-spec = section-msgtext / (section-part ["." section-text]).
type Section struct {
	Part   []int // section-part: nz-numbers, each at most 2^31-1; empty for the whole message
	Spec   SectionSpec
	Fields []string // header-list of HEADER.FIELDS and HEADER.FIELDS.NOT, as sent
}

// String returns the section-spec as it appears between "[" and "]".
func (s Section) String() string { return string(s.appendTo(nil)) }

func (s Section) appendTo(b []byte) []byte {
	for i, p := range s.Part {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	if s.Spec != SpecNone {
		if len(s.Part) > 0 {
			b = append(b, '.')
		}
		b = append(b, specNames[s.Spec]...)
	}
	if s.Spec == SpecHeaderFields || s.Spec == SpecHeaderFieldsNot {
		b = append(b, " ("...)
		for i, f := range s.Fields {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendAString(b, f, false, false)
		}
		b = append(b, ')')
	}
	return b
}

// Partial is "<" number64 "." nz-number64 ">": offset and length of a partial FETCH.
type Partial struct {
	Offset, Count uint64
}

// FetchItem is one fetch-att of a FETCH command, macros expanded.
type FetchItem struct {
	Attr    FetchAttr
	Peek    bool     // BODY.PEEK / BINARY.PEEK: do not set \Seen
	Section Section  // FetchBodySection; FetchBinary and FetchBinarySize use Part only
	Partial *Partial // FetchBodySection and FetchBinary; nil when absent
}

// String returns the item as a client requests it, e.g. "BODY.PEEK[HEADER.FIELDS (From)]<0.1024>".
func (it FetchItem) String() string {
	b := append([]byte(nil), it.Attr.String()...)
	if it.Peek {
		b = append(b, ".PEEK"...)
	}
	switch it.Attr {
	case FetchBodySection, FetchBinary, FetchBinarySize:
		b = append(b, '[')
		b = it.Section.appendTo(b)
		b = append(b, ']')
	}
	if it.Partial != nil {
		b = append(b, '<')
		b = strconv.AppendUint(b, it.Partial.Offset, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, it.Partial.Count, 10)
		b = append(b, '>')
	}
	return string(b)
}

// ResponseName returns the name the FETCH response gives this item: BODY.PEEK and BINARY.PEEK lose
// ".PEEK", and a partial keeps only its origin octet (RFC 9051 7.5.2: BODY[<section>]<<origin
// octet>>).
func (it FetchItem) ResponseName() string { return string(it.appendResponseName(nil)) }

func (it FetchItem) appendResponseName(b []byte) []byte {
	b = append(b, it.Attr.String()...)
	switch it.Attr {
	case FetchBodySection, FetchBinary, FetchBinarySize:
		b = append(b, '[')
		b = it.Section.appendTo(b)
		b = append(b, ']')
		if it.Partial != nil {
			b = append(b, '<')
			b = strconv.AppendUint(b, it.Partial.Offset, 10)
			b = append(b, '>')
		}
	}
	return b
}

// Fetch is FETCH sequence-set SP (macro / fetch-att / "(" fetch-att *(SP fetch-att) ")")
// [fetch-modifiers] (RFC 9051 6.4.5, RFC 4466 2.4, RFC 7162).
type Fetch struct {
	Seq   SeqSet
	Items []FetchItem // ALL, FAST and FULL are expanded (RFC 9051 6.4.5)
	// ChangedSince is the CHANGEDSINCE modifier (RFC 7162 3.1.4.1), 0 when absent (the value is
	// a mod-sequence-value, never 0).
	ChangedSince uint64
	// Vanished is the VANISHED modifier (RFC 7162 3.2.6): only with UID FETCH and CHANGEDSINCE.
	Vanished bool
}

var fetchMacros = map[string][]FetchAttr{
	// RFC 9051 6.4.5: ALL = (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE); FAST = (FLAGS INTERNALDATE
	// RFC822.SIZE); FULL = (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)
	"ALL":  {FetchFlags, FetchInternalDate, FetchRFC822Size, FetchEnvelope},
	"FAST": {FetchFlags, FetchInternalDate, FetchRFC822Size},
	"FULL": {FetchFlags, FetchInternalDate, FetchRFC822Size, FetchEnvelope, FetchBody},
}

var simpleFetchAttrs = map[string]FetchAttr{
	"ENVELOPE": FetchEnvelope, "FLAGS": FetchFlags, "INTERNALDATE": FetchInternalDate,
	"RFC822": FetchRFC822, "RFC822.HEADER": FetchRFC822Header, "RFC822.SIZE": FetchRFC822Size,
	"RFC822.TEXT": FetchRFC822Text, "BODY": FetchBody, "BODYSTRUCTURE": FetchBodyStructure,
	"UID": FetchUID, "MODSEQ": FetchModSeq,
}

// RFC 9051 9 / RFC 4466 3: fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
// fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
func parseFetch(d *Decoder, c *Command) {
	f := &Fetch{}
	d.expectSP()
	f.Seq = d.seqSet()
	d.expectSP()
	if d.peekIs('(') {
		f.Items = []FetchItem{}
		d.list(false, func() { f.Items = append(f.Items, d.fetchAtt()) })
	} else {
		name := strings.ToUpper(d.token(&fetchChar))
		if m, ok := fetchMacros[name]; ok && !d.peekIs('[') {
			for _, a := range m {
				f.Items = append(f.Items, FetchItem{Attr: a})
			}
		} else if d.arg() {
			f.Items = []FetchItem{d.fetchAttNamed(name)}
		}
	}
	if d.sp() {
		// RFC 4466 2.4: fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
		d.list(false, func() {
			switch m := d.keyword(); m {
			case "CHANGEDSINCE": // RFC 7162 7: chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value
				d.expectSP()
				f.ChangedSince = d.modSeq()
			case "VANISHED": // RFC 7162 7: rexpunges-fetch-mod = "VANISHED"
				f.Vanished = true
			default:
				if d.err == nil {
					d.fail("unknown FETCH modifier")
				}
			}
		})
	}
	d.expectEOL()
	if d.err == nil && f.Vanished {
		// RFC 7162 3.2.6: VANISHED is NOT allowed with FETCH, and MUST come with CHANGEDSINCE;
		// the server MUST answer BAD otherwise.
		if !c.UID {
			d.fail("VANISHED is only allowed with UID FETCH")
		} else if f.ChangedSince == 0 {
			d.fail("VANISHED requires CHANGEDSINCE")
		}
	}
	c.Fetch = f
}

func (d *Decoder) fetchAtt() FetchItem {
	name := strings.ToUpper(d.token(&fetchChar))
	return d.fetchAttNamed(name)
}

// fetchAttNamed reads the rest of a fetch-att whose name was read:
// fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] /
// "BODY" ["STRUCTURE"] / "UID" / "BODY" section [partial] / "BODY.PEEK" section [partial] /
// "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary / "MODSEQ"
func (d *Decoder) fetchAttNamed(name string) FetchItem {
	var it FetchItem
	if d.err != nil {
		return it
	}
	bracket := d.peekIs('[')
	switch name {
	case "BODY", "BODY.PEEK":
		if !bracket {
			if name == "BODY" {
				return FetchItem{Attr: FetchBody}
			}
			d.fail("expected '[' after BODY.PEEK")
			return it
		}
		it = FetchItem{Attr: FetchBodySection, Peek: name == "BODY.PEEK"}
		it.Section = d.section(false)
		it.Partial = d.partial()
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		// RFC 3516 7 / RFC 9051 9: section-binary = "[" [section-part] "]"
		it = FetchItem{Attr: FetchBinary, Peek: name == "BINARY.PEEK"}
		if name == "BINARY.SIZE" {
			it.Attr = FetchBinarySize
		}
		if !bracket {
			d.fail("expected '[' after " + name)
			return it
		}
		it.Section = d.section(true)
		if it.Attr == FetchBinary {
			it.Partial = d.partial()
		}
	default:
		a, ok := simpleFetchAttrs[name]
		if !ok || bracket {
			d.fail("unknown FETCH item")
			return it
		}
		it.Attr = a
	}
	return it
}

// section reads "[" [section-spec] "]" (or section-binary when binary is set).
func (d *Decoder) section(binary bool) Section {
	var s Section
	d.expectByte('[', "expected '['")
	spec := d.token(&fetchChar)
	if d.err != nil {
		return s
	}
	rest := spec
	// section-part = nz-number *("." nz-number)
	for rest != "" && rest[0] >= '0' && rest[0] <= '9' {
		num, after, _ := strings.Cut(rest, ".")
		n, ok := parseUint([]byte(num), 1<<31-1)
		if !ok || n == 0 || num[0] == '0' {
			d.fail("invalid section part number")
			return s
		}
		s.Part = append(s.Part, int(n))
		if len(s.Part) > d.lim.MaxDepth {
			d.failCode(CodeLimit, "section nested too deep")
			return s
		}
		if after == "" && strings.HasSuffix(rest, ".") {
			d.fail("invalid section")
			return s
		}
		rest = after
	}
	switch strings.ToUpper(rest) {
	case "":
	case "HEADER":
		s.Spec = SpecHeader
	case "HEADER.FIELDS":
		s.Spec = SpecHeaderFields
	case "HEADER.FIELDS.NOT":
		s.Spec = SpecHeaderFieldsNot
	case "TEXT":
		s.Spec = SpecText
	case "MIME":
		// section-text = section-msgtext / "MIME": only after a section-part
		if len(s.Part) > 0 {
			s.Spec = SpecMIME
			break
		}
		fallthrough
	default:
		d.fail("invalid section")
		return s
	}
	if binary && s.Spec != SpecNone {
		d.fail("BINARY takes part numbers only")
		return s
	}
	if s.Spec == SpecHeaderFields || s.Spec == SpecHeaderFieldsNot {
		// SP header-list; header-list = "(" header-fld-name *(SP header-fld-name) ")"
		d.expectSP()
		s.Fields = []string{}
		d.list(false, func() { s.Fields = append(s.Fields, d.astring("a header field name")) })
	}
	d.expectByte(']', "expected ']'")
	return s
}

// partial reads an optional partial = "<" number64 "." nz-number64 ">" (RFC 9051 9).
func (d *Decoder) partial() *Partial {
	if !d.peekIs('<') {
		return nil
	}
	d.consume(1)
	p := &Partial{}
	p.Offset = d.number64()
	d.expectByte('.', "expected '.' in partial")
	p.Count = d.num(maxNumber64, true, "a non-zero octet count")
	d.expectByte('>', "expected '>'")
	return p
}

func (f *Fetch) appendTo(w *cmdWriter) {
	w.sp()
	w.b = f.Seq.AppendTo(w.b)
	w.raw(" (")
	for i, it := range f.Items {
		if i > 0 {
			w.sp()
		}
		w.raw(it.String())
	}
	w.raw(")")
	if f.ChangedSince != 0 || f.Vanished {
		w.raw(" (")
		if f.ChangedSince != 0 {
			w.raw("CHANGEDSINCE ")
			w.b = appendUint(w.b, f.ChangedSince)
			if f.Vanished {
				w.sp()
			}
		}
		if f.Vanished {
			w.raw("VANISHED")
		}
		w.raw(")")
	}
}

// StoreOp says what STORE does with the flags.
type StoreOp uint8

const (
	StoreReplace StoreOp = iota // FLAGS
	StoreAdd                    // +FLAGS
	StoreRemove                 // -FLAGS
)

// Store is STORE sequence-set [store-modifiers] SP store-att-flags (RFC 9051 6.4.6, RFC 4466
// 2.5, RFC 7162 3.1.3).
type Store struct {
	Seq    SeqSet
	Op     StoreOp
	Silent bool     // .SILENT
	Flags  []string // system flags spelled canonically, keywords as sent
	// UnchangedSince is the UNCHANGEDSINCE modifier (mod-sequence-valzer: 0 is allowed and
	// meaningful, RFC 7162 3.1.3), present when HasUnchangedSince.
	UnchangedSince    uint64
	HasUnchangedSince bool
}

// RFC 4466 3: store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags;
// RFC 9051 9: store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
func parseStore(d *Decoder, c *Command) {
	s := &Store{}
	d.expectSP()
	s.Seq = d.seqSet()
	d.expectSP()
	if d.peekIs('(') {
		// store-modifiers = SP "(" store-modifier *(SP store-modifier) ")"
		d.list(false, func() {
			if m := d.keyword(); m != "UNCHANGEDSINCE" {
				if d.err == nil {
					d.fail("unknown STORE modifier")
				}
				return
			}
			// RFC 7162 7: store-modifier =/ "UNCHANGEDSINCE" SP mod-sequence-valzer
			if s.HasUnchangedSince {
				d.fail("UNCHANGEDSINCE given twice")
			}
			d.expectSP()
			s.UnchangedSince = d.modSeqZ()
			s.HasUnchangedSince = true
		})
		d.expectSP()
	}
	item := d.keyword()
	switch {
	case strings.HasPrefix(item, "+"):
		s.Op, item = StoreAdd, item[1:]
	case strings.HasPrefix(item, "-"):
		s.Op, item = StoreRemove, item[1:]
	}
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		s.Silent = true
	default:
		if d.err == nil {
			d.fail("expected FLAGS, +FLAGS or -FLAGS")
		}
	}
	d.expectSP()
	if d.peekIs('(') {
		s.Flags = d.flagList()
	} else {
		s.Flags = []string{}
		for d.err == nil && d.arg() {
			s.Flags = append(s.Flags, canonicalFlag(d.flag()))
			if !d.sp() {
				break
			}
		}
	}
	d.expectEOL()
	c.Store = s
}

func (s *Store) appendTo(w *cmdWriter) {
	w.sp()
	w.b = s.Seq.AppendTo(w.b)
	if s.HasUnchangedSince {
		w.raw(" (UNCHANGEDSINCE ")
		w.b = appendUint(w.b, s.UnchangedSince)
		w.raw(")")
	}
	w.raw([...]string{" FLAGS", " +FLAGS", " -FLAGS"}[s.Op])
	if s.Silent {
		w.raw(".SILENT")
	}
	w.sp()
	w.atoms(s.Flags)
}
