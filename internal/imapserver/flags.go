package imapserver

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"posta/internal/mailstore"
)

// errBadFlag is wrapped by parseFlags for a flag the server does not accept; the session answers BAD (the
// flag is not valid syntax, or a system flag it cannot store).
var errBadFlag = errors.New("imapserver: invalid flag")

// systemFlagNames spells the system flags (RFC 9051 2.3.2) in the order FLAGS responses list them.
var systemFlagNames = [...]struct {
	flag mailstore.Flag
	name string
}{
	{mailstore.Seen, `\Seen`},
	{mailstore.Answered, `\Answered`},
	{mailstore.Flagged, `\Flagged`},
	{mailstore.Deleted, `\Deleted`},
	{mailstore.Draft, `\Draft`},
}

// flagList renders f as a FETCH FLAGS list: the system flags in a fixed order, then the keywords as stored.
func flagList(f mailstore.Flags) []string {
	out := make([]string, 0, len(systemFlagNames)+len(f.Keywords))
	for _, sf := range systemFlagNames {
		if f.System&sf.flag != 0 {
			out = append(out, sf.name)
		}
	}
	return append(out, f.Keywords...)
}

// parseFlags turns the flags of STORE or APPEND into mailstore.Flags. System flags are matched
// case-insensitively (RFC 9051 2.3.2: flags are case-insensitive). \Recent is dropped without complaint: RFC
// 9051 Appendix E (12) deprecated it, RFC 3501 2.3.2 forbade clients to change it, and the store keeps none.
// Any other name starting with a backslash, \* included (it appears only in PERMANENTFLAGS), is an error, as is
// a keyword that is not an atom (RFC 9051 9: flag-keyword = atom; the store also keeps keywords joined by
// spaces). Keywords are deduplicated case-insensitively and sorted the way mailstore keeps them.
func parseFlags(list []string) (mailstore.Flags, error) {
	var f mailstore.Flags
	for _, s := range list {
		if strings.HasPrefix(s, `\`) {
			if strings.EqualFold(s, `\Recent`) {
				continue
			}
			found := false
			for _, sf := range systemFlagNames {
				if strings.EqualFold(s, sf.name) {
					f.System |= sf.flag
					found = true
					break
				}
			}
			if !found {
				return mailstore.Flags{}, fmt.Errorf("%w: %q", errBadFlag, s)
			}
			continue
		}
		if !isFlagAtom(s) {
			return mailstore.Flags{}, fmt.Errorf("%w: keyword %q is not an atom", errBadFlag, s)
		}
		f.Keywords = append(f.Keywords, s)
	}
	f.Keywords = normFlagKeywords(f.Keywords)
	return f, nil
}

// normFlagKeywords sorts keywords and drops case-insensitive duplicates (the first spelling wins), exactly as
// mailstore stores them, so that flags compared or echoed here equal what a later FETCH FLAGS reads back.
func normFlagKeywords(kw []string) []string {
	if len(kw) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(kw))
	out := make([]string, 0, len(kw))
	for _, k := range kw {
		l := strings.ToLower(k)
		if k == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// isFlagAtom reports whether s is an RFC 9051 9 atom: one or more ATOM-CHAR, that is CHAR (%x01-7F) except
// atom-specials: "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]".
func isFlagAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}

// mailboxFlags is the flag list of the untagged FLAGS response of SELECT and EXAMINE (RFC 9051 7.3.5): every
// system flag and the keywords in use in the mailbox.
func mailboxFlags(keywords []string) []string {
	out := make([]string, 0, len(systemFlagNames)+len(keywords))
	for _, sf := range systemFlagNames {
		out = append(out, sf.name)
	}
	return append(out, normFlagKeywords(keywords)...)
}

// permanentFlags is the list of the PERMANENTFLAGS response code (RFC 9051 7.1): the flags of mailboxFlags,
// all stored permanently, and \* because clients may create keywords (RFC 9051 2.3.2). A read-only mailbox
// (EXAMINE) gets an empty list instead: nothing can be changed.
func permanentFlags(keywords []string) []string {
	return append(mailboxFlags(keywords), `\*`)
}
