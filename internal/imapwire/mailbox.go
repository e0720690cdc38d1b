package imapwire

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// RFC 9051 9: delete / subscribe / unsubscribe = "..." SP mailbox; RFC 9208 7: getquotaroot
func parseMailboxArg(d *Decoder, c *Command) {
	d.expectSP()
	c.Mailbox = d.mailbox()
	d.expectEOL()
}

// RFC 4466 3: select = "SELECT" SP mailbox [select-params];
// select-params = SP "(" select-param *(SP select-param) ")"
func parseSelect(d *Decoder, c *Command) {
	s := &Select{}
	d.expectSP()
	s.Mailbox = d.mailbox()
	if d.sp() {
		d.list(false, func() {
			switch p := d.keyword(); p {
			case "CONDSTORE": // RFC 7162 7: condstore-param = "CONDSTORE"
				s.CondStore = true
			case "QRESYNC":
				if s.QResync != nil {
					d.fail("QRESYNC given twice")
				}
				s.QResync = d.qresync()
			default:
				if d.err == nil {
					// RFC 4466 2.1: parameters the server does not support get BAD.
					d.fail("unknown SELECT parameter")
				}
			}
		})
	}
	d.expectEOL()
	c.Select = s
}

// RFC 7162 7: select-param =/ "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")"; seq-match-data = "(" known-sequence-set SP known-uid-set ")"
func (d *Decoder) qresync() *QResync {
	q := &QResync{}
	d.expectSP()
	if !d.expectByte('(', "expected '(' after QRESYNC") || !d.enter() {
		return q
	}
	defer d.leave()
	q.UIDValidity = d.nzNumber()
	d.expectSP()
	q.ModSeq = d.modSeq()
	if d.sp() {
		if !d.peekIs('(') {
			q.KnownUIDs = d.uidSet()
			if !d.sp() {
				d.expectByte(')', "expected ')' after QRESYNC parameters")
				return q
			}
		}
		if d.expectByte('(', "expected '(' before known sequence set") && d.enter() {
			q.KnownSeqs = d.uidSet()
			d.expectSP()
			q.KnownSeqUID = d.uidSet()
			d.expectByte(')', "expected ')' after known UID set")
			d.leave()
		}
	}
	d.expectByte(')', "expected ')' after QRESYNC parameters")
	return q
}

func (s *Select) appendTo(w *cmdWriter) {
	w.sp()
	w.mailbox(s.Mailbox)
	if !s.CondStore && s.QResync == nil {
		return
	}
	w.raw(" (")
	if s.CondStore {
		w.raw("CONDSTORE")
		if s.QResync != nil {
			w.sp()
		}
	}
	if q := s.QResync; q != nil {
		w.raw("QRESYNC (")
		w.b = strconv.AppendUint(w.b, uint64(q.UIDValidity), 10)
		w.sp()
		w.b = strconv.AppendUint(w.b, q.ModSeq, 10)
		if !q.KnownUIDs.IsEmpty() {
			w.sp()
			w.b = q.KnownUIDs.AppendTo(w.b)
		}
		if !q.KnownSeqs.IsEmpty() {
			w.raw(" (")
			w.b = q.KnownSeqs.AppendTo(w.b)
			w.sp()
			w.b = q.KnownSeqUID.AppendTo(w.b)
			w.raw(")")
		}
		w.raw(")")
	}
	w.raw(")")
}

// RFC 4466 3: create = "CREATE" SP mailbox [create-params];
// RFC 6154 6: create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
func parseCreate(d *Decoder, c *Command) {
	cr := &Create{}
	d.expectSP()
	cr.Mailbox = d.mailbox()
	if d.sp() {
		d.list(false, func() {
			if p := d.keyword(); p != "USE" {
				if d.err == nil {
					d.fail("unknown CREATE parameter")
				}
				return
			}
			if cr.Use != nil {
				d.fail("USE given twice")
			}
			cr.Use = []string{}
			d.expectSP()
			d.list(true, func() {
				// use-attr = "\All" / "\Archive" / ... / use-attr-ext; use-attr-ext = "\" atom
				if !d.peekIs('\\') {
					d.fail(`expected a special-use attribute such as \Sent`)
					return
				}
				cr.Use = append(cr.Use, canonicalFlag(d.flag()))
			})
		})
	}
	d.expectEOL()
	c.Create = cr
}

