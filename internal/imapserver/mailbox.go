package imapserver

import (
	"slices"
	"strings"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

// delim is the hierarchy separator (RFC 9051 5.1.1), the store's.
const delim = '/'

// mailboxName cleans a client's mailbox name: INBOX in any case is INBOX
// (RFC 9051 5.1), and names the store cannot hold are refused.
func mailboxName(name string) (string, error) {
	if err := imapwire.CheckMailboxName(name); err != nil {
		return "", no(imapwire.CodeCannot, "Bad mailbox name")
	}
	clean, err := mailstore.CleanName(strings.TrimSuffix(name, string(delim)))
	if err != nil {
		return "", no(imapwire.CodeCannot, "Bad mailbox name")
	}
	return clean, nil
}

// create answers CREATE (RFC 9051 6.3.4), with CREATE-SPECIAL-USE's USE
// (RFC 6154 3). A trailing separator only declares intent to have children
// (RFC 9051 6.3.4), so it is dropped.
func (ss *session) create(cmd *imapwire.Command) error {
	name, err := mailboxName(cmd.Create.Mailbox)
	if err != nil {
		return err
	}
	use := ""
	switch len(cmd.Create.Use) {
	case 0:
	case 1:
		use = specialUse(cmd.Create.Use[0])
		if use == "" {
			// RFC 6154 3: NO [USEATTR] for a use we do not support.
			return no(imapwire.CodeUseAttr, "Unsupported special-use attribute")
		}
	default:
		return no(imapwire.CodeUseAttr, "Only one special-use attribute per mailbox")
	}
	if name == "INBOX" {
		return no(imapwire.CodeAlreadyExists, "INBOX always exists")
	}
	_, err = ss.s.o.Store.CreateMailbox(ss.ctx(), ss.account, name, use)
	return err
}

// specialUse canonicalises an RFC 6154 2 attribute; "" if unknown.
func specialUse(a string) string {
	for _, u := range []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`} {
		if strings.EqualFold(a, u) {
			return u
		}
	}
	return ""
}

// delete answers DELETE (RFC 9051 6.3.5).
func (ss *session) delete(cmd *imapwire.Command) error {
	name, err := mailboxName(cmd.Mailbox)
	if err != nil {
		return err
	}
	if ss.mb != nil && ss.mb.name == name {
		// Deleting the selected mailbox: leave it first, as UNSELECT would.
		ss.leave()
	}
	return ss.s.o.Store.DeleteMailbox(ss.ctx(), ss.account, name)
}

// rename answers RENAME (RFC 9051 6.3.6); renaming INBOX moves its
// messages and leaves it empty (the store does that).
func (ss *session) rename(cmd *imapwire.Command) error {
	from, err := mailboxName(cmd.Rename.From)
	if err != nil {
		return err
	}
	to, err := mailboxName(cmd.Rename.To)
	if err != nil {
		return err
	}
	if to == "INBOX" {
		return no(imapwire.CodeAlreadyExists, "INBOX always exists")
	}
	if from == to {
		return no(imapwire.CodeAlreadyExists, "Mailbox already has that name")
	}
	return ss.s.o.Store.RenameMailbox(ss.ctx(), ss.account, from, to)
}

// subscribe answers SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8).
// Subscriptions are names: the mailbox need not exist (RFC 9051 6.3.7),
// and UNSUBSCRIBE of a name not subscribed is OK.
func (ss *session) subscribe(cmd *imapwire.Command) error {
	name, err := mailboxName(cmd.Mailbox)
	if err != nil {
		return err
	}
	return ss.s.o.Store.SetSubscribed(ss.ctx(), ss.account, name, cmd.Name == "SUBSCRIBE")
}

// namespace answers NAMESPACE (RFC 9051 6.3.10, RFC 2342): one personal
// namespace, no others.
func (ss *session) namespace(*imapwire.Command) error {
	return ss.c.enc.Namespace([]imapwire.NamespaceDescr{{Prefix: "", Delim: delim}}, nil, nil)
}

// list answers LIST and LSUB (RFC 9051 6.3.9, RFC 3501 6.3.9), with
// LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC
// 6154). CHILDREN attributes (RFC 3348) are always given, to LSUB too
// (RFC 3348 3 lets it leave them out), but for its \Noselect names.
func (ss *session) list(cmd *imapwire.Command) error {
	l := cmd.List
	lsub := cmd.Name == "LSUB"
	if len(l.Patterns) == 1 && l.Patterns[0] == "" && !l.Extended {
		// RFC 9051 6.3.9: an empty pattern asks for the delimiter.
		d := imapwire.ListData{Attrs: []string{`\Noselect`}, Delim: delim, Mailbox: ""}
		if lsub {
			return ss.c.enc.Lsub(d)
		}
		return ss.c.enc.List(d)
	}
	boxes, err := ss.s.o.Store.Mailboxes(ss.c.ctx, ss.account)
	if err != nil {
		return err
	}
	hasChildren := map[string]bool{}
	exists := make(map[string]*mailstore.Mailbox, len(boxes))
	names := make([]string, 0, len(boxes))
	for i, b := range boxes {
		exists[b.Name] = &boxes[i]
		names = append(names, b.Name)
		for _, p := range ancestors(b.Name) {
			hasChildren[p] = true
		}
	}
	var matchers []func(string) bool
	for _, p := range l.Patterns {
		matchers = append(matchers, listMatcher(l.Reference, p))
	}
	subscribedOnly := lsub || l.SelectSubscribed
	// Subscriptions are names, not mailboxes: one may outlive its mailbox
	// or name one that never existed (RFC 3501 6.3.9, RFC 9051 6.3.7).
	subscribed := map[string]bool{}
	if subscribedOnly || l.ReturnSubscribed {
		subs, err := ss.s.o.Store.Subscriptions(ss.c.ctx, ss.account)
		if err != nil {
			return err
		}
		for _, n := range subs {
			subscribed[n] = true
		}
	}
	// RFC 5258 3.5 RECURSIVEMATCH: a name that does not itself qualify but
	// has a subscribed descendant is listed with CHILDINFO; RFC 3501 6.3.9:
	// LSUB lists it as \Noselect.
	subscribedBelow := map[string]bool{}
	if l.SelectRecursiveMatch && l.SelectSubscribed || lsub {
		for n := range subscribed {
			for _, p := range ancestors(n) {
				subscribedBelow[p] = true
			}
		}
	}
	if subscribedOnly {
		// Names without a mailbox are listed only when selected by their
		// subscription (RFC 5258 3, 3.1) or a subscribed descendant.
		added := map[string]bool{}
		for _, set := range []map[string]bool{subscribed, subscribedBelow} {
			for n := range set {
				if exists[n] == nil && !added[n] {
					added[n] = true
					names = append(names, n)
				}
			}
		}
		if len(added) > 0 {
			slices.SortFunc(names, compareNames)
		}
	}
	for _, name := range names {
		b, sub := exists[name], subscribed[name]
		matched := false
		for _, m := range matchers {
			if m(name) {
				matched = true
				break
			}
		}
		var childInfo []string
		if subscribedBelow[name] && !lsub {
			childInfo = []string{"SUBSCRIBED"}
		}
		// RFC 3501 6.3.9: LSUB "%" lists an unsubscribed parent of a
		// subscribed name, as \Noselect.
		lsubParent := lsub && !sub && subscribedBelow[name] && hasPercent(l.Patterns)
		if !matched || subscribedOnly && !sub && childInfo == nil && !lsubParent {
			continue
		}
		if l.SelectSpecialUse && (b == nil || b.SpecialUse == "") {
			continue
		}
		var attrs []string
		switch {
		case lsub && (lsubParent || b == nil):
			// RFC 3501 6.3.9: \Noselect for the parent, and for a
			// subscribed name with no mailbox.
			attrs = append(attrs, `\Noselect`)
		case b == nil:
			// RFC 5258 3: \NonExistent implies \Noselect.
			attrs = append(attrs, `\NonExistent`)
			if hasChildren[name] {
				attrs = append(attrs, `\HasChildren`) // RFC 5258 3.5
			}
		case hasChildren[name]:
			attrs = append(attrs, `\HasChildren`)
		default:
			attrs = append(attrs, `\HasNoChildren`)
		}
		if sub && (l.ReturnSubscribed || l.SelectSubscribed) {
			attrs = append(attrs, `\Subscribed`)
		}
		if b != nil && b.SpecialUse != "" && !lsub {
			attrs = append(attrs, b.SpecialUse)
		}
		d := imapwire.ListData{Attrs: attrs, Delim: delim, Mailbox: name, ChildInfo: childInfo}
		if lsub {
			err = ss.c.enc.Lsub(d)
		} else {
			err = ss.c.enc.List(d)
		}
		if err != nil {
			return err
		}
		if len(l.ReturnStatus) > 0 && b != nil {
			// RFC 5819 2: STATUS right after the mailbox's LIST line; none
			// for a name that is no mailbox.
			if err := ss.writeStatus(*b, l.ReturnStatus); err != nil {
				return err
			}
		}
	}
	return nil
}

// ancestors are the names above name: a/b/c has a/b and a.
func ancestors(name string) []string {
	var out []string
	for p := name; ; {
		j := strings.LastIndexByte(p, delim)
		if j <= 0 {
			return out
		}
		p = p[:j]
		out = append(out, p)
	}
}

// compareNames orders names as the store lists mailboxes: INBOX first.
func compareNames(a, b string) int {
	if (a == "INBOX") != (b == "INBOX") {
		if a == "INBOX" {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func hasPercent(patterns []string) bool {
	for _, p := range patterns {
		if strings.Contains(p, "%") {
			return true
		}
	}
	return false
}

// mailboxAttrs are one mailbox's LIST attributes: children and special use.
func (ss *session) mailboxAttrs(mb mailstore.Mailbox) ([]string, error) {
	boxes, err := ss.s.o.Store.Mailboxes(ss.c.ctx, ss.account)
	if err != nil {
		return nil, err
	}
	attrs := []string{`\HasNoChildren`}
	for _, b := range boxes {
		if strings.HasPrefix(b.Name, mb.Name+string(delim)) {
			attrs[0] = `\HasChildren`
			break
		}
	}
	if mb.SpecialUse != "" {
		attrs = append(attrs, mb.SpecialUse)
	}
	return attrs, nil
}

// listMatcher matches mailbox names against reference+pattern (RFC 9051
// 6.3.9): "*" matches anything, "%" anything but the separator. INBOX
// matches case-insensitively.
func listMatcher(ref, pattern string) func(string) bool {
	full := ref + pattern
	if len(full) >= 5 && strings.EqualFold(full[:5], "INBOX") && (len(full) == 5 || full[5] == delim || full[5] == '*' || full[5] == '%') {
		full = "INBOX" + full[5:]
	}
	return func(name string) bool { return wildMatch(full, name) }
}

func wildMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if wildMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '%':
			for i := 0; i <= len(s); i++ {
				if wildMatch(p[1:], s[i:]) {
					return true
				}
				if i < len(s) && s[i] == delim {
					return false
				}
			}
			return false
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}

// status answers STATUS (RFC 9051 6.3.11).
func (ss *session) status(cmd *imapwire.Command) error {
	name, err := mailboxName(cmd.Status.Mailbox)
	if err != nil {
		return err
	}
	mb, err := ss.s.o.Store.Mailbox(ss.c.ctx, ss.account, name)
	if err != nil {
		return err
	}
	return ss.writeStatus(mb, cmd.Status.Items)
}

// writeStatus writes one STATUS response for mb.
func (ss *session) writeStatus(mb mailstore.Mailbox, items []imapwire.StatusItem) error {
	var vals []imapwire.StatusValue
	var deleted, deletedSize uint64
	counted := false
	count := func() error {
		if counted {
			return nil
		}
		counted = true
		metas, err := ss.s.o.Store.Messages(ss.c.ctx, mb.ID)
		if err != nil {
			return err
		}
		for _, m := range metas {
			if m.Flags.System&mailstore.Deleted != 0 {
				deleted++
				deletedSize += uint64(m.Size)
			}
		}
		return nil
	}
	for _, it := range items {
		v := imapwire.StatusValue{Item: it}
		switch it {
		case imapwire.StatusMessages:
			v.Value = uint64(mb.Messages)
		case imapwire.StatusUIDNext:
			v.Value = uint64(mb.UIDNext)
		case imapwire.StatusUIDValidity:
			v.Value = uint64(mb.UIDValidity)
		case imapwire.StatusUnseen:
			v.Value = uint64(mb.Unseen)
		case imapwire.StatusRecent:
			v.Value = 0 // RFC 9051 dropped \Recent; no session ever sees one
		case imapwire.StatusSize:
			v.Value = uint64(mb.Size)
		case imapwire.StatusHighestModSeq:
			v.Value = mb.HighestModSeq
		case imapwire.StatusAppendLimit:
			v.Value = uint64(ss.s.lim.Wire.MaxAppend)
		case imapwire.StatusDeleted:
			if err := count(); err != nil {
				return err
			}
			v.Value = deleted
		case imapwire.StatusDeletedStorage:
			// RFC 9208 4.2: in units of 1024 octets, rounded up.
			if err := count(); err != nil {
				return err
			}
			v.Value = (deletedSize + 1023) / 1024
		default:
			continue
		}
		vals = append(vals, v)
	}
	return ss.c.enc.MailboxStatus(mb.Name, vals)
}

// getQuotaRoot answers GETQUOTAROOT (RFC 9208 4.3.2): one root, "", for
// the whole account.
func (ss *session) getQuotaRoot(cmd *imapwire.Command) error {
	name, err := mailboxName(cmd.Mailbox)
	if err != nil {
		return err
	}
	if _, err := ss.s.o.Store.Mailbox(ss.c.ctx, ss.account, name); err != nil {
		return err
	}
	if err := ss.c.enc.QuotaRoot(name, ""); err != nil {
		return err
	}
	return ss.writeQuota()
}

// getQuota answers GETQUOTA (RFC 9208 4.3.1).
func (ss *session) getQuota(cmd *imapwire.Command) error {
	if cmd.Quota.Root != "" {
		return no(imapwire.CodeNonExistent, "No such quota root")
	}
	return ss.writeQuota()
}

// setQuota answers SETQUOTA (RFC 9208 4.3.3): quotas are the operator's
// (posta user set), not the user's.
func (ss *session) setQuota(*imapwire.Command) error {
	return no(imapwire.CodeNoPerm, "Quotas are set by the administrator")
}

// writeQuota writes the account's QUOTA response: STORAGE in KiB (RFC 9208
// 5.1) and MESSAGE counts; without a quota, no resources.
func (ss *session) writeQuota() error {
	acc, err := ss.s.o.Directory.Account(ss.c.ctx, ss.account)
	if err != nil {
		return err
	}
	var res []imapwire.QuotaResource
	if acc.QuotaBytes > 0 {
		used, err := ss.s.o.Store.Usage(ss.c.ctx, ss.account)
		if err != nil {
			return err
		}
		res = append(res, imapwire.QuotaResource{Name: "STORAGE", Usage: uint64(used+1023) / 1024, Limit: uint64(acc.QuotaBytes) / 1024})
	}
	return ss.c.enc.Quota("", res)
}
