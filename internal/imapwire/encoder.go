package imapwire

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Status is the condition of a status response (RFC 9051 7.1).
type Status string

const (
	OK      Status = "OK"
	NO      Status = "NO"
	BAD     Status = "BAD"
	BYE     Status = "BYE"
	PREAUTH Status = "PREAUTH"
)

// Code is a resp-text-code (RFC 9051 7.1, 9), rendered: the atom and its arguments, without the
// brackets. "" means no code. Use the constants and constructors below.
type Code string

// Response codes without arguments.
const (
	CodeAlert                Code = "ALERT"                // RFC 9051 7.1
	CodeBadCharset           Code = "BADCHARSET"           // RFC 9051 7.1; with a list: CodeBadCharsets
	CodeParse                Code = "PARSE"                // RFC 9051 7.1
	CodeReadOnly             Code = "READ-ONLY"            // RFC 9051 7.1
	CodeReadWrite            Code = "READ-WRITE"           // RFC 9051 7.1
	CodeTryCreate            Code = "TRYCREATE"            // RFC 9051 7.1
	CodeUIDNotSticky         Code = "UIDNOTSTICKY"         // RFC 4315 3
	CodeNoModSeq             Code = "NOMODSEQ"             // RFC 7162 3.1.2.2
	CodeClosed               Code = "CLOSED"               // RFC 7162 3.2.11, RFC 9051 7.1
	CodeNotSaved             Code = "NOTSAVED"             // RFC 5182 2.1
	CodeUnavailable          Code = "UNAVAILABLE"          // RFC 5530 3, RFC 9051 7.1
	CodeAuthenticationFailed Code = "AUTHENTICATIONFAILED" // RFC 5530 3
	CodeAuthorizationFailed  Code = "AUTHORIZATIONFAILED"  // RFC 5530 3
	CodeExpired              Code = "EXPIRED"              // RFC 5530 3
	CodePrivacyRequired      Code = "PRIVACYREQUIRED"      // RFC 5530 3
	CodeContactAdmin         Code = "CONTACTADMIN"         // RFC 5530 3
	CodeNoPerm               Code = "NOPERM"               // RFC 5530 3
	CodeInUse                Code = "INUSE"                // RFC 5530 3
	CodeExpungeIssued        Code = "EXPUNGEISSUED"        // RFC 5530 3
	CodeCorruption           Code = "CORRUPTION"           // RFC 5530 3
	CodeServerBug            Code = "SERVERBUG"            // RFC 5530 3
	CodeClientBug            Code = "CLIENTBUG"            // RFC 5530 3
	CodeCannot               Code = "CANNOT"               // RFC 5530 3
	CodeLimit                Code = "LIMIT"                // RFC 5530 3
	CodeOverQuota            Code = "OVERQUOTA"            // RFC 5530 3, RFC 9208 4.3
	CodeAlreadyExists        Code = "ALREADYEXISTS"        // RFC 5530 3
	CodeNonExistent          Code = "NONEXISTENT"          // RFC 5530 3
	CodeHasChildren          Code = "HASCHILDREN"          // RFC 9051 7.1
	CodeUnknownCTE           Code = "UNKNOWN-CTE"          // RFC 3516 4.3
	CodeTooBig               Code = "TOOBIG"               // RFC 4469 4, RFC 7889 4, RFC 7888 5
	CodeCompressionActive    Code = "COMPRESSIONACTIVE"    // RFC 4978 3
	CodeUseAttr              Code = "USEATTR"              // RFC 6154 6
)

// CodeBadCharsets is "BADCHARSET" SP "(" charset *(SP charset) ")" (RFC 9051 9).
func CodeBadCharsets(charsets ...string) Code {
	if len(charsets) == 0 {
		return CodeBadCharset
	}
	b := []byte("BADCHARSET (")
	for i, c := range charsets {
		if i > 0 {
			b = append(b, ' ')
		}
		// charset = atom / quoted
		if c != "" && allIn(c, &atomChar) {
			b = append(b, c...)
		} else {
			b = appendQuoted(b, strings.Map(textOnly, c))
		}
	}
	return Code(append(b, ')'))
}

// CodeCapability is capability-data as a response code (RFC 9051 7.1).
func CodeCapability(caps ...string) Code {
	return Code("CAPABILITY " + strings.Join(caps, " "))
}