// RFC 9051 9: rename = "RENAME" SP mailbox SP mailbox
func parseRename(d *Decoder, c *Command) {
	r := &Rename{}
	d.expectSP()
	r.From = d.mailbox()
	d.expectSP()
	r.To = d.mailbox()
	d.expectEOL()
	c.Rename = r
}

// RFC 9051 9 / RFC 5258 6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
// [SP list-return-opts]; mbox-or-pat = list-mailbox / patterns;
// patterns = "(" list-mailbox *(SP list-mailbox) ")"
func parseList(d *Decoder, c *Command) {
	l := &List{}
	d.expectSP()
	if d.peekIs('(') {
		// list-select-opts: RFC 5258 3.1, RFC 6154 6 list-select-independent-opt =/ "SPECIAL-USE"
		l.Extended = true
		d.list(true, func() {
			switch o := d.keyword(); o {
			case "SUBSCRIBED":
				l.SelectSubscribed = true
			case "REMOTE":
				l.SelectRemote = true
			case "RECURSIVEMATCH":
				l.SelectRecursiveMatch = true
			case "SPECIAL-USE":
				l.SelectSpecialUse = true
			default:
				if d.err == nil {
					d.fail("unknown LIST selection option") // RFC 5258 3: BAD
				}
			}
		})
		d.expectSP()
	}
	l.Reference = d.mailbox()
	d.expectSP()
	if d.peekIs('(') {
		l.Extended = true
		d.list(false, func() { l.Patterns = append(l.Patterns, d.listMailbox()) })
	} else if d.arg() {
		l.Patterns = []string{d.listMailbox()}
	}
	if d.sp() {
		// RFC 5258 6: list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
		if d.keyword() != "RETURN" && d.err == nil {
			d.fail("expected RETURN")
		}
		l.Extended = true
		d.expectSP()
		d.list(true, func() {
			switch o := d.keyword(); o {
			case "SUBSCRIBED":
				l.ReturnSubscribed = true
			case "CHILDREN":
				l.ReturnChildren = true
			case "SPECIAL-USE": // RFC 6154 6: return-option =/ "SPECIAL-USE"
				l.ReturnSpecialUse = true
			case "STATUS": // RFC 5819 4: status-option = "STATUS" SP "(" status-att *(SP status-att) ")"
				if l.ReturnStatus != nil {
					d.fail("STATUS given twice")
				}
				d.expectSP()
				l.ReturnStatus = d.statusItems()
			default:
				if d.err == nil {
					d.fail("unknown LIST return option") // RFC 5258 3: BAD
				}
			}
		})
	}
	d.expectEOL()
	// RFC 5258 3.1: "The RECURSIVEMATCH option MUST NOT occur as the only selection option (or
	// only with REMOTE) ... The server MUST return BAD tagged response in such case."
	if d.err == nil && l.SelectRecursiveMatch && !l.SelectSubscribed {
		d.fail("RECURSIVEMATCH needs another selection option")
	}
	c.List = l
}

// RFC 3501 9: lsub = "LSUB" SP mailbox SP list-mailbox
func parseLsub(d *Decoder, c *Command) {
	l := &List{}
	d.expectSP()
	l.Reference = d.mailbox()
	d.expectSP()
	l.Patterns = []string{d.listMailbox()}
	d.expectEOL()
	c.List = l
}

