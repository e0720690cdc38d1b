package imapwire

import (
	"strconv"
	"strings"
	"time"
)

// SearchReturn is a set of ESEARCH return options (RFC 4731 3.1, RFC 5182 2.1).
type SearchReturn uint8

const (
	ReturnMin SearchReturn = 1 << iota
	ReturnMax
	ReturnAll
	ReturnCount
	ReturnSave // RFC 5182: keep the result for "$"
)

var searchReturnNames = []struct {
	bit  SearchReturn
	name string
}{{ReturnMin, "MIN"}, {ReturnMax, "MAX"}, {ReturnAll, "ALL"}, {ReturnCount, "COUNT"}, {ReturnSave, "SAVE"}}

// Search is SEARCH [search-return-opts] SP search-program (RFC 9051 6.4.4, RFC 4731, RFC 5182).
type Search struct {
	// ESearch is set when a RETURN list was given, even empty: the answer is an ESEARCH response
	// (RFC 4731 3.1), and an empty list means ALL.
	ESearch bool
	Return  SearchReturn
	Charset string      // CHARSET argument as sent; "" if absent
	Keys    []SearchKey // all must match
}

// SearchOp is the kind of a search key (RFC 9051 9 search-key, RFC 3501 9, RFC 7162 7).
type SearchOp uint8

const (
	SearchAll SearchOp = iota + 1
	SearchAnswered
	SearchBcc // Value
	SearchBefore
	SearchBody
	SearchCc
	SearchDeleted
	SearchDraft
	SearchFlagged
	SearchFrom
	SearchHeader // Field, Value
	SearchKeyword
	SearchLarger // Number
	SearchNew    // RFC 3501
	SearchNot    // Keys[0]
	SearchOld    // RFC 3501
	SearchOn
	SearchOr     // Keys[0], Keys[1]
	SearchRecent // RFC 3501
	SearchSeen
	SearchSentBefore
	SearchSentOn
	SearchSentSince
	SearchSince
	SearchSmaller
	SearchSubject
	SearchText
	SearchTo
	SearchUID // Seq
	SearchUnanswered
	SearchUndeleted
	SearchUndraft
	SearchUnflagged
	SearchUnkeyword
	SearchUnseen
	SearchSeqSet // a bare sequence-set: Seq
	SearchAnd    // "(" search-key *(SP search-key) ")": Keys
	SearchModSeq // RFC 7162 3.1.5: Number, and ModSeqEntry/ModSeqType if given
)

var searchOpNames = [...]string{
	SearchAll: "ALL", SearchAnswered: "ANSWERED", SearchBcc: "BCC", SearchBefore: "BEFORE",
	SearchBody: "BODY", SearchCc: "CC", SearchDeleted: "DELETED", SearchDraft: "DRAFT",
	SearchFlagged: "FLAGGED", SearchFrom: "FROM", SearchHeader: "HEADER", SearchKeyword: "KEYWORD",
	SearchLarger: "LARGER", SearchNew: "NEW", SearchNot: "NOT", SearchOld: "OLD", SearchOn: "ON",
	SearchOr: "OR", SearchRecent: "RECENT", SearchSeen: "SEEN", SearchSentBefore: "SENTBEFORE",
	SearchSentOn: "SENTON", SearchSentSince: "SENTSINCE", SearchSince: "SINCE", SearchSmaller: "SMALLER",
	SearchSubject: "SUBJECT", SearchText: "TEXT", SearchTo: "TO", SearchUID: "UID",
	SearchUnanswered: "UNANSWERED", SearchUndeleted: "UNDELETED", SearchUndraft: "UNDRAFT",
	SearchUnflagged: "UNFLAGGED", SearchUnkeyword: "UNKEYWORD", SearchUnseen: "UNSEEN",
	SearchModSeq: "MODSEQ",
}

var searchOps = map[string]SearchOp{}

func init() {
	for op, name := range searchOpNames {
		if name != "" {
			searchOps[name] = SearchOp(op)
		}
	}
}

func (op SearchOp) String() string {
	switch {
	case op == SearchSeqSet:
		return "sequence-set"
	case op == SearchAnd:
		return "()"
	case int(op) < len(searchOpNames) && searchOpNames[op] != "":
		return searchOpNames[op]
	}
	return "SearchOp(" + strconv.Itoa(int(op)) + ")"
}

