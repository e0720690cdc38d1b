package e2e

// IMAP mailbox commands end to end: ENABLE, NAMESPACE, CREATE (nested,
// CREATE-SPECIAL-USE), LIST (patterns, LIST-EXTENDED, LIST-STATUS), LSUB,
// SUBSCRIBE/UNSUBSCRIBE, STATUS, DELETE, RENAME (INBOX included). Every
// change is read back over a second connection.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"posta/internal/postatest"
)

// imapListed parses LIST or LSUB responses into name -> attributes (in
// imapFlagSet form). Each must use "/" as its delimiter; other untagged
// responses fail the test unless they are STATUS, which are returned by
// name (RFC 5819 LIST-STATUS).
func imapListed(t testing.TB, verb string, untagged []string) (boxes map[string]string, status map[string]map[string]uint64, ext map[string]string) {
	t.Helper()
	boxes, status, ext = map[string]string{}, map[string]map[string]uint64{}, map[string]string{}
	var last string
	for _, u := range untagged {
		toks := imapTokens(t, u)
		switch {
		case len(toks) >= 4 && strings.EqualFold(toks[0].Atom, verb) && toks[1].IsList:
			if toks[2].S() != "/" {
				t.Errorf("%s delimiter %q in %q", verb, toks[2].S(), u)
			}
			name := toks[3].S()
			if _, dup := boxes[name]; dup {
				t.Errorf("%s returned %q twice", verb, name)
			}
			boxes[name] = imapFlagSet(toks[1].Atoms())
			var rest []string
			for _, k := range toks[4:] {
				rest = append(rest, k.String())
			}
			ext[name] = strings.Join(rest, " ")
			last = name
		case len(toks) == 3 && toks[0].Atom == "STATUS" && toks[2].IsList:
			if toks[1].S() != last {
				t.Errorf("STATUS for %q does not follow its LIST response (last %q)", toks[1].S(), last)
			}
			st := map[string]uint64{}
			for i := 0; i+1 < len(toks[2].List); i += 2 {
				n, err := strconv.ParseUint(toks[2].List[i+1].Atom, 10, 64)
				if err != nil {
					t.Fatalf("STATUS value in %q", u)
				}
				st[strings.ToUpper(toks[2].List[i].Atom)] = n
			}
			status[toks[1].S()] = st
		default:
			t.Errorf("unexpected response to %s: %q", verb, u)
		}
	}
	return boxes, status, ext
}

// imapWantBoxes normalizes an expected name -> attributes map.
func imapWantBoxes(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = imapFlagSet(strings.Fields(v))
	}
	return out
}