func (l *List) appendTo(w *cmdWriter, lsub bool) {
	if l.Extended && !lsub {
		var opts []string
		for _, o := range []struct {
			on   bool
			name string
		}{{l.SelectSubscribed, "SUBSCRIBED"}, {l.SelectRemote, "REMOTE"},
			{l.SelectRecursiveMatch, "RECURSIVEMATCH"}, {l.SelectSpecialUse, "SPECIAL-USE"}} {
			if o.on {
				opts = append(opts, o.name)
			}
		}
		w.sp()
		w.atoms(opts)
	}
	w.sp()
	w.mailbox(l.Reference)
	w.sp()
	pattern := func(p string) {
		if !w.utf8 {
			p = EncodeUTF7(p)
		}
		if p != "" && allIn(p, &listChar) {
			w.raw(p)
		} else {
			w.string(p)
		}
	}
	if l.Extended && !lsub {
		w.raw("(")
		for i, p := range l.Patterns {
			if i > 0 {
				w.sp()
			}
			pattern(p)
		}
		w.raw(")")
		var ret []string
		for _, o := range []struct {
			on   bool
			name string
		}{{l.ReturnSubscribed, "SUBSCRIBED"}, {l.ReturnChildren, "CHILDREN"}, {l.ReturnSpecialUse, "SPECIAL-USE"}} {
			if o.on {
				ret = append(ret, o.name)
			}
		}
		if l.ReturnStatus != nil {
			ret = append(ret, "STATUS "+string(appendStatusItems(nil, l.ReturnStatus)))
		}
		w.raw(" RETURN ")
		w.atoms(ret)
		return
	}
	for _, p := range l.Patterns {
		pattern(p)
	}
}

// statusItems reads "(" status-att *(SP status-att) ")" (RFC 9051 9, RFC 7162 7, RFC 7889 5,
// RFC 9208 7).
func (d *Decoder) statusItems() []StatusItem {
	items := []StatusItem{}
	d.list(false, func() {
		a := d.keyword()
		it, ok := statusItems[a]
		if !ok && d.err == nil {
			d.fail("unknown STATUS item")
		}
		items = append(items, it)
	})
	return items
}

// RFC 9051 9: status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
func parseStatus(d *Decoder, c *Command) {
	s := &StatusCmd{}
	d.expectSP()
	s.Mailbox = d.mailbox()
	d.expectSP()
	s.Items = d.statusItems()
	d.expectEOL()
	c.Status = s
}

// RFC 9051 9: copy = "COPY" SP sequence-set SP mailbox; RFC 6851 5: move = "MOVE" SP sequence-set SP mailbox
func parseCopy(d *Decoder, c *Command) {
	cp := &Copy{}
	d.expectSP()
	cp.Seq = d.seqSet()
	d.expectSP()
	cp.Mailbox = d.mailbox()
	d.expectEOL()
	c.Copy = cp
}

// Flags: RFC 9051 9 flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" /
// flag-keyword / flag-extension; flag-extension = "\" atom; flag-keyword = atom.

var systemFlags = map[string]string{}

