package e2e

// Several IMAP sessions on one mailbox: flag changes and expunges of one
// reach the others (EXPUNGE, or VANISHED under QRESYNC) with sequence
// numbers kept right; IDLE woken by an SMTP delivery; CONDSTORE and QRESYNC
// resynchronisation; a POP3 deletion seen over IMAP.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"posta/internal/postatest"
)

// imapUpdates drops the "0 RECENT" an IMAP4rev1 session gets with EXISTS
// (RFC 3501 7.3.2) and returns the rest.
func imapUpdates(u []string) []string {
	return slices.DeleteFunc(slices.Clone(u), func(s string) bool { return strings.HasSuffix(s, " RECENT") })
}

// imapModSeq reads "MODSEQ (n)".
func imapModSeq(t testing.TB, tok imapTok) uint64 {
	t.Helper()
	if !tok.IsList || len(tok.List) != 1 {
		t.Fatalf("MODSEQ %s", tok)
	}
	n, err := strconv.ParseUint(tok.List[0].Atom, 10, 64)
	if err != nil {
		t.Fatalf("MODSEQ %s", tok)
	}
	return n
}

// imapSelectCode returns the number in an untagged OK [code n] of SELECT.
func imapSelectCode(t testing.TB, untagged []string, code string) uint64 {
	t.Helper()
	for _, u := range untagged {
		if c := imapCodeOf(u); strings.HasPrefix(u, "OK ") && strings.HasPrefix(c, code+" ") {
			n, err := strconv.ParseUint(strings.TrimPrefix(c, code+" "), 10, 64)
			if err != nil {
				t.Fatalf("%q", u)
			}
			return n
		}
	}
	t.Fatalf("no OK [%s] in %q", code, untagged)
	return 0
}