func imapCheckBoxes(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	want = imapWantBoxes(want)
	if !maps.Equal(got, want) {
		var g, w []string
		for _, k := range slices.Sorted(maps.Keys(got)) {
			g = append(g, fmt.Sprintf("%q (%s)", k, got[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			w = append(w, fmt.Sprintf("%q (%s)", k, want[k]))
		}
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, ", "), strings.Join(w, ", "))
	}
}

// imapStatus runs STATUS and parses the one response.
func imapStatus(t testing.TB, r *rawIMAP, mailbox, items string) map[string]uint64 {
	t.Helper()
	u := r.ok("STATUS %s (%s)", imapQuote(mailbox), items)
	if len(u) != 1 {
		t.Fatalf("STATUS %s: %q", mailbox, u)
	}
	_, st, _ := imapListed(t, "LIST", append([]string{fmt.Sprintf("LIST () \"/\" %s", imapQuote(mailbox))}, u...))
	return st[mailbox]
}

// imapAppendRaw appends one message with APPEND (LITERAL+) and returns the
// APPENDUID's UIDVALIDITY and UID.
func imapAppendRaw(t testing.TB, r *rawIMAP, mailbox, flags, msg string) (uidValidity, uid uint32) {
	t.Helper()
	_, tagged := r.cmd("APPEND %s (%s) %s", imapQuote(mailbox), flags, imapLiteral(msg))
	code := imapCodeOf(tagged)
	var v, u uint32
	if _, err := fmt.Sscanf(code, "APPENDUID %d %d", &v, &u); err != nil || !strings.HasPrefix(tagged, "OK ") {
		t.Fatalf("APPEND to %s: %q", mailbox, tagged)
	}
	return v, u
}

// The mailboxes every account starts with: INBOX and the special-use ones.
var imapDefaultBoxes = map[string]string{
	"INBOX":   `\HasNoChildren`,
	"Archive": `\HasNoChildren \Archive`,
	"Drafts":  `\HasNoChildren \Drafts`,
	"Junk":    `\HasNoChildren \Junk`,
	"Sent":    `\HasNoChildren \Sent`,
	"Trash":   `\HasNoChildren \Trash`,
}

func imapBoxesWith(extra map[string]string) map[string]string {
	out := maps.Clone(imapDefaultBoxes)
	maps.Copy(out, extra)
	return out
}

// TestIMAPMailboxes runs its subtests in order on one account: each builds
// on the mailboxes the ones before left (run the whole test, not one
// subtest).
func TestIMAPMailboxes(t *testing.T) {
	in := postatest.Start(t)
	r := rawIMAPLogin(t, in, imapAlice)
	// other is a second connection that reads back what r changed.
	other := dialIMAPClient(t, in, imapAlice, nil)
	listOther := func(t *testing.T, pattern string, opts *imap.ListOptions) map[string]*imap.ListData {
		t.Helper()
		l, err := other.List("", pattern, opts).Collect()
		if err != nil {
			t.Fatalf("LIST %q on the second connection: %v", pattern, err)
		}
		out := map[string]*imap.ListData{}
		for _, d := range l {
			out[d.Mailbox] = d
		}
		return out
	}

	t.Run("ENABLE", func(t *testing.T) {
		defer r.bind(t)()
		e := dialRawIMAP(t, in, "imaps")
		if _, tagged := e.cmd("ENABLE CONDSTORE"); strings.HasPrefix(tagged, "OK") {
			t.Errorf("ENABLE before login: %q", tagged)
		}
		e.login(imapAlice)
		u := e.ok("ENABLE IMAP4rev2 CONDSTORE QRESYNC UTF8=ACCEPT")
		if len(u) != 1 || imapFlagSet(strings.Fields(u[0])) != imapFlagSet(strings.Fields("ENABLED IMAP4rev2 CONDSTORE QRESYNC UTF8=ACCEPT")) {
			t.Errorf("ENABLE: %q", u)
		}
		// RFC 5161 3.1 / RFC 9051 6.3.1: unknown names are ignored, already
		// enabled ones not listed again, and ENABLED is sent anyway.
		if u := e.ok("ENABLE CONDSTORE X-UNKNOWN-EXTENSION"); !slices.Equal(u, []string{"ENABLED"}) {
			t.Errorf("second ENABLE: %q, want [ENABLED]", u)
		}
		// UTF8=ACCEPT (RFC 6855 3): names in UTF-8; a session without it
		// sees modified UTF-7 (RFC 3501 5.1.3).
		e.ok(`CREATE "Bücher/Übersicht"`)
		boxes, _, _ := imapListed(t, "LIST", e.ok(`LIST "" "B*"`))
		imapCheckBoxes(t, "UTF-8 LIST", boxes, map[string]string{"Bücher": `\HasChildren`, "Bücher/Übersicht": `\HasNoChildren`})
		boxes, _, _ = imapListed(t, "LIST", r.ok(`LIST "" "B*"`))
		imapCheckBoxes(t, "modified UTF-7 LIST", boxes, map[string]string{"B&APw-cher": `\HasChildren`, "B&APw-cher/&ANw-bersicht": `\HasNoChildren`})
		r.ok(`STATUS "B&APw-cher/&ANw-bersicht" (MESSAGES)`)
		e.ok(`DELETE "Bücher/Übersicht"`)
		r.ok(`DELETE "B&APw-cher"`)
		// CONDSTORE is on: SELECT reports HIGHESTMODSEQ (RFC 7162 3.1.2.1).
		u = e.ok("SELECT INBOX")
		if !slices.ContainsFunc(u, func(s string) bool { return strings.HasPrefix(s, "OK [HIGHESTMODSEQ ") }) {
			t.Errorf("SELECT after ENABLE CONDSTORE: %q", u)
		}

		// imapclient's ENABLE.
		c := dialIMAPClient(t, in, imapAlice, nil)
		d, err := c.Enable(imap.CapIMAP4rev2, imap.CapUTF8Accept).Wait()
		if err != nil || !d.Caps.Has(imap.CapIMAP4rev2) || !d.Caps.Has(imap.CapUTF8Accept) || len(d.Caps) != 2 {
			t.Errorf("imapclient ENABLE: %+v %v", d, err)
		}
	})

	t.Run("NAMESPACE", func(t *testing.T) {
		defer r.bind(t)()
		// RFC 2342 5 / RFC 9051 6.3.10: one personal namespace, "/".
		if u := r.ok("NAMESPACE"); !slices.Equal(u, []string{`NAMESPACE (("" "/")) NIL NIL`}) {
			t.Errorf("NAMESPACE: %q", u)
		}
		ns, err := other.Namespace().Wait()
		if err != nil || len(ns.Personal) != 1 || ns.Personal[0] != (imap.NamespaceDescriptor{Prefix: "", Delim: '/'}) ||
			ns.Other != nil || ns.Shared != nil {
			t.Errorf("imapclient NAMESPACE: %+v %v", ns, err)
		}
	})

	t.Run("CREATE", func(t *testing.T) {
		defer r.bind(t)()
		// RFC 9051 6.3.4: superiors are created as needed.
		if u := r.ok("CREATE Work/Projects/2024"); len(u) != 0 {
			t.Errorf("CREATE: %q", u)
		}
		// A trailing separator declares the intent to have children; the
		// name is created without it.
		r.ok("CREATE Travel/")
		r.ok(`CREATE "Receipts 2024" (USE (\Archive))`) // RFC 6154 3
		if err := other.Create("Starred", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrFlagged}}).Wait(); err != nil {
			t.Errorf("imapclient CREATE-SPECIAL-USE: %v", err)
		}
		for _, c := range []struct{ cmd, code string }{
			{"CREATE Work", "ALREADYEXISTS"},
			{"CREATE Work/Projects/", "ALREADYEXISTS"},
			{`CREATE Nope (USE (\Bogus))`, "USEATTR"}, // RFC 6154 3
		} {
			if _, tagged := r.cmd("%s", c.cmd); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != c.code {
				t.Errorf("%s: %q, want NO [%s]", c.cmd, tagged, c.code)
			}
		}
		// RFC 9051 6.3.4: "It is an error to attempt to create INBOX".
		if _, tagged := r.cmd("CREATE inbox"); !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("CREATE inbox: %q", tagged)
		}
		want := imapBoxesWith(map[string]string{
			"Work": `\HasChildren`, "Work/Projects": `\HasChildren`, "Work/Projects/2024": `\HasNoChildren`,
			"Travel": `\HasNoChildren`, "Receipts 2024": `\HasNoChildren \Archive`, "Starred": `\HasNoChildren \Flagged`,
		})
		boxes, _, _ := imapListed(t, "LIST", r.ok(`LIST "" *`))
		imapCheckBoxes(t, `LIST "" *`, boxes, want)
		// The second connection sees the same, special use included.
		seen := listOther(t, "*", &imap.ListOptions{ReturnSpecialUse: true})
		if len(seen) != len(want) || seen["Receipts 2024"] == nil || !slices.Contains(seen["Receipts 2024"].Attrs, imap.MailboxAttrArchive) ||
			seen["Starred"] == nil || !slices.Contains(seen["Starred"].Attrs, imap.MailboxAttrFlagged) || seen["Nope"] != nil {
			t.Errorf("second connection lists %v", slices.Sorted(maps.Keys(seen)))
		}
	})

	t.Run("LIST", func(t *testing.T) {
		defer r.bind(t)()
		r.ok("SUBSCRIBE Work/Projects")
		imapAppendRaw(t, r, "Travel", `\Seen`, "Subject: a\r\n\r\nseen\r\n")
		imapAppendRaw(t, r, "Travel", "", "Subject: b\r\n\r\nunseen\r\n")
		all := imapBoxesWith(map[string]string{
			"Work": `\HasChildren`, "Work/Projects": `\HasChildren`, "Work/Projects/2024": `\HasNoChildren`,
			"Travel": `\HasNoChildren`, "Receipts 2024": `\HasNoChildren \Archive`, "Starred": `\HasNoChildren \Flagged`,
		})
		pick := func(names ...string) map[string]string {
			out := map[string]string{}
			for _, n := range names {
				out[n] = all[n]
			}
			return out
		}
		for _, c := range []struct {
			cmd  string
			want map[string]string
		}{
			{`LIST "" %`, pick("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash", "Work", "Travel", "Receipts 2024", "Starred")},
			{`LIST "" Work/%`, pick("Work/Projects")},
			{`LIST "" Work/*`, pick("Work/Projects", "Work/Projects/2024")},
			{`LIST Work/ %`, pick("Work/Projects")}, // reference + pattern
			{`LIST "" inbox`, pick("INBOX")},        // INBOX in any case
			{`LIST "" *ork*`, pick("Work", "Work/Projects", "Work/Projects/2024")},
			{`LIST "" %/%`, pick("Work/Projects")},
			{`LIST "" (INBOX Work/*)`, pick("INBOX", "Work/Projects", "Work/Projects/2024")}, // RFC 5258 multiple patterns
			{`LIST "" Nothing*`, map[string]string{}},
			{`LIST "" ""`, map[string]string{"": `\Noselect`}}, // RFC 9051 6.3.9: the delimiter
			// RFC 6154 2 / RFC 5258 3.1.
			{`LIST (SPECIAL-USE) "" *`, pick("Archive", "Drafts", "Junk", "Sent", "Trash", "Receipts 2024", "Starred")},
			{`LIST (SUBSCRIBED) "" *`, map[string]string{
				"INBOX": `\HasNoChildren \Subscribed`, "Archive": `\HasNoChildren \Archive \Subscribed`, "Drafts": `\HasNoChildren \Drafts \Subscribed`,
				"Junk": `\HasNoChildren \Junk \Subscribed`, "Sent": `\HasNoChildren \Sent \Subscribed`, "Trash": `\HasNoChildren \Trash \Subscribed`,
				"Work/Projects": `\HasChildren \Subscribed`,
			}},
			{`LIST "" Work* RETURN (SUBSCRIBED CHILDREN)`, map[string]string{
				"Work": `\HasChildren`, "Work/Projects": `\HasChildren \Subscribed`, "Work/Projects/2024": `\HasNoChildren`,
			}},
		} {
			u, tagged := r.cmd("%s", c.cmd)
			if !strings.HasPrefix(tagged, "OK") {
				t.Errorf("%s: %q", c.cmd, tagged)
				continue
			}
			boxes, _, _ := imapListed(t, "LIST", u)
			imapCheckBoxes(t, c.cmd, boxes, c.want)
		}

		// LIST-STATUS (RFC 5819): a STATUS response right after each LIST.
		u := r.ok(`LIST "" (Travel INBOX Work) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))`)
		boxes, status, _ := imapListed(t, "LIST", u)
		imapCheckBoxes(t, "LIST RETURN STATUS", boxes, pick("Travel", "INBOX", "Work"))
		if !maps.Equal(status["Travel"], map[string]uint64{"MESSAGES": 2, "UNSEEN": 1}) ||
			!maps.Equal(status["INBOX"], map[string]uint64{"MESSAGES": 0, "UNSEEN": 0}) || len(status) != 3 {
			t.Errorf("LIST-STATUS: %v", status)
		}
		l, err := other.List("", "Travel", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
		if err != nil || len(l) != 1 || l[0].Status == nil || *l[0].Status.NumMessages != 2 || *l[0].Status.NumUnseen != 1 {
			t.Errorf("imapclient LIST RETURN STATUS: %+v %v", l, err)
		}

		// RFC 5258 3.1: RECURSIVEMATCH returns a parent that does not match
		// the selection but has a child that does, with CHILDINFO.
		u, tagged := r.cmd(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %%`)
		if !strings.HasPrefix(tagged, "OK") {
			t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH): %q", tagged)
		}
		boxes, _, ext := imapListed(t, "LIST", u)
		imapCheckBoxes(t, `LIST (SUBSCRIBED RECURSIVEMATCH) "" % (RFC 5258 3.1, 5 example 8)`, boxes, map[string]string{
			"INBOX": `\HasNoChildren \Subscribed`, "Archive": `\HasNoChildren \Archive \Subscribed`, "Drafts": `\HasNoChildren \Drafts \Subscribed`,
			"Junk": `\HasNoChildren \Junk \Subscribed`, "Sent": `\HasNoChildren \Sent \Subscribed`, "Trash": `\HasNoChildren \Trash \Subscribed`,
			"Work": `\HasChildren`,
		})
		if strings.ToUpper(ext["Work"]) != `("CHILDINFO" ("SUBSCRIBED"))` {
			t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH): Work's extended data %q, want ("CHILDINFO" ("SUBSCRIBED"))`, ext["Work"])
		}
		// RFC 5258 3.1: RECURSIVEMATCH alone is a BAD.
		if _, tagged := r.cmd(`LIST (RECURSIVEMATCH) "" *`); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("LIST (RECURSIVEMATCH) alone: %q, want BAD (RFC 5258 3.1)", tagged)
		}
		r.ok("UNSUBSCRIBE Work/Projects")
	})

	t.Run("SUBSCRIBE and LSUB", func(t *testing.T) {
		defer r.bind(t)()
		r.ok("SUBSCRIBE Work/Projects/2024")
		r.ok("SUBSCRIBE Work/Projects/2024") // RFC 9051 6.3.7: OK if already subscribed
		r.ok("UNSUBSCRIBE Travel")           // RFC 9051 6.3.8: OK if not subscribed
		subscribed := map[string]string{
			"INBOX": `\HasNoChildren`, "Archive": `\HasNoChildren`, "Drafts": `\HasNoChildren`,
			"Junk": `\HasNoChildren`, "Sent": `\HasNoChildren`, "Trash": `\HasNoChildren`, "Work/Projects/2024": `\HasNoChildren`,
		}
		boxes, _, _ := imapListed(t, "LSUB", r.ok(`LSUB "" *`))
		imapCheckBoxes(t, `LSUB "" *`, boxes, subscribed)
		seen := listOther(t, "*", &imap.ListOptions{SelectSubscribed: true})
		if seen["Work/Projects/2024"] == nil || !slices.Contains(seen["Work/Projects/2024"].Attrs, imap.MailboxAttrSubscribed) || len(seen) != 7 {
			t.Errorf("second connection: subscribed %v", slices.Sorted(maps.Keys(seen)))
		}
		// RFC 3501 6.3.9: "if "foo/bar" is subscribed but "foo" is not, a
		// "%" wildcard to LSUB must return foo, not foo/bar, and it MUST be
		// flagged with the \Noselect attribute."
		boxes, _, _ = imapListed(t, "LSUB", r.ok(`LSUB "" Work/%%`))
		imapCheckBoxes(t, `LSUB "" Work/% with only Work/Projects/2024 subscribed (RFC 3501 6.3.9)`, boxes,
			map[string]string{"Work/Projects": `\Noselect`})

		// A subscription outlives its mailbox (RFC 3501 6.3.9: MUST NOT
		// remove it; RFC 9051 6.3.7: SHOULD NOT); LIST (SUBSCRIBED) then
		// marks it \NonExistent (RFC 5258 3, 3.1).
		r.ok("CREATE Ephemeral")
		r.ok("SUBSCRIBE Ephemeral")
		r.ok("DELETE Ephemeral")
		boxes, _, _ = imapListed(t, "LIST", r.ok(`LIST (SUBSCRIBED) "" Ephemeral`))
		imapCheckBoxes(t, "LIST (SUBSCRIBED) of a deleted subscribed mailbox (RFC 3501 6.3.9, RFC 5258 3.1)", boxes,
			map[string]string{"Ephemeral": `\NonExistent \Subscribed`})
		// RFC 9051 6.3.8: UNSUBSCRIBE is OK for a name not subscribed, and
		// removes a subscription whose mailbox is gone.
		for _, name := range []string{"Ephemeral", "Ghost"} {
			if _, tagged := r.cmd("UNSUBSCRIBE %s", name); !strings.HasPrefix(tagged, "OK") {
				t.Errorf("UNSUBSCRIBE %s (no such mailbox): %q, want OK (RFC 9051 6.3.8)", name, tagged)
			}
		}

		r.ok("UNSUBSCRIBE Work/Projects/2024")
		boxes, _, _ = imapListed(t, "LSUB", r.ok(`LSUB "" Work*`))
		imapCheckBoxes(t, "LSUB after UNSUBSCRIBE", boxes, map[string]string{})
		if seen := listOther(t, "Work*", &imap.ListOptions{SelectSubscribed: true}); len(seen) != 0 {
			t.Errorf("second connection after UNSUBSCRIBE: %v", slices.Sorted(maps.Keys(seen)))
		}
	})

	t.Run("STATUS", func(t *testing.T) {
		defer r.bind(t)()
		r.ok("CREATE Stat")
		m1, m2, m3 := "Subject: one\r\n\r\nfirst\r\n", "Subject: two\r\n\r\nsecond, deleted\r\n", "Subject: three\r\n\r\nthird\r\n"
		v, _ := imapAppendRaw(t, r, "Stat", `\Seen`, m1)
		imapAppendRaw(t, r, "Stat", `\Deleted`, m2)
		imapAppendRaw(t, r, "Stat", "", m3)
		st := imapStatus(t, r, "Stat", "MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ DELETED DELETED-STORAGE RECENT")
		// HIGHESTMODSEQ as SELECT (CONDSTORE) reports it, on a second
		// connection.
		sel, err := other.Select("Stat", &imap.SelectOptions{CondStore: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{"MESSAGES": 3, "UIDNEXT": 4, "UIDVALIDITY": uint64(v), "UNSEEN": 2,
			"SIZE": uint64(len(m1) + len(m2) + len(m3)), "HIGHESTMODSEQ": sel.HighestModSeq, "DELETED": 1, "DELETED-STORAGE": 1, "RECENT": 0}
		if !maps.Equal(st, want) || sel.HighestModSeq == 0 || sel.UIDValidity != v {
			t.Errorf("STATUS Stat:\n got %v\nwant %v", st, want)
		}
		sd, err := other.Status("Stat", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true,
			NumDeleted: true, Size: true, HighestModSeq: true}).Wait()
		if err != nil || *sd.NumMessages != 3 || sd.UIDNext != 4 || sd.UIDValidity != v || *sd.NumUnseen != 2 || *sd.NumDeleted != 1 ||
			*sd.Size != int64(want["SIZE"]) || sd.HighestModSeq != sel.HighestModSeq {
			t.Errorf("imapclient STATUS: %+v %v", sd, err)
		}
		if err := other.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
		// A flag change moves HIGHESTMODSEQ and UNSEEN.
		r.ok("SELECT Stat")
		r.ok(`STORE 3 +FLAGS.SILENT (\Seen)`)
		st2 := imapStatus(t, r, "Stat", "UNSEEN HIGHESTMODSEQ")
		if st2["UNSEEN"] != 1 || st2["HIGHESTMODSEQ"] <= st["HIGHESTMODSEQ"] {
			t.Errorf("STATUS after STORE: %v (before %v)", st2, st)
		}
		r.ok("UNSELECT")
		if _, tagged := r.cmd("STATUS Ghost (MESSAGES)"); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "NONEXISTENT" {
			t.Errorf("STATUS of a missing mailbox: %q", tagged)
		}
	})

	t.Run("DELETE", func(t *testing.T) {
		defer r.bind(t)()
		imapAppendRaw(t, r, "Work/Projects/2024", "", "Subject: x\r\n\r\nto be deleted\r\n")
		if u := r.ok("DELETE Work/Projects/2024"); len(u) != 0 {
			t.Errorf("DELETE: %q", u)
		}
		if _, err := other.Status("Work/Projects/2024", &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
			t.Error("deleted mailbox still has a STATUS on the second connection")
		}
		// RFC 9051 6.3.5: a name with inferiors and no \Noselect may be
		// refused with NO [HASCHILDREN] (what Posta does); the inferiors
		// stay either way.
		if _, tagged := r.cmd("DELETE Work"); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "HASCHILDREN" {
			t.Errorf("DELETE Work (has Work/Projects): %q", tagged)
		}
		boxes, _, _ := imapListed(t, "LIST", r.ok(`LIST "" Work*`))
		imapCheckBoxes(t, "LIST after DELETE", boxes, map[string]string{"Work": `\HasChildren`, "Work/Projects": `\HasNoChildren`})
		for _, c := range []struct{ cmd, code string }{{"DELETE Ghost", "NONEXISTENT"}, {"DELETE INBOX", ""}, {"DELETE inbox", ""}} {
			if _, tagged := r.cmd("%s", c.cmd); !strings.HasPrefix(tagged, "NO ") || c.code != "" && imapCodeOf(tagged) != c.code {
				t.Errorf("%s: %q", c.cmd, tagged)
			}
		}
		// RFC 9051 6.3.5: a new mailbox of the same name does not reuse
		// UIDs, unless its UIDVALIDITY differs.
		r.ok("CREATE Tmp")
		v, _ := imapAppendRaw(t, r, "Tmp", "", "Subject: 1\r\n\r\n1\r\n")
		_, last := imapAppendRaw(t, r, "Tmp", "", "Subject: 2\r\n\r\n2\r\n")
		r.ok("DELETE Tmp")
		r.ok("CREATE Tmp")
		st := imapStatus(t, r, "Tmp", "MESSAGES UIDVALIDITY UIDNEXT")
		if st["MESSAGES"] != 0 || st["UIDVALIDITY"] == uint64(v) && st["UIDNEXT"] <= uint64(last) {
			t.Errorf("recreated mailbox: %v, old UIDVALIDITY %d, last UID %d", st, v, last)
		}
	})

	t.Run("RENAME", func(t *testing.T) {
		defer r.bind(t)()
		r.ok("CREATE Trip/Day1")
		imapAppendRaw(t, r, "Trip", `\Flagged`, "Subject: trip\r\n\r\nplans\r\n")
		// RFC 9051 6.3.6: inferiors are renamed too.
		if u := r.ok("RENAME Trip Voyage"); len(u) != 0 {
			t.Errorf("RENAME: %q", u)
		}
		boxes, _, _ := imapListed(t, "LIST", r.ok(`LIST "" *`))
		if boxes["Voyage"] == "" || boxes["Voyage/Day1"] == "" || boxes["Trip"] != "" || boxes["Trip/Day1"] != "" {
			t.Errorf("after RENAME Trip Voyage: %v", slices.Sorted(maps.Keys(boxes)))
		}
		if st := imapStatus(t, r, "Voyage", "MESSAGES"); st["MESSAGES"] != 1 {
			t.Errorf("STATUS Voyage: %v", st)
		}
		// Superiors of the new name are created (SHOULD).
		r.ok("RENAME Voyage/Day1 Far/Away/Day1")
		boxes, _, _ = imapListed(t, "LIST", r.ok(`LIST "" Far*`))
		imapCheckBoxes(t, "LIST after RENAME into a new hierarchy", boxes,
			map[string]string{"Far": `\HasChildren`, "Far/Away": `\HasChildren`, "Far/Away/Day1": `\HasNoChildren`})
		for _, c := range []struct{ cmd, code string }{
			{"RENAME Voyage Travel", "ALREADYEXISTS"}, {"RENAME Ghost Spirit", "NONEXISTENT"}, {"RENAME Voyage INBOX", ""},
		} {
			if _, tagged := r.cmd("%s", c.cmd); !strings.HasPrefix(tagged, "NO ") || c.code != "" && imapCodeOf(tagged) != c.code {
				t.Errorf("%s: %q", c.cmd, tagged)
			}
		}
		seen := listOther(t, "*", nil)
		if seen["Voyage"] == nil || seen["Trip"] != nil || seen["Far/Away/Day1"] == nil {
			t.Errorf("second connection after RENAME: %v", slices.Sorted(maps.Keys(seen)))
		}
	})

	t.Run("RENAME INBOX", func(t *testing.T) {
		defer r.bind(t)()
		m1, m2 := "Subject: in 1\r\n\r\nfirst in INBOX\r\n", "Subject: in 2\r\n\r\nsecond in INBOX\r\n"
		v, _ := imapAppendRaw(t, r, "INBOX", `\Seen`, m1)
		_, last := imapAppendRaw(t, r, "INBOX", "", m2)
		r.ok("CREATE INBOX/Sub")
		// A session with INBOX selected meanwhile.
		var expunged []uint32
		watcher := dialIMAPClient(t, in, imapAlice, &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) { expunged = append(expunged, seq) },
		})
		if sel, err := watcher.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
			t.Fatalf("SELECT INBOX: %+v %v", sel, err)
		}

		// RFC 9051 6.3.6: the messages move to the new name, INBOX stays,
		// empty; INBOX's inferiors are unaffected.
		r.ok(`RENAME INBOX "Old Inbox"`)
		if st := imapStatus(t, r, "INBOX", "MESSAGES"); st["MESSAGES"] != 0 {
			t.Errorf("INBOX after RENAME: %v", st)
		}
		if st := imapStatus(t, r, "Old Inbox", "MESSAGES UNSEEN"); st["MESSAGES"] != 2 || st["UNSEEN"] != 1 {
			t.Errorf("Old Inbox: %v", st)
		}
		boxes, _, _ := imapListed(t, "LIST", r.ok(`LIST "" (INBOX* "Old Inbox")`))
		imapCheckBoxes(t, "LIST after RENAME INBOX", boxes, map[string]string{
			"INBOX": `\HasChildren`, "INBOX/Sub": `\HasNoChildren`, "Old Inbox": `\HasNoChildren`,
		})
		// The moved messages, byte for byte, flags kept, on a second
		// connection.
		if _, err := other.Select("Old Inbox", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		body := &imap.FetchItemBodySection{Peek: true}
		msgs, err := other.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil || len(msgs) != 2 || string(msgs[0].FindBodySection(body)) != m1 || string(msgs[1].FindBodySection(body)) != m2 ||
			imapClientFlags(msgs[0].Flags) != `\seen` || len(msgs[1].Flags) != 0 {
			t.Errorf("messages of Old Inbox: %v %v", msgs, err)
		}
		other.Unselect().Wait()
		// The new INBOX does not reuse the old UIDs under the same
		// UIDVALIDITY (RFC 9051 6.3.6).
		v2, uid := imapAppendRaw(t, r, "INBOX", "", "Subject: new\r\n\r\nnew INBOX\r\n")
		if v2 == v && uid <= last {
			t.Errorf("new INBOX reuses UID %d under UIDVALIDITY %d (old last UID %d)", uid, v, last)
		}
		// The session that had INBOX selected learns that both messages
		// left it (and of the new one).
		if err := watcher.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if n := watcher.Mailbox().NumMessages; len(expunged) != 2 || n != 1 {
			t.Errorf("session with INBOX selected during RENAME INBOX: EXPUNGE %v, %d messages; want 2 EXPUNGEs and 1 message", expunged, n)
		}
	})
}