func init() {
	for _, f := range []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`, `\Recent`,
		`\All`, `\Archive`, `\Drafts`, `\Junk`, `\Sent`, `\Trash`} {
		systemFlags[strings.ToLower(f)] = f
	}
}

// canonicalFlag spells system flags and special-use attributes the way the RFCs do, as they are
// case-insensitive (RFC 9051 9 note 1); keywords are left as sent.
func canonicalFlag(f string) string {
	if len(f) > 1 && f[0] == '\\' {
		if c, ok := systemFlags[strings.ToLower(f)]; ok {
			return c
		}
	}
	return f
}

func (d *Decoder) flag() string {
	if d.peekIs('\\') {
		d.consume(1)
		return `\` + d.atom("a flag name after '\\'")
	}
	return d.atom("a flag")
}

// flagList reads flag-list = "(" [flag *(SP flag)] ")".
func (d *Decoder) flagList() []string {
	flags := []string{}
	d.list(true, func() { flags = append(flags, canonicalFlag(d.flag())) })
	return flags
}

// Dates: RFC 9051 9 date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
// DQUOTE; date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year.

var months = [12]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// parseDateText parses date-text (date-day = 1*2DIGIT), giving midnight UTC of that day.
func parseDateText(s string) (time.Time, bool) {
	day, rest, ok1 := strings.Cut(s, "-")
	mon, year, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(day) < 1 || len(day) > 2 || len(year) != 4 {
		return time.Time{}, false
	}
	return civilDate(day, mon, year)
}

func civilDate(day, mon, year string) (time.Time, bool) {
	dn, ok1 := parseUint([]byte(day), 31)
	yn, ok2 := parseUint([]byte(year), 9999)
	m := 0
	for i, name := range months {
		if strings.EqualFold(mon, name) {
			m = i + 1
		}
	}
	if !ok1 || !ok2 || m == 0 || dn == 0 {
		return time.Time{}, false
	}
	t := time.Date(int(yn), time.Month(m), int(dn), 0, 0, 0, 0, time.UTC)
	if t.Day() != int(dn) { // 31-Feb
		return time.Time{}, false
	}
	return t, true
}

// date reads date = date-text / DQUOTE date-text DQUOTE.
func (d *Decoder) date() time.Time {
	var s string
	if d.peekIs('"') {
		s = d.quoted()
	} else {
		s = d.token(&atomChar)
	}
	if d.err != nil {
		return time.Time{}
	}
	t, ok := parseDateText(s)
	if !ok {
		d.fail("invalid date")
	}
	return t
}

// parseDateTime parses the inside of date-time. date-day-fixed = (SP DIGIT) / 2DIGIT; a single
// digit without the space is accepted too, as some clients send it.
func parseDateTime(s string) (time.Time, bool) {
	s = strings.TrimPrefix(s, " ")
	date, rest, ok := strings.Cut(s, " ")
	if !ok {
		return time.Time{}, false
	}
	t, ok := parseDateText(date)
	if !ok || len(rest) != 14 || rest[2] != ':' || rest[5] != ':' || rest[8] != ' ' || (rest[9] != '+' && rest[9] != '-') {
		return time.Time{}, false
	}
	h, ok1 := parseUint([]byte(rest[0:2]), 23)
	mi, ok2 := parseUint([]byte(rest[3:5]), 59)
	sec, ok3 := parseUint([]byte(rest[6:8]), 60)
	zh, ok4 := parseUint([]byte(rest[10:12]), 99)
	zm, ok5 := parseUint([]byte(rest[12:14]), 59)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return time.Time{}, false
	}
	off := int(zh*3600 + zm*60)
	if rest[9] == '-' {
		off = -off
	}
	zone := time.FixedZone("", off)
	return time.Date(t.Year(), t.Month(), t.Day(), int(h), int(mi), int(sec), 0, zone), true
}

// dateTime reads a date-time (RFC 9051 9), as in APPEND.
func (d *Decoder) dateTime() time.Time {
	s := d.quoted()
	if d.err != nil {
		return time.Time{}
	}
	t, ok := parseDateTime(s)
	if !ok {
		d.fail("invalid date-time")
	}
	return t
}

// AppendMessage is one message of an APPEND command (RFC 9051 6.3.12; RFC 3502 MULTIAPPEND).
type AppendMessage struct {
	Flags  []string  // flag-list, nil when absent
	Date   time.Time // date-time, zero when absent
	Size   int64     // octets of the literal
	Binary bool      // sent as literal8 "~{n}" (RFC 3516 4.2): may contain NUL
	UTF8   bool      // sent as UTF8 (~{n}) (RFC 6855 4): headers may be UTF-8
	// Body streams the literal's octets straight from the connection. It is valid until the next
	// call to NextMessage or ReadCommand; whatever the server leaves unread is skipped. Data of a
	// "{n}" literal is passed on as sent, NUL octets included: the server decides.
	Body io.Reader
}

// String renders the message's options and literal header as a client sends them, "(\Seen)
// "07-Feb-1994 21:52:25 -0800" {326}" (the data, and for UTF8 the closing ")", follow).
func (m *AppendMessage) String() string {
	var b []byte
	if m.Flags != nil {
		b = append(b, '(')
		for i, f := range m.Flags {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, f...)
		}
		b = append(b, ") "...)
	}
	if !m.Date.IsZero() {
		b = append(b, '"')
		b = appendDateTime(b, m.Date)
		b = append(b, `" `...)
	}
	if m.UTF8 {
		b = append(b, "UTF8 ("...)
	}
	if m.Binary {
		b = append(b, '~')
	}
	b = append(b, '{')
	b = strconv.AppendInt(b, m.Size, 10)
	if m.Size <= maxNonSyncLiteral {
		b = append(b, '+')
	}
	b = append(b, '}')
	return string(b)
}