// CodePermanentFlags is "PERMANENTFLAGS" SP "(" [flag-perm *(SP flag-perm)] ")" (RFC 9051 9);
// include `\*` when clients may create keywords.
func CodePermanentFlags(flags ...string) Code {
	return Code("PERMANENTFLAGS (" + strings.Join(flags, " ") + ")")
}

// CodeUIDNext is "UIDNEXT" SP nz-number. The numbers of these constructors must not be 0.
func CodeUIDNext(uid uint32) Code { return Code("UIDNEXT " + strconv.FormatUint(uint64(uid), 10)) }

// CodeUIDValidity is "UIDVALIDITY" SP nz-number.
func CodeUIDValidity(v uint32) Code {
	return Code("UIDVALIDITY " + strconv.FormatUint(uint64(v), 10))
}

// CodeUnseen is "UNSEEN" SP nz-number (RFC 3501 7.1; gone from IMAP4rev2).
func CodeUnseen(seq uint32) Code { return Code("UNSEEN " + strconv.FormatUint(uint64(seq), 10)) }

// CodeAppendUID is resp-code-apnd = "APPENDUID" SP nz-number SP append-uid (RFC 4315 3; with
// MULTIAPPEND append-uid is a uid-set, RFC 3502).
func CodeAppendUID(validity uint32, uids SeqSet) Code {
	return Code("APPENDUID " + strconv.FormatUint(uint64(validity), 10) + " " + uids.String())
}

// CodeCopyUID is resp-code-copy = "COPYUID" SP nz-number SP uid-set SP uid-set (RFC 4315 3): the
// source and destination UIDs, in corresponding order.
func CodeCopyUID(validity uint32, src, dst SeqSet) Code {
	return Code("COPYUID " + strconv.FormatUint(uint64(validity), 10) + " " + src.String() + " " + dst.String())
}

// CodeHighestModSeq is "HIGHESTMODSEQ" SP mod-sequence-value (RFC 7162 7).
func CodeHighestModSeq(modseq uint64) Code {
	return Code("HIGHESTMODSEQ " + strconv.FormatUint(modseq, 10))
}

// CodeModified is "MODIFIED" SP sequence-set (RFC 7162 3.1.3).
func CodeModified(set SeqSet) Code { return Code("MODIFIED " + set.String()) }

// textOnly maps what may not appear in text (CR, LF, NUL) to a space.
func textOnly(r rune) rune {
	if r == '\r' || r == '\n' || r == 0 {
		return ' '
	}
	return r
}

// Encoder writes server responses. Methods that write a whole response return the first error of
// the underlying writer; a response is written to the buffer completely or, when its arguments
// are invalid, not at all. The session flushes (Flush) when it waits for the client.
type Encoder struct {
	w    *bufio.Writer
	utf8 bool
	buf  []byte
	fw   FetchWriter
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w *bufio.Writer) *Encoder { return &Encoder{w: w} }

// SetUTF8 allows UTF-8 in quoted strings and response text, and sends mailbox names as UTF-8
// instead of modified UTF-7: after ENABLE UTF8=ACCEPT (RFC 6855 3) or IMAP4rev2 (RFC 9051 5.1).
func (e *Encoder) SetUTF8(on bool) { e.utf8 = on }

// Flush flushes the underlying writer.
func (e *Encoder) Flush() error { return e.w.Flush() }

// Reset makes e write to w, as after STARTTLS or COMPRESS.
func (e *Encoder) Reset(w *bufio.Writer) { e.w = w }

var errBadArg = errors.New("imapwire: invalid response argument")

func (e *Encoder) begin() []byte { return e.buf[:0] }

func (e *Encoder) end(b []byte) error {
	e.buf = b[:0]
	_, err := e.w.Write(b)
	return err
}

// text writes resp-text's text: RFC 9051 9 text = 1*(TEXT-CHAR / UTF8-2 / UTF8-3 / UTF8-4), UTF-8
// only when enabled. CR, LF and NUL become spaces, other octets that may not be sent become "?".
func (e *Encoder) appendText(b []byte, text string, st Status) []byte {
	if text == "" {
		// RFC 3501 9 resp-text requires text; IMAP4rev1 clients expect some.
		text = defaultText[st]
	}
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\r' || c == '\n' || c == 0:
			b = append(b, ' ')
			i++
		case c < 0x80:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(text[i:])
			if e.utf8 && !(r == utf8.RuneError && size == 1) {
				b = append(b, text[i:i+size]...)
			} else {
				b = append(b, '?')
			}
			i += size
		}
	}
	return b
}