// SearchKey is one search-key. The fields used depend on Op, as noted beside each SearchOp.
type SearchKey struct {
	Op     SearchOp
	Value  string      // BCC BODY CC FROM SUBJECT TEXT TO HEADER: the astring; KEYWORD UNKEYWORD: the flag
	Field  string      // HEADER: the field name
	Date   time.Time   // BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE: the day, at 00:00 UTC
	Number uint64      // LARGER SMALLER (number64), MODSEQ (mod-sequence-valzer)
	Seq    SeqSet      // UID and bare sequence sets
	Keys   []SearchKey // NOT (one), OR (two), AND (the parenthesized list)
	// MODSEQ with search-modseq-ext (RFC 7162 3.1.5): entry name (e.g. "/flags/\draft", as
	// decoded from the quoted string) and type "priv", "shared" or "all" (lower-cased).
	ModSeqEntry, ModSeqType string
}

// RFC 9051 9 / RFC 4466: search = "SEARCH" [search-return-opts] SP search-program;
// search-program = ["CHARSET" SP charset SP] search-key *(SP search-key)
func parseSearch(d *Decoder, c *Command) {
	s := &Search{}
	d.expectSP()
	var word string
	if !d.peekIs('(') {
		word = d.searchWord()
	}
	if word == "RETURN" {
		// search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
		s.ESearch = true
		d.expectSP()
		d.list(true, func() {
			r := d.keyword()
			for _, n := range searchReturnNames {
				if r == n.name {
					s.Return |= n.bit
					return
				}
			}
			if d.err == nil {
				d.fail("unknown SEARCH return option") // RFC 4466 2.6: BAD
			}
		})
		d.expectSP()
		word = ""
		if !d.peekIs('(') {
			word = d.searchWord()
		}
	}
	if word == "CHARSET" {
		d.expectSP()
		s.Charset = d.astring("a charset")
		d.expectSP()
		word = ""
		if !d.peekIs('(') {
			word = d.searchWord()
		}
	}
	for d.err == nil {
		if !d.arg() {
			break
		}
		s.Keys = append(s.Keys, d.searchKey(word))
		word = ""
		if !d.sp() {
			break
		}
		if !d.peekIs('(') {
			word = d.searchWord()
		}
	}
	d.expectEOL()
	c.Search = s
}

// searchWord reads a keyword or a sequence set: ATOM-CHARs plus "*", upper-cased.
func (d *Decoder) searchWord() string {
	w := d.token(&searchChar)
	if w == "" && d.err == nil {
		d.fail("expected a search key")
	}
	return strings.ToUpper(w)
}

var searchChar [256]bool

func init() {
	searchChar = atomChar
	searchChar['*'] = true
}

// searchKey reads one search-key whose first word (if not "(") was already read.
func (d *Decoder) searchKey(word string) SearchKey {
	var k SearchKey
	if d.err != nil {
		return k
	}
	if word == "" {
		// "(" search-key *(SP search-key) ")"
		k.Op = SearchAnd
		k.Keys = []SearchKey{}
		d.list(false, func() { k.Keys = append(k.Keys, d.searchKey(d.nextWord())) })
		return k
	}
	if c := word[0]; c >= '0' && c <= '9' || c == '*' || c == '$' {
		set, err := ParseSeqSet(word)
		if err != nil {
			d.fail("invalid sequence set")
		}
		return SearchKey{Op: SearchSeqSet, Seq: set}
	}
	op, ok := searchOps[word]
	if !ok {
		d.fail("unknown search key")
		return k
	}
	k.Op = op
	switch op {
	case SearchBcc, SearchBody, SearchCc, SearchFrom, SearchSubject, SearchText, SearchTo:
		d.expectSP()
		k.Value = d.astring("a search string")
	case SearchKeyword, SearchUnkeyword:
		// "KEYWORD" SP flag-keyword; flag-keyword = atom
		d.expectSP()
		k.Value = d.atom("a keyword")
	case SearchHeader:
		// "HEADER" SP header-fld-name SP astring
		d.expectSP()
		k.Field = d.astring("a header field name")
		d.expectSP()
		k.Value = d.astring("a search string")
	case SearchBefore, SearchOn, SearchSince, SearchSentBefore, SearchSentOn, SearchSentSince:
		d.expectSP()
		k.Date = d.date()
	case SearchLarger, SearchSmaller:
		d.expectSP()
		k.Number = d.number64()
	case SearchUID:
		d.expectSP()
		k.Seq = d.seqSet()
	case SearchNot:
		d.expectSP()
		if d.arg() && d.enter() {
			k.Keys = []SearchKey{d.searchKey(d.nextWord())}
			d.leave()
		}
	case SearchOr:
		d.expectSP()
		if d.arg() && d.enter() {
			a := d.searchKey(d.nextWord())
			d.expectSP()
			d.arg()
			b := d.searchKey(d.nextWord())
			k.Keys = []SearchKey{a, b}
			d.leave()
		}
	case SearchModSeq:
		// RFC 7162 7: search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer;
		// search-modseq-ext = SP entry-name SP entry-type-req;
		// entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE; entry-type-req = "priv" / "shared" / "all"
		d.expectSP()
		if d.peekIs('"') {
			k.ModSeqEntry = d.quoted()
			if d.err == nil && !strings.HasPrefix(strings.ToLower(k.ModSeqEntry), "/flags/") {
				d.fail("invalid MODSEQ entry name")
			}
			d.expectSP()
			k.ModSeqType = strings.ToLower(d.atom("an entry type"))
			if d.err == nil && k.ModSeqType != "priv" && k.ModSeqType != "shared" && k.ModSeqType != "all" {
				d.fail("invalid MODSEQ entry type")
			}
			d.expectSP()
		}
		k.Number = d.modSeqZ()
	}
	return k
}