// TestIMAPSessions: four raw sessions (one making changes; IMAP4rev1,
// QRESYNC and IMAP4rev2 ones watching) and an imapclient one on the same
// mailbox; "expunge" builds on "flags".
func TestIMAPSessions(t *testing.T) {
	in := postatest.Start(t)
	c := dialIMAPClient(t, in, imapAlice, nil)
	_, uids := imapFill(t, c, "Shared")
	a := rawIMAPLogin(t, in, imapAlice)  // makes the changes
	b := rawIMAPLogin(t, in, imapAlice)  // IMAP4rev1, no extensions
	q := rawIMAPLogin(t, in, imapAlice)  // QRESYNC
	v2 := rawIMAPLogin(t, in, imapAlice) // IMAP4rev2
	q.ok("ENABLE QRESYNC")
	v2.ok("ENABLE IMAP4rev2")
	for _, s := range []*rawIMAP{a, b, q, v2} {
		s.ok("SELECT Shared")
	}
	// imapclient runs the FETCH handler in a goroutine of its own.
	fetched := make(chan string, 8)
	cli := dialIMAPClient(t, in, imapAlice, &imapclient.UnilateralDataHandler{
		Fetch: func(m *imapclient.FetchMessageData) {
			buf, err := m.Collect()
			if err == nil {
				fetched <- fmt.Sprintf("%d %s", buf.SeqNum, imapClientFlags(buf.Flags))
			}
		},
	})
	if _, err := cli.Select("Shared", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	t.Run("flags", func(t *testing.T) {
		defer a.bind(t)()
		defer b.bind(t)()
		defer q.bind(t)()
		defer v2.bind(t)()
		fs, _ := imapFetches(t, a.ok(`STORE 2 +FLAGS (\Flagged)`))
		if len(fs) != 1 || imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != imapFlagSet([]string{`\Flagged`, "$Important"}) {
			t.Errorf("STORE: %+v", fs)
		}
		// RFC 9051 5.2, 7.5.2: the others learn at their next command.
		if u := b.ok("NOOP"); !slices.Equal(u, []string{`2 FETCH (FLAGS (\Flagged $Important))`}) &&
			!slices.Equal(u, []string{`2 FETCH (FLAGS ($Important \Flagged))`}) {
			t.Errorf("IMAP4rev1 session after another's STORE: %q", u)
		}
		// Under QRESYNC (RFC 7162 3.2.4): UID and MODSEQ with every FETCH.
		fs, rest := imapFetches(t, q.ok("NOOP"))
		if len(rest) != 0 || len(fs) != 1 || fs[0].Seq != 2 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[1]) ||
			imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != imapFlagSet([]string{`\Flagged`, "$Important"}) || imapModSeq(t, fs[0].Items["MODSEQ"]) == 0 {
			t.Errorf("QRESYNC session after another's STORE: %+v %q", fs, rest)
		}
		// IMAP4rev2 (RFC 9051 7.5.2): an unsolicited FETCH MUST include UID.
		fs, rest = imapFetches(t, v2.ok("NOOP"))
		if len(rest) != 0 || len(fs) != 1 || fs[0].Seq != 2 || imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != imapFlagSet([]string{`\Flagged`, "$Important"}) {
			t.Errorf("IMAP4rev2 session after another's STORE: %+v %q", fs, rest)
		} else if fs[0].Items["UID"].Atom != fmt.Sprint(uids[1]) {
			t.Errorf("IMAP4rev2 session: unsolicited FETCH without UID %d (RFC 9051 7.5.2): %+v", uids[1], fs[0].Items)
		}
		// imapclient's handler sees it too.
		if err := cli.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-fetched:
			if f != "2 "+imapFlagSet([]string{`\Flagged`, "$Important"}) {
				t.Errorf("imapclient after another's STORE: %q", f)
			}
		case <-time.After(5 * time.Second):
			t.Error("imapclient: no unsolicited FETCH after another's STORE")
		}
		// .SILENT changes reach the others all the same (RFC 9051 6.4.6).
		a.ok(`STORE 4 +FLAGS.SILENT ($Seen4)`)
		// (A new keyword may first be announced with FLAGS, RFC 9051 7.3.5.)
		u := slices.DeleteFunc(b.ok("NOOP"), func(s string) bool { return strings.HasPrefix(s, "FLAGS (") })
		if !slices.Equal(u, []string{`4 FETCH (FLAGS ($Seen4))`}) {
			t.Errorf("after another's STORE .SILENT: %q", u)
		}
		q.ok("NOOP")
		v2.ok("NOOP")
	})

	t.Run("expunge", func(t *testing.T) {
		defer a.bind(t)()
		defer b.bind(t)()
		defer q.bind(t)()
		defer v2.bind(t)()
		a.ok(`STORE 3 +FLAGS.SILENT (\Deleted)`)
		if u := a.ok("EXPUNGE"); !slices.Equal(u, []string{"3 EXPUNGE"}) {
			t.Fatalf("EXPUNGE: %q", u)
		}
		// During FETCH by sequence number no EXPUNGE may be sent (RFC 9051
		// 7.5.1), so the numbers keep their old meaning: 4 is still UID 4.
		// A STORE on the expunged message: OK or NO (RFC 2180 4.2), no BAD.
		if _, tagged := b.cmd(`STORE 3 -FLAGS.SILENT (\Deleted)`); strings.HasPrefix(tagged, "BAD") {
			t.Errorf("STORE on a message expunged by another session: %q", tagged)
		}
		fs, rest := imapFetches(t, b.ok("FETCH 1:5 (UID)"))
		if len(rest) != 0 {
			t.Errorf("FETCH after another's EXPUNGE: %q (no EXPUNGE allowed here)", rest)
		}
		for _, f := range fs {
			if f.Items["UID"].Atom != fmt.Sprint(uids[f.Seq-1]) {
				t.Errorf("FETCH %d before the EXPUNGE was announced: UID %s, want %d", f.Seq, f.Items["UID"].Atom, uids[f.Seq-1])
			}
		}
		if n := len(fs); n != 4 && n != 5 {
			t.Errorf("FETCH 1:5: %d responses", n)
		}
		// NOOP announces it; afterwards 3 is the old 4.
		if u := b.ok("NOOP"); !slices.Equal(u, []string{"3 EXPUNGE"}) {
			t.Errorf("NOOP after another's EXPUNGE: %q", u)
		}
		imapCheckUIDs(t, b, []imap.UID{uids[0], uids[1], uids[3], uids[4]})
		// QRESYNC: VANISHED with the UID instead (RFC 7162 3.2.10).
		if u := q.ok("NOOP"); !slices.Equal(u, []string{fmt.Sprintf("VANISHED %d", uids[2])}) {
			t.Errorf("QRESYNC session after another's EXPUNGE: %q", u)
		}
		if u := v2.ok("NOOP"); !slices.Equal(u, []string{"3 EXPUNGE"}) {
			t.Errorf("IMAP4rev2 session after another's EXPUNGE: %q", u)
		}
		// A new message and an expunge together: EXPUNGE before EXISTS so
		// both counts are right.
		imapAppendRaw(t, a, "Shared", "", "Subject: late\r\n\r\nlate arrival\r\n")
		a.ok("NOOP")
		a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		a.ok("EXPUNGE")
		if u := imapUpdates(b.ok("NOOP")); !slices.Equal(u, []string{"1 EXPUNGE", "4 EXISTS"}) && !slices.Equal(u, []string{"5 EXISTS", "1 EXPUNGE"}) {
			t.Errorf("NOOP after another's APPEND and EXPUNGE: %q", u)
		}
		imapCheckUIDs(t, b, []imap.UID{uids[1], uids[3], uids[4], uids[4] + 1})
		// The imapclient session agrees.
		if err := cli.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if n := cli.Mailbox().NumMessages; n != 4 {
			t.Errorf("imapclient: %d messages, want 4", n)
		}
		q.ok("NOOP")
		v2.ok("NOOP")
	})

	t.Run("IDLE woken by SMTP", func(t *testing.T) {
		exists := make(chan uint32, 8)
		bob := dialIMAPClient(t, in, imapBob, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		})
		sel, err := bob.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		idle, err := bob.Idle()
		if err != nil {
			t.Fatal(err)
		}
		body := "From: someone@remote.test\r\nTo: bob@example.test\r\nSubject: wake up\r\n\r\nIDLE should see this.\r\n"
		msgs := imapDeliver(t, in, imapBob, body, int(sel.NumMessages)+1)
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case n := <-exists:
				if n == sel.NumMessages+1 {
					break wait
				}
			case <-deadline:
				t.Fatalf("no EXISTS %d within 5s of the delivery", sel.NumMessages+1)
			}
		}
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
		section := &imap.FetchItemBodySection{Peek: true}
		got, err := bob.Fetch(imap.SeqSetNum(sel.NumMessages+1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(got) != 1 || string(got[0].FindBodySection(section)) != string(msgs[len(msgs)-1]) ||
			!strings.HasSuffix(string(msgs[len(msgs)-1]), body) {
			t.Errorf("the delivered message: %v", err)
		}
	})
}