var defaultText = map[Status]string{OK: "completed", NO: "failed", BAD: "invalid command", BYE: "logging out", PREAUTH: "logged in"}

func validCode(c Code) bool {
	if c == "" {
		return true
	}
	name, _, _ := strings.Cut(string(c), " ")
	if name == "" || !allIn(name, &atomChar) {
		return false
	}
	return !strings.ContainsAny(string(c), "]\r\n\x00")
}

func (e *Encoder) appendStatus(b []byte, st Status, code Code, text string) []byte {
	b = append(b, st...)
	b = append(b, ' ')
	if code != "" {
		// resp-text = ["[" resp-text-code "]" SP] [text]
		b = append(b, '[')
		b = append(b, code...)
		b = append(b, "] "...)
	}
	b = e.appendText(b, text, st)
	return append(b, "\r\n"...)
}

// Tagged writes response-tagged = tag SP resp-cond-state CRLF: "a1 OK [READ-WRITE] done".
// st is OK, NO or BAD (RFC 9051 7.1).
func (e *Encoder) Tagged(tag string, st Status, code Code, text string) error {
	if tag == "" || !allIn(tag, &tagChar) || st != OK && st != NO && st != BAD || !validCode(code) {
		return errBadArg
	}
	b := append(e.begin(), tag...)
	b = append(b, ' ')
	return e.end(e.appendStatus(b, st, code, text))
}

// Untagged writes "*" SP resp-cond-state / resp-cond-bye / resp-cond-auth CRLF (RFC 9051 7.1):
// "* OK [UIDVALIDITY 3857529045] UIDs valid", "* BYE ...", "* PREAUTH ...".
func (e *Encoder) Untagged(st Status, code Code, text string) error {
	switch st {
	case OK, NO, BAD, BYE, PREAUTH:
	default:
		return errBadArg
	}
	if !validCode(code) {
		return errBadArg
	}
	return e.end(e.appendStatus(append(e.begin(), "* "...), st, code, text))
}

// Continue writes a continuation request with text: continue-req = "+" SP resp-text CRLF
// (RFC 9051 7.5), e.g. "+ Ready for literal data" or "+ idling".
func (e *Encoder) Continue(text string) error {
	b := append(e.begin(), "+ "...)
	if text == "" {
		text = "Ready"
	}
	b = e.appendText(b, text, OK)
	return e.end(append(b, "\r\n"...))
}

// ContinueBase64 writes a SASL challenge: continue-req = "+" SP base64 CRLF (RFC 9051 6.2.2); an
// empty challenge is "+ " CRLF.
func (e *Encoder) ContinueBase64(data []byte) error {
	b := append(e.begin(), "+ "...)
	b = base64.StdEncoding.AppendEncode(b, data)
	return e.end(append(b, "\r\n"...))
}