// RFC 4466 3 / RFC 3502: append = "APPEND" SP mailbox 1*append-message
func parseAppend(d *Decoder, c *Command) {
	d.expectSP()
	c.Mailbox = d.mailbox()
	if d.err == nil {
		d.appending = true
	}
}

var errNotAppending = errors.New("imapwire: NextMessage called outside an APPEND command")

// NextMessage reads the next message of the APPEND command ReadCommand returned, up to the start
// of its literal data, and returns nil, nil after the last one (MULTIAPPEND, RFC 3502 6.3.11,
// allows several). Before returning a message it calls the ContinueFunc (with Append set), so the
// server can check the size against the APPENDLIMIT and quota and write "+ Ready". Errors are as
// for ReadCommand; after any error, or if the server stops calling NextMessage, the next
// ReadCommand skips the rest of the command.
func (d *Decoder) NextMessage() (*AppendMessage, error) {
	if d.broken != nil {
		return nil, d.broken
	}
	if !d.appending {
		return nil, errNotAppending
	}
	d.gen++
	if d.litLeft > 0 {
		n := d.litLeft
		d.litLeft = 0
		if err := d.discard(n); err != nil {
			return nil, err
		}
	}
	// Each message is a fresh budget: a MULTIAPPEND's text is never held in memory at once.
	d.err, d.total, d.args = nil, 0, 0
	d.newLine()
	if d.closeUTF8 {
		d.closeUTF8 = false
		d.expectByte(')', "expected ')' after UTF8 data")
	}
	if d.appendN > 0 {
		if b, ok := d.peek(); ok && (b == '\r' || b == '\n') {
			d.expectEOL()
			if d.err == nil {
				d.appending, d.dirty = false, false
				return nil, nil
			}
		}
	}
	m := &AppendMessage{}
	d.expectSP()
	// RFC 4466 3: append-opts = [SP flag-list] [SP date-time] *(SP append-ext)
	if d.peekIs('(') {
		m.Flags = d.flagList()
		d.expectSP()
	}
	if d.peekIs('"') {
		m.Date = d.dateTime()
		d.expectSP()
	}
	// append-data = literal / literal8 / append-data-ext; RFC 6855 4:
	// utf8-literal = "UTF8" SP "(" literal8 ")"
	if b, ok := d.peek(); ok && b != '{' && b != '~' {
		if d.keyword() != "UTF8" && d.err == nil {
			d.fail("expected a message literal")
		}
		d.expectSP()
		d.expectByte('(', "expected '(' after UTF8")
		m.UTF8 = true
	}
	if d.err == nil {
		var sync, ok bool
		m.Size, sync, m.Binary, ok = d.literalHeader()
		if ok {
			info := LiteralInfo{Tag: d.tag, Command: d.name, Size: m.Size, Sync: sync, Binary: m.Binary, Append: true}
			if m.UTF8 && !m.Binary {
				d.acceptLiteral(info, -1)
				if se, ok := d.err.(*SyntaxError); ok {
					se.Status, se.Code, se.Msg = BAD, "", "UTF8 data must be a literal8"
				}
			} else {
				d.acceptLiteral(info, d.lim.MaxAppend)
			}
		}
	}
	if d.err != nil {
		return nil, d.finish()
	}
	d.appendN++
	d.litLeft = m.Size
	d.closeUTF8 = m.UTF8
	m.Body = &literalReader{d: d, gen: d.gen}
	return m, nil
}