// nextWord reads the first word of a nested key, or "" before "(".
func (d *Decoder) nextWord() string {
	if d.err != nil || d.peekIs('(') {
		return ""
	}
	return d.searchWord()
}

func (s *Search) appendTo(w *cmdWriter) {
	if s.ESearch {
		var opts []string
		for _, n := range searchReturnNames {
			if s.Return&n.bit != 0 {
				opts = append(opts, n.name)
			}
		}
		w.raw(" RETURN ")
		w.atoms(opts)
	}
	if s.Charset != "" {
		w.raw(" CHARSET ")
		w.astring(s.Charset)
	}
	for _, k := range s.Keys {
		w.sp()
		k.appendTo(w)
	}
}

// String returns the key in wire form (literals as "{n+}" CRLF data).
func (k SearchKey) String() string {
	w := cmdWriter{}
	k.appendTo(&w)
	return string(w.b)
}

func (k *SearchKey) appendTo(w *cmdWriter) {
	switch k.Op {
	case SearchSeqSet:
		w.b = k.Seq.AppendTo(w.b)
		return
	case SearchAnd:
		w.raw("(")
		for i := range k.Keys {
			if i > 0 {
				w.sp()
			}
			k.Keys[i].appendTo(w)
		}
		w.raw(")")
		return
	}
	w.raw(k.Op.String())
	switch k.Op {
	case SearchBcc, SearchBody, SearchCc, SearchFrom, SearchSubject, SearchText, SearchTo:
		w.sp()
		w.astring(k.Value)
	case SearchKeyword, SearchUnkeyword:
		w.sp()
		w.raw(k.Value)
	case SearchHeader:
		w.sp()
		w.astring(k.Field)
		w.sp()
		w.astring(k.Value)
	case SearchBefore, SearchOn, SearchSince, SearchSentBefore, SearchSentOn, SearchSentSince:
		w.sp()
		w.b = appendDate(w.b, k.Date)
	case SearchLarger, SearchSmaller:
		w.sp()
		w.b = appendUint(w.b, k.Number)
	case SearchUID:
		w.sp()
		w.b = k.Seq.AppendTo(w.b)
	case SearchNot, SearchOr:
		for i := range k.Keys {
			w.sp()
			k.Keys[i].appendTo(w)
		}
	case SearchModSeq:
		if k.ModSeqEntry != "" {
			w.sp()
			w.b = appendQuoted(w.b, k.ModSeqEntry)
			w.sp()
			w.raw(k.ModSeqType)
		}
		w.sp()
		w.b = appendUint(w.b, k.Number)
	}
}

// appendDate writes date-text, "1-Feb-1994" (RFC 9051 9 date-text; date-day = 1*2DIGIT).
func appendDate(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(b, int64(t.Day()), 10)
	b = append(b, '-')
	b = append(b, t.Month().String()[:3]...)
	b = append(b, '-')
	y := t.Year()
	if y < 1000 {
		b = append(b, "000"[:4-len(strconv.Itoa(y))]...)
	}
	return strconv.AppendInt(b, int64(y), 10)
}