// validAtoms reports whether every element is an atom, or "\" atom (flags, attributes), or "\*".
func validAtoms(l []string) bool {
	for _, s := range l {
		a := strings.TrimPrefix(s, `\`)
		if a == "" || (a != "*" || a == s) && !allIn(a, &atomChar) {
			return false
		}
	}
	return true
}

// Capability writes capability-data: "* CAPABILITY IMAP4rev2 ..." (RFC 9051 7.2.2).
func (e *Encoder) Capability(caps ...string) error { return e.atomsLine("* CAPABILITY", caps, false) }

// Enabled writes enable-data: "* ENABLED CONDSTORE" (RFC 5161 3.2).
func (e *Encoder) Enabled(caps ...string) error { return e.atomsLine("* ENABLED", caps, false) }

// Flags writes "* FLAGS" SP flag-list (RFC 9051 7.3.5).
func (e *Encoder) Flags(flags ...string) error { return e.atomsLine("* FLAGS", flags, true) }

func (e *Encoder) atomsLine(prefix string, l []string, paren bool) error {
	if !validAtoms(l) {
		return errBadArg
	}
	b := append(e.begin(), prefix...)
	b = append(b, ' ')
	if paren {
		b = appendAtomList(b, l)
	} else {
		b = b[:len(b)-1]
		for _, s := range l {
			b = append(b, ' ')
			b = append(b, s...)
		}
	}
	return e.end(append(b, "\r\n"...))
}

func appendAtomList(b []byte, l []string) []byte {
	b = append(b, '(')
	for i, s := range l {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	return append(b, ')')
}

func (e *Encoder) numberLine(n uint64, what string) error {
	b := append(e.begin(), "* "...)
	b = appendUint(b, n)
	b = append(b, what...)
	return e.end(b)
}

// Exists writes number SP "EXISTS" (RFC 9051 7.4.1).
func (e *Encoder) Exists(n uint32) error { return e.numberLine(uint64(n), " EXISTS\r\n") }

// Recent writes number SP "RECENT" (RFC 3501 7.3.2; obsolete in IMAP4rev2).
func (e *Encoder) Recent(n uint32) error { return e.numberLine(uint64(n), " RECENT\r\n") }

// Expunge writes nz-number SP "EXPUNGE" (RFC 9051 7.5.1).
func (e *Encoder) Expunge(seq uint32) error {
	if seq == 0 {
		return errBadArg
	}
	return e.numberLine(uint64(seq), " EXPUNGE\r\n")
}

// Vanished writes expunged-resp = "VANISHED" [SP "(EARLIER)"] SP known-uids (RFC 7162 3.2.10).
func (e *Encoder) Vanished(uids SeqSet, earlier bool) error {
	if uids.IsEmpty() || !uids.Static() {
		return errBadArg
	}
	b := append(e.begin(), "* VANISHED "...)
	if earlier {
		b = append(b, "(EARLIER) "...)
	}
	b = uids.AppendTo(b)
	return e.end(append(b, "\r\n"...))
}

// mailbox appends a mailbox name: modified UTF-7 unless UTF-8 is enabled, as an astring.
func (e *Encoder) appendMailbox(b []byte, name string) []byte {
	if !e.utf8 {
		name = EncodeUTF7(name)
	}
	return appendAString(b, name, e.utf8, false)
}

func (e *Encoder) appendString(b []byte, s string) []byte { return appendString(b, s, e.utf8, false) }

// ListData is one mailbox of a LIST or LSUB response (RFC 9051 7.3.1, RFC 5258 6).
type ListData struct {
	Attrs   []string // mailbox attributes: \Noselect \HasChildren \Subscribed \Sent ...
	Delim   rune     // hierarchy delimiter; 0 for NIL (a flat name space)
	Mailbox string   // decoded (UTF-8) name
	// Extended data items (RFC 5258 6 mbox-list-extended): CHILDINFO for RECURSIVEMATCH,
	// OLDNAME when a name was canonicalised or renamed (RFC 9051 7.3.1).
	ChildInfo []string // e.g. {"SUBSCRIBED"}
	OldName   string
}

// List writes "* LIST" SP mailbox-list.
func (e *Encoder) List(l ListData) error { return e.list("* LIST ", l) }

// Lsub writes "* LSUB" SP mailbox-list (RFC 3501 7.2.3).
func (e *Encoder) Lsub(l ListData) error { return e.list("* LSUB ", l) }

// mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
// [SP mbox-list-extended]
func (e *Encoder) list(prefix string, l ListData) error {
	if !validAtoms(l.Attrs) || !validAtoms(l.ChildInfo) || l.Delim < 0 || l.Delim == '\r' || l.Delim == '\n' ||
		l.Delim >= 0x80 && !e.utf8 {
		return errBadArg
	}
	b := append(e.begin(), prefix...)
	b = appendAtomList(b, l.Attrs)
	b = append(b, ' ')
	b = e.appendDelim(b, l.Delim)
	b = append(b, ' ')
	b = e.appendMailbox(b, l.Mailbox)
	if len(l.ChildInfo) > 0 || l.OldName != "" {
		b = append(b, " ("...)
		if len(l.ChildInfo) > 0 {
			// childinfo-extended-item = "CHILDINFO" SP "(" list-select-base-opt-quoted ... ")"
			b = append(b, `"CHILDINFO" (`...)
			for i, c := range l.ChildInfo {
				if i > 0 {
					b = append(b, ' ')
				}
				b = appendQuoted(b, c)
			}
			b = append(b, ')')
			if l.OldName != "" {
				b = append(b, ' ')
			}
		}
		if l.OldName != "" {
			// oldname-extended-item = "OLDNAME" SP "(" mailbox ")"
			b = append(b, `"OLDNAME" (`...)
			b = e.appendMailbox(b, l.OldName)
			b = append(b, ')')
		}
		b = append(b, ')')
	}
	return e.end(append(b, "\r\n"...))
}

func (e *Encoder) appendDelim(b []byte, d rune) []byte {
	if d == 0 {
		return append(b, "NIL"...)
	}
	return appendQuoted(b, string(d))
}

// StatusValue is one status-att-val (RFC 9051 9, RFC 7162 7, RFC 7889 5, RFC 9208 7).
type StatusValue struct {
	Item  StatusItem
	Value uint64
	Nil   bool // APPENDLIMIT NIL: no limit for this mailbox (RFC 7889 5)
}

// MailboxStatus writes "STATUS" SP mailbox SP "(" [status-att-list] ")" (RFC 9051 7.3.2).
func (e *Encoder) MailboxStatus(mailbox string, values []StatusValue) error {
	b := append(e.begin(), "* STATUS "...)
	b = e.appendMailbox(b, mailbox)
	b = append(b, " ("...)
	for i, v := range values {
		if _, ok := statusItems[string(v.Item)]; !ok || v.Nil && v.Item != StatusAppendLimit {
			return errBadArg
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, v.Item...)
		b = append(b, ' ')
		if v.Nil {
			b = append(b, "NIL"...)
		} else {
			b = appendUint(b, v.Value)
		}
	}
	return e.end(append(b, ")\r\n"...))
}

// Search writes the IMAP4rev1 SEARCH response, "SEARCH" *(SP nz-number) (RFC 3501 7.2.5), with
// RFC 7162 3.1.5's "(MODSEQ n)" when modseq is not 0 and there are results.
func (e *Encoder) Search(nums []uint32, modseq uint64) error {
	b := append(e.begin(), "* SEARCH"...)
	for _, n := range nums {
		if n == 0 {
			return errBadArg // nz-number
		}
		b = append(b, ' ')
		b = appendUint(b, uint64(n))
	}
	if modseq != 0 && len(nums) > 0 {
		b = append(b, " (MODSEQ "...)
		b = appendUint(b, modseq)
		b = append(b, ')')
	}
	return e.end(append(b, "\r\n"...))
}

// ESearchData is an ESEARCH response (RFC 4731 3.1, RFC 9051 7.3.4).
type ESearchData struct {
	Tag    string       // the command's tag for search-correlator; "" for none
	UID    bool         // the results are UIDs
	Return SearchReturn // which of MIN, MAX, ALL, COUNT to include (SAVE is ignored)
	Min    uint32       // omitted when 0: "no matches" (RFC 4731 3.1)
	Max    uint32
	All    SeqSet // omitted when empty
	Count  uint32
	ModSeq uint64 // "MODSEQ" SP mod-sequence-value (RFC 4731 4 with CONDSTORE) when not 0
}

// ESearch writes esearch-response = "ESEARCH" [search-correlator] [SP "UID"]
// *(SP search-return-data); search-correlator = SP "(" "TAG" SP tag-string ")".
func (e *Encoder) ESearch(r ESearchData) error {
	if !r.All.Static() {
		return errBadArg // RFC 9051 9: "$" marker is not allowed after the ALL return data item
	}
	b := append(e.begin(), "* ESEARCH"...)
	if r.Tag != "" {
		b = append(b, " (TAG "...)
		b = appendString(b, r.Tag, false, false)
		b = append(b, ')')
	}
	if r.UID {
		b = append(b, " UID"...)
	}
	if r.Return&ReturnMin != 0 && r.Min != 0 {
		b = append(b, " MIN "...)
		b = appendUint(b, uint64(r.Min))
	}
	if r.Return&ReturnMax != 0 && r.Max != 0 {
		b = append(b, " MAX "...)
		b = appendUint(b, uint64(r.Max))
	}
	if r.Return&ReturnAll != 0 && !r.All.IsEmpty() {
		b = append(b, " ALL "...)
		b = r.All.AppendTo(b)
	}
	if r.Return&ReturnCount != 0 {
		b = append(b, " COUNT "...)
		b = appendUint(b, uint64(r.Count))
	}
	if r.ModSeq != 0 {
		b = append(b, " MODSEQ "...)
		b = appendUint(b, r.ModSeq)
	}
	return e.end(append(b, "\r\n"...))
}

// ID writes id_response = "ID" SPACE id_params_list (RFC 2971 3.2); nil fields give "* ID NIL".
func (e *Encoder) ID(fields []IDField) error {
	b := append(e.begin(), "* ID "...)
	if len(fields) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, f := range fields {
			if i > 0 {
				b = append(b, ' ')
			}
			b = e.appendString(b, f.Name)
			b = append(b, ' ')
			if f.Nil {
				b = append(b, "NIL"...)
			} else {
				b = e.appendString(b, f.Value)
			}
		}
		b = append(b, ')')
	}
	return e.end(append(b, "\r\n"...))
}

// NamespaceDescr is one namespace-descr: a prefix and its delimiter (0 for NIL).
type NamespaceDescr struct {
	Prefix string
	Delim  rune
}

// Namespace writes namespace-response = "NAMESPACE" SP namespace SP namespace SP namespace
// (RFC 9051 7.3.3, RFC 2342 5): personal, other users', shared; an empty list is NIL.
func (e *Encoder) Namespace(personal, other, shared []NamespaceDescr) error {
	b := append(e.begin(), "* NAMESPACE"...)
	for _, ns := range [][]NamespaceDescr{personal, other, shared} {
		b = append(b, ' ')
		if len(ns) == 0 {
			b = append(b, "NIL"...)
			continue
		}
		b = append(b, '(')
		for _, d := range ns {
			if d.Delim < 0 || d.Delim == '\r' || d.Delim == '\n' {
				return errBadArg
			}
			b = append(b, '(')
			prefix := d.Prefix
			if !e.utf8 {
				prefix = EncodeUTF7(prefix) // RFC 2342 6: prefixes are in modified UTF-7
			}
			b = e.appendString(b, prefix)
			b = append(b, ' ')
			b = e.appendDelim(b, d.Delim)
			b = append(b, ')')
		}
		b = append(b, ')')
	}
	return e.end(append(b, "\r\n"...))
}

// QuotaResource is quota-resource = resource-name SP resource-usage SP resource-limit (RFC 9208 7).
type QuotaResource struct {
	Name         string // STORAGE (in units of 1024 octets), MESSAGE, MAILBOX, ANNOTATION-STORAGE
	Usage, Limit uint64
}

// Quota writes quota-response = "QUOTA" SP quota-root-name SP quota-list (RFC 9208 5.1).
func (e *Encoder) Quota(root string, res []QuotaResource) error {
	b := append(e.begin(), "* QUOTA "...)
	b = appendAString(b, root, e.utf8, false)
	b = append(b, " ("...)
	for i, r := range res {
		if r.Name == "" || !allIn(r.Name, &atomChar) || r.Usage > maxNumber64 || r.Limit > maxNumber64 {
			return errBadArg
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, r.Name...)
		b = append(b, ' ')
		b = appendUint(b, r.Usage)
		b = append(b, ' ')
		b = appendUint(b, r.Limit)
	}
	return e.end(append(b, ")\r\n"...))
}

// QuotaRoot writes quotaroot-response = "QUOTAROOT" SP mailbox *(SP quota-root-name) (RFC 9208 5.2).
func (e *Encoder) QuotaRoot(mailbox string, roots ...string) error {
	b := append(e.begin(), "* QUOTAROOT "...)
	b = e.appendMailbox(b, mailbox)
	for _, r := range roots {
		b = append(b, ' ')
		b = appendAString(b, r, e.utf8, false)
	}
	return e.end(append(b, "\r\n"...))
}

// Raw writes an untagged response the server rendered itself, e.g. for an extension this package
// does not know: "* " + line + CRLF. line must not contain CR or LF.
func (e *Encoder) Raw(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("imapwire: Raw line contains CR or LF")
	}
	b := append(e.begin(), "* "...)
	b = append(b, line...)
	return e.end(append(b, "\r\n"...))
}
