package imapserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	gocharset "github.com/emersion/go-message/charset"
	"golang.org/x/text/cases"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
	"posta/internal/message"
)

// searchEnv is the state a SEARCH key is evaluated against.
type searchEnv struct {
	MaxSeq uint32   // "*" for sequence sets: the highest sequence number
	MaxUID uint32   // "*" for UID sets: the highest UID in the mailbox
	Saved  []uint32 // UIDs of the saved result ($, RFC 5182), sorted; nil when none saved
}

// Dates: RFC 9051 6.4.4 compares "disregarding time and timezone". BEFORE, ON and SINCE use the day of the
// INTERNALDATE in the zone it was stored with (the date APPEND gave, or the time of delivery), SENTBEFORE,
// SENTON and SENTSINCE the day written in the Date: header, in its own zone. A message whose Date: is missing or
// cannot be parsed matches none of the SENT keys (and so every NOT SENT... key).

// matchSearch reports whether m matches every key (they are ANDed: RFC 9051 6.4.4). Keys that need only the
// metadata are tried first, so a message ruled out by flags, size, date or number is never read.
//
// String keys match a case-insensitive substring (RFC 9051 6.4.4) after Unicode case folding. The session must
// have turned key values into UTF-8 already when the client gave a CHARSET other than UTF-8 or US-ASCII (and
// answered NO [BADCHARSET] for one it does not know).
func matchSearch(ctx context.Context, keys []imapwire.SearchKey, m *msg, env *searchEnv) (bool, error) {
	for pass := 0; pass < 2; pass++ {
		for _, k := range keys {
			if searchKeyNeedsMessage(k) != (pass == 1) {
				continue
			}
			ok, err := matchSearchKey(ctx, k, m, env)
			if err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

// searchNeedsStructure reports whether any key needs the message's stored structure and header (FROM, TO, CC,
// BCC, SUBJECT, HEADER, SENT*, BODY, TEXT); without one, SEARCH is answered from metadata alone.
func searchNeedsStructure(keys []imapwire.SearchKey) bool {
	return slices.ContainsFunc(keys, searchKeyNeedsMessage)
}

// searchNeedsBody reports whether any key reads the body text (BODY, TEXT).
func searchNeedsBody(keys []imapwire.SearchKey) bool {
	return slices.ContainsFunc(keys, searchKeyNeedsBody)
}

func searchKeyNeedsMessage(k imapwire.SearchKey) bool {
	switch k.Op {
	case imapwire.SearchBcc, imapwire.SearchCc, imapwire.SearchFrom, imapwire.SearchTo, imapwire.SearchSubject,
		imapwire.SearchHeader, imapwire.SearchSentBefore, imapwire.SearchSentOn, imapwire.SearchSentSince,
		imapwire.SearchBody, imapwire.SearchText:
		return true
	case imapwire.SearchNot, imapwire.SearchOr, imapwire.SearchAnd:
		return slices.ContainsFunc(k.Keys, searchKeyNeedsMessage)
	}
	return false
}

func searchKeyNeedsBody(k imapwire.SearchKey) bool {
	switch k.Op {
	case imapwire.SearchBody, imapwire.SearchText:
		return true
	case imapwire.SearchNot, imapwire.SearchOr, imapwire.SearchAnd:
		return slices.ContainsFunc(k.Keys, searchKeyNeedsBody)
	}
	return false
}

func matchSearchKey(ctx context.Context, k imapwire.SearchKey, m *msg, env *searchEnv) (bool, error) {
	meta := &m.Meta
	switch k.Op {
	case imapwire.SearchAll:
		return true, nil
	case imapwire.SearchAnswered:
		return meta.Flags.System&mailstore.Answered != 0, nil
	case imapwire.SearchUnanswered:
		return meta.Flags.System&mailstore.Answered == 0, nil
	case imapwire.SearchDeleted:
		return meta.Flags.System&mailstore.Deleted != 0, nil
	case imapwire.SearchUndeleted:
		return meta.Flags.System&mailstore.Deleted == 0, nil
	case imapwire.SearchDraft:
		return meta.Flags.System&mailstore.Draft != 0, nil
	case imapwire.SearchUndraft:
		return meta.Flags.System&mailstore.Draft == 0, nil
	case imapwire.SearchFlagged:
		return meta.Flags.System&mailstore.Flagged != 0, nil
	case imapwire.SearchUnflagged:
		return meta.Flags.System&mailstore.Flagged == 0, nil
	case imapwire.SearchSeen:
		return meta.Flags.System&mailstore.Seen != 0, nil
	case imapwire.SearchUnseen:
		return meta.Flags.System&mailstore.Seen == 0, nil
	case imapwire.SearchKeyword:
		return searchHasKeyword(meta.Flags.Keywords, k.Value), nil
	case imapwire.SearchUnkeyword:
		return !searchHasKeyword(meta.Flags.Keywords, k.Value), nil

	// RFC 3501 6.4.4. The store keeps no \Recent (RFC 9051 Appendix E deprecated it), so no message is recent:
	// RECENT and NEW (RECENT UNSEEN) match nothing, OLD (NOT RECENT) matches everything.
	case imapwire.SearchRecent, imapwire.SearchNew:
		return false, nil
	case imapwire.SearchOld:
		return true, nil

	case imapwire.SearchBefore:
		return searchDay(meta.InternalDate).Before(searchDay(k.Date)), nil
	case imapwire.SearchOn:
		return searchDay(meta.InternalDate).Equal(searchDay(k.Date)), nil
	case imapwire.SearchSince:
		return !searchDay(meta.InternalDate).Before(searchDay(k.Date)), nil
	case imapwire.SearchSentBefore, imapwire.SearchSentOn, imapwire.SearchSentSince:
		sent, ok, err := m.sentDay(ctx)
		if err != nil || !ok {
			return false, err
		}
		day := searchDay(k.Date)
		switch k.Op {
		case imapwire.SearchSentBefore:
			return sent.Before(day), nil
		case imapwire.SearchSentOn:
			return sent.Equal(day), nil
		}
		return !sent.Before(day), nil

	// RFC 9051 6.4.4: LARGER and SMALLER compare RFC822.SIZE, strictly.
	case imapwire.SearchLarger:
		return meta.Size >= 0 && uint64(meta.Size) > k.Number, nil
	case imapwire.SearchSmaller:
		return meta.Size >= 0 && uint64(meta.Size) < k.Number, nil

	// RFC 7162 3.1.5: "messages that have modification values that are equal to or greater than" the value.
	// The entry name and type only narrow which metadata item counts; the store keeps one MODSEQ per message,
	// which is the highest of all of them, so the value is compared with it for every entry.
	case imapwire.SearchModSeq:
		return meta.ModSeq >= k.Number, nil

	case imapwire.SearchUID:
		return searchSetHas(k.Seq, meta.UID, env.MaxUID, env.Saved, meta.UID), nil
	case imapwire.SearchSeqSet:
		// RFC 5182 2.1: "$" names the messages of the saved result whether used as sequence numbers or UIDs;
		// they are kept as UIDs so expunges cannot shift them.
		return searchSetHas(k.Seq, m.Seq, env.MaxSeq, env.Saved, meta.UID), nil

	case imapwire.SearchFrom:
		return m.headerHas(ctx, "From", k.Value)
	case imapwire.SearchTo:
		return m.headerHas(ctx, "To", k.Value)
	case imapwire.SearchCc:
		return m.headerHas(ctx, "Cc", k.Value)
	case imapwire.SearchBcc:
		return m.headerHas(ctx, "Bcc", k.Value)
	case imapwire.SearchSubject:
		return m.headerHas(ctx, "Subject", k.Value)
	case imapwire.SearchHeader:
		// RFC 9051 6.4.4: "If the string to search is zero-length, this matches all messages that have a header
		// field with the specified field-name regardless of the contents."
		return m.headerHas(ctx, k.Field, k.Value)
	case imapwire.SearchBody:
		return m.bodyHas(ctx, searchFold(k.Value))
	case imapwire.SearchText:
		// RFC 9051 6.4.4: "Messages that contain the specified string in the header (including MIME header
		// fields) or body of the message."
		needle := searchFold(k.Value)
		h, err := m.headerText(ctx)
		if err != nil || strings.Contains(h, needle) {
			return err == nil, err
		}
		return m.bodyHas(ctx, needle)

	case imapwire.SearchNot:
		if len(k.Keys) != 1 {
			return false, fmt.Errorf("imapserver: SEARCH NOT with %d keys", len(k.Keys))
		}
		ok, err := matchSearchKey(ctx, k.Keys[0], m, env)
		return !ok && err == nil, err
	case imapwire.SearchOr:
		if len(k.Keys) != 2 {
			return false, fmt.Errorf("imapserver: SEARCH OR with %d keys", len(k.Keys))
		}
		a, b := k.Keys[0], k.Keys[1]
		if searchKeyNeedsMessage(a) && !searchKeyNeedsMessage(b) {
			a, b = b, a // the cheap one first
		}
		ok, err := matchSearchKey(ctx, a, m, env)
		if err != nil || ok {
			return ok, err
		}
		return matchSearchKey(ctx, b, m, env)
	case imapwire.SearchAnd:
		return matchSearch(ctx, k.Keys, m, env)
	}
	return false, fmt.Errorf("imapserver: unknown SEARCH key %v", k.Op)
}

// searchSetHas reports whether n is in set with "*" standing for star, or, when the set includes "$", whether uid is
// in the saved result.
func searchSetHas(set imapwire.SeqSet, n, star uint32, saved []uint32, uid uint32) bool {
	if set.Contains(n, star) {
		return true
	}
	if set.Saved {
		_, ok := slices.BinarySearch(saved, uid)
		return ok
	}
	return false
}

func searchHasKeyword(kw []string, want string) bool {
	for _, k := range kw {
		if strings.EqualFold(k, want) {
			return true
		}
	}
	return false
}

// searchDay is t's calendar day in t's own zone, as midnight UTC, the form imapwire gives search dates in.
func searchDay(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

// searchFold case-folds s for matching (Unicode full case folding; a Caser keeps state, so one per call).
func searchFold(s string) string { return cases.Fold().String(s) }

// sentDay returns the day of the Date: header field, and false when there is none that parses. With several
// Date: fields the last counts, as it does for ENVELOPE (internal/message follows Dovecot there).
func (m *msg) sentDay(ctx context.Context) (time.Time, bool, error) {
	h, err := m.header(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	vals := h.Values("Date")
	if len(vals) == 0 {
		return time.Time{}, false, nil
	}
	t, err := mail.ParseDate(vals[len(vals)-1])
	if err != nil {
		return time.Time{}, false, nil
	}
	return searchDay(t), true, nil
}

// headerHas reports whether a field of the top-level header named name contains value, each occurrence tried,
// after RFC 2047 decoding (addresses are searched as written, display names decoded). A message without the
// field never matches, not even the empty string.
func (m *msg) headerHas(ctx context.Context, name, value string) (bool, error) {
	h, err := m.header(ctx)
	if err != nil {
		return false, err
	}
	vals := h.Values(name)
	if len(vals) == 0 {
		return false, nil
	}
	if value == "" {
		return true, nil
	}
	needle := searchFold(value)
	for _, v := range vals {
		if strings.Contains(searchFold(message.DecodeText(v)), needle) {
			return true, nil
		}
	}
	return false, nil
}

// headerText is the top-level header as TEXT searches it: every field unfolded and decoded, one per line,
// folded for matching.
func (m *msg) headerText(ctx context.Context) (string, error) {
	if m.hdrTextOK {
		return m.hdrText, nil
	}
	h, err := m.header(ctx)
	if err != nil {
		return "", err
	}
	m.hdrText, m.hdrTextOK = searchFold(searchHeaderText(h)), true
	return m.hdrText, nil
}

// searchHeaderText renders a raw header block for searching: each field (RFC 5322 2.2) unfolded (2.2.3) and
// RFC 2047 decoded, as "Name: value" lines.
func searchHeaderText(h []byte) string {
	var b strings.Builder
	var field []byte
	flush := func() {
		if len(field) > 0 {
			b.WriteString(message.DecodeText(string(field)))
			b.WriteByte('\n')
			field = field[:0]
		}
	}
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			field = append(field, line...)
			continue
		}
		flush()
		field = append(field, line...)
	}
	flush()
	return b.String()
}

// searchTextUnit is one piece of searchable body text: a text/* leaf's decoded body, or the header of a message
// inside a message/rfc822 part (which is body text of the outer message).
type searchTextUnit struct {
	part   *message.Part
	header bool
}

// bodyHas reports whether the body text contains needle (already folded). Units are decoded in message order
// and cached on m, so the search stops reading at the first match and a second BODY or TEXT key reuses what the
// first one read.
func (m *msg) bodyHas(ctx context.Context, needle string) (bool, error) {
	if !m.textInit {
		pm, err := m.parsed(ctx)
		if err != nil {
			return false, err
		}
		m.textNext = searchTextUnits(pm.Root, nil)
		m.textInit = true
	}
	for _, t := range m.texts {
		if strings.Contains(t, needle) {
			return true, nil
		}
	}
	for len(m.textNext) > 0 {
		u := m.textNext[0]
		t, err := m.unitText(ctx, u)
		if err != nil {
			return false, err
		}
		m.textNext = m.textNext[1:]
		m.texts = append(m.texts, t)
		if strings.Contains(t, needle) {
			return true, nil
		}
	}
	return false, nil
}

// searchTextUnits lists the searchable pieces under p in message order. Parts that are not text (images,
// PDFs, a Content-Type that could not be parsed) hold nothing a substring search should find.
func searchTextUnits(p *message.Part, out []searchTextUnit) []searchTextUnit {
	switch {
	case p.Type == "multipart":
		for _, c := range p.Children {
			out = searchTextUnits(c, out)
		}
	case p.Encapsulated != nil:
		out = append(out, searchTextUnit{part: p.Encapsulated, header: true})
		out = searchTextUnits(p.Encapsulated, out)
	case p.Type == "text":
		out = append(out, searchTextUnit{part: p})
	}
	return out
}

// unitText reads and decodes one unit, folded for matching. A body has its transfer encoding undone (an
// encoding the server does not know is searched as it is) and its charset converted to UTF-8 with go-message's
// charset tables; if the charset is unknown or the conversion fails, the decoded octets are searched as they are.
func (m *msg) unitText(ctx context.Context, u searchTextUnit) (string, error) {
	p := u.part
	if u.header {
		h, err := m.readSpan(ctx, p.HeaderStart, p.BodyStart)
		if err != nil {
			return "", err
		}
		return searchFold(searchHeaderText(h)), nil
	}
	raw, err := m.readSpan(ctx, p.BodyStart, p.End)
	if err != nil {
		return "", err
	}
	data := raw
	if dec, err := decodeCTE(p, bytes.NewReader(raw)); err == nil {
		if d, err := io.ReadAll(dec); err == nil {
			data = d
		}
	}
	return searchFold(searchToUTF8(p.Charset(), data)), nil
}

// searchToUTF8 converts text in charset to UTF-8. Text labelled US-ASCII or UTF-8, and text whose charset is
// unknown or does not convert, is taken as UTF-8 where it is valid and as ISO-8859-1 where it is not (the common
// unlabelled legacy case), as message.DecodeText does for header fields.
func searchToUTF8(charset string, data []byte) string {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "", "us-ascii", "ascii", "utf-8", "utf8":
		return searchRawText(data)
	}
	r, err := gocharset.Reader(charset, bytes.NewReader(data))
	if err != nil {
		return searchRawText(data)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return searchRawText(data)
	}
	return string(out)
}

// searchRawText keeps valid UTF-8 and reads every other octet as ISO-8859-1.
func searchRawText(data []byte) string {
	if utf8.Valid(data) {
		return string(data)
	}
	var b strings.Builder
	b.Grow(len(data) + len(data)/8)
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n == 1 {
			r = rune(data[0])
		}
		b.WriteRune(r)
		data = data[n:]
	}
	return b.String()
}