// TestIMAPCondstoreQresync: session A remembers UIDVALIDITY and
// HIGHESTMODSEQ and leaves, session B changes flags and expunges, and A's
// successors resynchronise (RFC 7162).
func TestIMAPCondstoreQresync(t *testing.T) {
	in := postatest.Start(t)
	c := dialIMAPClient(t, in, imapAlice, nil)
	v, uids := imapFill(t, c, "Sync")

	// Session A remembers UIDVALIDITY and HIGHESTMODSEQ, and leaves.
	a := rawIMAPLogin(t, in, imapAlice)
	a.ok("ENABLE QRESYNC")
	u := a.ok("SELECT Sync")
	if got := imapSelectCode(t, u, "UIDVALIDITY"); got != uint64(v) {
		t.Fatalf("UIDVALIDITY %d, want %d", got, v)
	}
	m0 := imapSelectCode(t, u, "HIGHESTMODSEQ")
	a.ok("LOGOUT")

	// Session B changes flags and expunges.
	b := rawIMAPLogin(t, in, imapAlice)
	b.ok("ENABLE CONDSTORE")
	b.ok("SELECT Sync")
	fs, _ := imapFetches(t, b.ok(`UID STORE %d +FLAGS (\Answered)`, uids[1]))
	if len(fs) != 1 || imapModSeq(t, fs[0].Items["MODSEQ"]) <= m0 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[1]) {
		t.Fatalf("STORE under CONDSTORE: %+v (HIGHESTMODSEQ was %d)", fs, m0)
	}
	b.ok(`UID STORE %d,%d +FLAGS.SILENT (\Deleted)`, uids[3], uids[4])
	u, tagged := b.cmd("UID EXPUNGE %d", uids[3])
	// RFC 7162 3.1.11 / 3.2.9 (with CONDSTORE enabled): HIGHESTMODSEQ in
	// the tagged OK.
	if !slices.Equal(u, []string{"4 EXPUNGE"}) || !strings.HasPrefix(imapCodeOf(tagged), "HIGHESTMODSEQ ") {
		t.Errorf("UID EXPUNGE under CONDSTORE: %q %q", u, tagged)
	}
	// What changed since m0: UID 2 (\Answered), UID 5 (\Deleted); UID 4 is
	// gone.
	changed := map[string]string{
		fmt.Sprint(uids[1]): imapFlagSet([]string{"$Important", `\Answered`}),
		fmt.Sprint(uids[4]): imapFlagSet([]string{`\Answered`, `\Seen`, `\Deleted`}),
	}
	seqs := map[string]uint32{fmt.Sprint(uids[1]): 2, fmt.Sprint(uids[4]): 4}
	// checkChanged checks FETCH responses for exactly the changed messages
	// (by UID; a FETCH without UID, by sequence number).
	checkChanged := func(what string, fs []imapFetchResp, seqs map[string]uint32) {
		t.Helper()
		got := map[string]string{}
		for _, f := range fs {
			uid := f.Items["UID"].Atom
			if uid == "" {
				for u, n := range seqs {
					if n == f.Seq {
						uid = u
					}
				}
			}
			got[uid] = imapFlagSet(f.Items["FLAGS"].Atoms())
			if imapModSeq(t, f.Items["MODSEQ"]) <= m0 {
				t.Errorf("%s: UID %s MODSEQ %s not above %d", what, uid, f.Items["MODSEQ"], m0)
			}
			if seqs != nil && f.Seq != seqs[uid] {
				t.Errorf("%s: UID %s at sequence number %d, want %d", what, uid, f.Seq, seqs[uid])
			}
		}
		if len(got) != len(changed) || got[fmt.Sprint(uids[1])] != changed[fmt.Sprint(uids[1])] || got[fmt.Sprint(uids[4])] != changed[fmt.Sprint(uids[4])] {
			t.Errorf("%s: changed %v, want %v", what, got, changed)
		}
	}

	t.Run("SELECT QRESYNC", func(t *testing.T) {
		a := rawIMAPLogin(t, in, imapAlice)
		a.ok("ENABLE QRESYNC")
		u := a.ok("SELECT Sync (QRESYNC (%d %d))", v, m0)
		fs, rest := imapFetches(t, u)
		// RFC 7162 3.2.5.2: VANISHED (EARLIER) for the expunged UIDs, FETCH
		// with UID, FLAGS and MODSEQ for the changed ones.
		if !slices.Contains(rest, fmt.Sprintf("VANISHED (EARLIER) %d", uids[3])) {
			t.Errorf("SELECT (QRESYNC): no VANISHED (EARLIER) %d in %q", uids[3], rest)
		}
		checkChanged("SELECT (QRESYNC)", fs, seqs)
		if n := imapSelectCode(t, u, "HIGHESTMODSEQ"); n <= m0 {
			t.Errorf("HIGHESTMODSEQ %d after changes, was %d", n, m0)
		}
		if !slices.Contains(rest, "4 EXISTS") {
			t.Errorf("SELECT (QRESYNC): %q", rest)
		}
		// With known UIDs (RFC 7162 3.2.5): only those are reported.
		fs, rest = imapFetches(t, a.ok("SELECT Sync (QRESYNC (%d %d %d:%d))", v, m0, uids[2], uids[3]))
		if len(fs) != 0 || !slices.Contains(rest, fmt.Sprintf("VANISHED (EARLIER) %d", uids[3])) {
			t.Errorf("SELECT (QRESYNC) with known UIDs %d:%d: %+v %q", uids[2], uids[3], fs, rest)
		}
		// Another UIDVALIDITY: no resync data at all.
		fs, rest = imapFetches(t, a.ok("SELECT Sync (QRESYNC (%d %d))", v+1, m0))
		if len(fs) != 0 || slices.ContainsFunc(rest, func(s string) bool { return strings.HasPrefix(s, "VANISHED") }) {
			t.Errorf("SELECT (QRESYNC) with a wrong UIDVALIDITY: %+v %q", fs, rest)
		}
		// QRESYNC without ENABLE is a BAD (RFC 7162 3.2.5).
		p := rawIMAPLogin(t, in, imapAlice)
		if _, tagged := p.cmd("SELECT Sync (QRESYNC (%d %d))", v, m0); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("SELECT (QRESYNC) without ENABLE QRESYNC: %q", tagged)
		}
	})

	t.Run("CHANGEDSINCE", func(t *testing.T) {
		a := rawIMAPLogin(t, in, imapAlice)
		a.ok("ENABLE QRESYNC")
		a.ok("SELECT Sync")
		fs, rest := imapFetches(t, a.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m0))
		if len(rest) != 0 {
			t.Errorf("FETCH CHANGEDSINCE: %q", rest)
		}
		checkChanged("FETCH (CHANGEDSINCE)", fs, seqs)
		// UID FETCH ... (CHANGEDSINCE m VANISHED) (RFC 7162 3.2.6).
		fs, rest = imapFetches(t, a.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", m0))
		if !slices.Equal(rest, []string{fmt.Sprintf("VANISHED (EARLIER) %d", uids[3])}) {
			t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): %q", rest)
		}
		checkChanged("UID FETCH (CHANGEDSINCE VANISHED)", fs, seqs)
		// imapclient with CONDSTORE.
		cs := dialIMAPClient(t, in, imapAlice, nil)
		sel, err := cs.Select("Sync", &imap.SelectOptions{CondStore: true}).Wait()
		if err != nil || sel.HighestModSeq <= m0 {
			t.Fatalf("imapclient SELECT (CONDSTORE): %+v %v", sel, err)
		}
		msgs, err := cs.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: m0}).Collect()
		if err != nil || len(msgs) != 2 || msgs[0].UID != uids[1] || msgs[1].UID != uids[4] || msgs[0].ModSeq <= m0 || msgs[1].ModSeq > sel.HighestModSeq {
			t.Errorf("imapclient FETCH (CHANGEDSINCE): %+v %v", msgs, err)
		}
	})

	t.Run("UID and MODSEQ in every FETCH", func(t *testing.T) {
		// RFC 7162 3.2.4: once CONDSTORE is enabled, a QRESYNC server puts
		// UID and MODSEQ in every untagged FETCH caused by STORE or by a
		// FETCH that sets \Seen.
		s := rawIMAPLogin(t, in, imapAlice)
		s.ok("ENABLE CONDSTORE")
		s.ok("SELECT Sync")
		fs, _ := imapFetches(t, s.ok(`STORE 3 +FLAGS ($Tag3)`))
		if len(fs) != 1 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[2]) || fs[0].Items["MODSEQ"].String() == "" {
			t.Errorf("STORE after ENABLE CONDSTORE: %+v, want UID %d and MODSEQ (RFC 7162 3.2.4)", fs, uids[2])
		}
		fs, _ = imapFetches(t, s.ok(`FETCH 3 (BODY[TEXT])`)) // message 3 is unseen: \Seen is set
		if len(fs) != 1 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[2]) || fs[0].Items["MODSEQ"].String() == "" ||
			!slices.Contains(fs[0].Items["FLAGS"].Atoms(), `\Seen`) {
			var items []string
			for _, f := range fs {
				items = append(items, slices.Sorted(maps.Keys(f.Items))...)
			}
			t.Errorf("FETCH BODY[TEXT] setting \\Seen after ENABLE CONDSTORE: items %v, want UID %d, FLAGS and MODSEQ too (RFC 7162 3.2.4)", items, uids[2])
		}
	})

	t.Run("UNCHANGEDSINCE", func(t *testing.T) {
		defer b.bind(t)()
		a := rawIMAPLogin(t, in, imapAlice)
		a.ok("ENABLE CONDSTORE")
		h := imapSelectCode(t, a.ok("SELECT Sync"), "HIGHESTMODSEQ")
		// Another session changes message 1 after A read h.
		b.ok(`UID STORE %d +FLAGS.SILENT ($Changed)`, uids[0])
		// RFC 7162 3.1.3: message 1 fails the test ([MODIFIED 1]) and is not
		// changed; message 2 passes and is answered with its MODSEQ.
		u, tagged := a.cmd(`STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, h)
		if !strings.HasPrefix(tagged, "OK") || imapCodeOf(tagged) != "MODIFIED 1" {
			t.Errorf("STORE UNCHANGEDSINCE: %q, want OK [MODIFIED 1]", tagged)
		}
		fs, _ := imapFetches(t, u)
		var two *imapFetchResp
		for i := range fs {
			if fs[i].Seq == 2 {
				two = &fs[i]
			}
			if fs[i].Seq == 1 && slices.Contains(fs[i].Items["FLAGS"].Atoms(), `\Flagged`) {
				t.Errorf("message 1 got \\Flagged despite failing UNCHANGEDSINCE: %+v", fs[i])
			}
		}
		if two == nil || imapModSeq(t, two.Items["MODSEQ"]) <= h || !slices.Contains(two.Items["FLAGS"].Atoms(), `\Flagged`) {
			t.Errorf("STORE UNCHANGEDSINCE: message 2 %+v", fs)
		}
		// UID STORE names UIDs in MODIFIED.
		_, tagged = a.cmd(`UID STORE %d (UNCHANGEDSINCE %d) -FLAGS ($Changed)`, uids[0], h)
		if imapCodeOf(tagged) != fmt.Sprintf("MODIFIED %d", uids[0]) {
			t.Errorf("UID STORE UNCHANGEDSINCE: %q, want OK [MODIFIED %d]", tagged, uids[0])
		}
		// Read back by B: message 1 has $Changed and no \Flagged; 2 has
		// \Flagged.
		fs, _ = imapFetches(t, b.ok("UID FETCH %d,%d (FLAGS)", uids[0], uids[1]))
		flags := map[string]string{}
		for _, f := range fs {
			flags[f.Items["UID"].Atom] = imapFlagSet(f.Items["FLAGS"].Atoms())
		}
		if flags[fmt.Sprint(uids[0])] != imapFlagSet([]string{`\Seen`, "$Changed"}) ||
			flags[fmt.Sprint(uids[1])] != imapFlagSet([]string{`\Answered`, `\Flagged`, "$Important"}) {
			t.Errorf("flags after conditional STOREs: %v", flags)
		}
	})
}

// TestIMAPSeesPOP3Deletion: a message deleted over POP3 leaves the IMAP
// session's view as an EXPUNGE at its next command.
func TestIMAPSeesPOP3Deletion(t *testing.T) {
	in := postatest.Start(t)
	m1 := "From: x@remote.test\r\nSubject: one\r\n\r\nfirst\r\n"
	m2 := "From: x@remote.test\r\nSubject: two\r\n\r\nsecond\r\n"
	imapDeliver(t, in, imapBob, m1, 1)
	imapDeliver(t, in, imapBob, m2, 2)
	var expunged []uint32
	c := dialIMAPClient(t, in, imapBob, &imapclient.UnilateralDataHandler{Expunge: func(seq uint32) { expunged = append(expunged, seq) }})
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
		t.Fatalf("SELECT: %+v %v", sel, err)
	}

	p, err := tls.Dial("tcp", in.Addr(t, "pop3s"), in.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetDeadline(time.Now().Add(imapTimeout))
	pr := bufio.NewReader(p)
	for _, cmd := range []string{"", "USER bob@example.test", "PASS " + postatest.Users[imapBob], "DELE 1", "QUIT"} {
		if cmd != "" {
			fmt.Fprintf(p, "%s\r\n", cmd)
		}
		if l, err := pr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 %q: %q %v", cmd, l, err)
		}
	}
	// QUIT's +OK may come before the deletion is committed: poll with NOOP
	// until the IMAP session has been told.
	deadline := time.Now().Add(10 * time.Second)
	for c.Mailbox().NumMessages != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no EXPUNGE within 10s of POP3 DELE; store has %d messages", len(in.Messages(t, imapBob, "INBOX")))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(expunged, []uint32{1}) || c.Mailbox().NumMessages != 1 {
		t.Errorf("after POP3 DELE 1: EXPUNGE %v, %d messages", expunged, c.Mailbox().NumMessages)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 || !strings.HasSuffix(string(msgs[0].FindBodySection(section)), m2) {
		t.Errorf("message 1 after the deletion: %v", err)
	}
}
