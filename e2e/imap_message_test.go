package e2e

// IMAP message commands end to end: APPEND (MULTIAPPEND, APPENDUID),
// SELECT/EXAMINE, SEARCH (ESEARCH, SEARCHRES), FETCH, STORE, COPY, MOVE,
// EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT, CHECK, IDLE, and the UID forms.

import (
	"bytes"
	"encoding/base64"
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

// String renders a token canonically: strings always quoted, so a literal
// and a quoted string of the same text compare equal.
func (k imapTok) String() string {
	switch {
	case k.IsList:
		parts := make([]string, len(k.List))
		for i, e := range k.List {
			parts[i] = e.String()
		}
		return "(" + strings.Join(parts, " ") + ")"
	case k.Str != nil:
		return imapQuote(*k.Str)
	}
	return k.Atom
}

// imapFixture is one message of the test mailboxes, with the flags and
// internal date APPEND gives it.
type imapFixture struct {
	flags []imap.Flag
	date  time.Time
	body  string
}

// A PNG-like attachment with every octet value, NUL included.
var imapPNG = func() []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	for i := 0; i < 256; i++ {
		b = append(b, byte(i), byte(255-i))
	}
	return b
}()

// imapB64Lines is base64 in lines of 76 characters, CRLF after each.
func imapB64Lines(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

const (
	imapPart1Body   = "Two photos from the trip.\r\n"
	imapPart2Header = "Content-Type: image/png; name=\"tiny.png\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"tiny.png\"\r\n"
)

var imapFixtures = []imapFixture{
	{[]imap.Flag{imap.FlagSeen}, time.Date(2024, 3, 1, 9, 0, 0, 0, time.FixedZone("", 3600)),
		"From: Bob Example <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Lunch tomorrow\r\n" +
			"Date: Fri, 01 Mar 2024 08:59:00 +0100\r\nMessage-ID: <m1@example.test>\r\n\r\n" +
			"Let's meet at noon in the canteen.\r\n"},
	{[]imap.Flag{"$Important"}, time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC),
		"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nCc: dave@remote.test\r\nSubject: Quarterly report\r\n" +
			"X-Tracking: abc123\r\nDate: Fri, 10 May 2024 12:00:00 +0000\r\n\r\n" +
			"The quarterly report is below.\r\nRevenue went up.\r\n"},
	{[]imap.Flag{imap.FlagFlagged}, time.Date(2024, 6, 20, 18, 30, 0, 0, time.FixedZone("", 2*3600)),
		"From: Bob Example <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Photos\r\n" +
			"Date: Thu, 20 Jun 2024 18:30:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + imapPart1Body +
			"\r\n--b1\r\n" + imapPart2Header + "\r\n" + imapB64Lines(imapPNG) + "--b1--\r\n"},
	{nil, time.Date(2024, 7, 1, 8, 0, 0, 0, time.UTC),
		"From: Erin <erin@remote.test>\r\nTo: alice@example.test\r\nSubject: Big one\r\nDate: Mon, 01 Jul 2024 08:00:00 +0000\r\n\r\n" +
			func() string {
				var b strings.Builder
				for i := 0; i < 300; i++ {
					fmt.Fprintf(&b, "zebra crossing line %03d of the big message body\r\n", i)
				}
				return b.String()
			}()},
	{[]imap.Flag{imap.FlagAnswered, imap.FlagSeen}, time.Date(2024, 8, 15, 7, 0, 0, 0, time.FixedZone("", -4*3600)),
		"From: Bob Example <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Re: Lunch tomorrow\r\n" +
			"Date: Thu, 15 Aug 2024 07:00:00 -0400\r\nIn-Reply-To: <m1@example.test>\r\n\r\nNoon works. See you in the canteen.\r\n"},
}

// imapFill creates mailbox and appends the fixtures with imapclient,
// checking each APPENDUID; it returns the UIDVALIDITY and the UIDs.
func imapFill(t testing.TB, c *imapclient.Client, mailbox string) (uint32, []imap.UID) {
	t.Helper()
	if err := c.Create(mailbox, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s: %v", mailbox, err)
	}
	var validity uint32
	var uids []imap.UID
	for i, f := range imapFixtures {
		a := c.Append(mailbox, int64(len(f.body)), &imap.AppendOptions{Flags: f.flags, Time: f.date})
		if _, err := a.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		d, err := a.Wait()
		if err != nil {
			t.Fatalf("APPEND %d: %v", i, err)
		}
		if i == 0 {
			validity = d.UIDValidity
		}
		if d.UIDValidity != validity || d.UIDValidity == 0 || len(uids) > 0 && d.UID <= uids[len(uids)-1] {
			t.Fatalf("APPENDUID %+v after %v", d, uids)
		}
		uids = append(uids, d.UID)
	}
	return validity, uids
}

func imapSeqs(t testing.TB, untagged []string) []uint32 {
	t.Helper()
	var out []uint32
	found := false
	for _, u := range untagged {
		f := strings.Fields(u)
		if len(f) == 0 || f[0] != "SEARCH" {
			continue
		}
		if found {
			t.Fatalf("two SEARCH responses: %q", untagged)
		}
		found = true
		for _, n := range f[1:] {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				t.Fatalf("SEARCH response %q", u)
			}
			out = append(out, uint32(v))
		}
	}
	if !found {
		t.Fatalf("no SEARCH response in %q", untagged)
	}
	slices.Sort(out)
	return out
}

// imapESearch parses the one ESEARCH response: its correlator tag, UID
// indicator and return data.
func imapESearch(t testing.TB, untagged []string) (tag string, uid bool, data map[string]string) {
	t.Helper()
	data = map[string]string{}
	var found []string
	for _, u := range untagged {
		if strings.HasPrefix(u, "ESEARCH") {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one ESEARCH response, got %q", untagged)
	}
	toks := imapTokens(t, found[0])[1:]
	if len(toks) > 0 && toks[0].IsList {
		if len(toks[0].List) != 2 || !strings.EqualFold(toks[0].List[0].Atom, "TAG") {
			t.Fatalf("ESEARCH correlator in %q", found[0])
		}
		tag = toks[0].List[1].S()
		toks = toks[1:]
	}
	if len(toks) > 0 && strings.EqualFold(toks[0].Atom, "UID") {
		uid = true
		toks = toks[1:]
	}
	for i := 0; i+1 < len(toks); i += 2 {
		data[strings.ToUpper(toks[i].Atom)] = toks[i+1].Atom
	}
	return tag, uid, data
}

func imapUIDList(uids ...imap.UID) string {
	var s imap.UIDSet
	s.AddNum(uids...)
	return s.String()
}

// TestIMAPMessages: each subtest fills a mailbox of its own with
// imapFixtures and works on it with raw sessions and imapclient.
func TestIMAPMessages(t *testing.T) {
	in := postatest.Start(t)
	c := dialIMAPClient(t, in, imapAlice, nil)
	// other reads back over a second connection.
	other := dialIMAPClient(t, in, imapAlice, nil)

	t.Run("APPEND", func(t *testing.T) {
		validity, uids := imapFill(t, c, "Appended")
		// Flags, date and octets kept: read back on the other connection.
		if _, err := other.Select("Appended", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		defer func() { other.Unselect().Wait() }()
		body := &imap.FetchItemBodySection{Peek: true}
		msgs, err := other.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
			RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil || len(msgs) != len(imapFixtures) {
			t.Fatalf("FETCH: %d messages, %v", len(msgs), err)
		}
		for i, m := range msgs {
			f := imapFixtures[i]
			if m.UID != uids[i] || imapClientFlags(m.Flags) != imapClientFlags(f.flags) || !m.InternalDate.Equal(f.date) ||
				m.RFC822Size != int64(len(f.body)) || string(m.FindBodySection(body)) != f.body {
				t.Errorf("message %d: UID %d flags %v date %v size %d", i+1, m.UID, m.Flags, m.InternalDate, m.RFC822Size)
			}
			_, off := m.InternalDate.Zone()
			if _, want := f.date.Zone(); off != want {
				t.Errorf("message %d: INTERNALDATE zone %d, want %d (as APPEND gave it)", i+1, off, want)
			}
		}

		r := rawIMAPLogin(t, in, imapAlice)
		// The date-time exactly as given (RFC 9051 6.3.12).
		_, tagged := r.cmd(`APPEND Appended (\Draft $Todo) "05-Jan-2024 13:14:15 +0230" %s`, imapLiteral("Subject: dated\r\n\r\nx\r\n"))
		if !strings.HasPrefix(tagged, "OK ") || imapCodeOf(tagged) != fmt.Sprintf("APPENDUID %d %d", validity, uids[4]+1) {
			t.Fatalf("APPEND: %q", tagged)
		}
		r.ok("EXAMINE Appended")
		fs, _ := imapFetches(t, r.ok("UID FETCH %d (FLAGS INTERNALDATE RFC822.SIZE)", uids[4]+1))
		if len(fs) != 1 || fs[0].Items["INTERNALDATE"].S() != "05-Jan-2024 13:14:15 +0230" ||
			imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != imapFlagSet([]string{`\Draft`, "$Todo"}) || fs[0].Items["RFC822.SIZE"].Atom != "21" {
			t.Errorf("appended message: %+v", fs)
		}
		// A synchronizing literal: "+" first.
		tag := r.send("APPEND Appended {21}")
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND with a synchronizing literal: %q, want a continuation request", l)
		}
		r.write("Subject: sync\r\n\r\nok\r\n\r\n")
		if _, tagged := r.until(tag); imapCodeOf(tagged) != fmt.Sprintf("APPENDUID %d %d", validity, uids[4]+2) {
			t.Errorf("APPEND (sync literal): %q", tagged)
		}
		// RFC 9051 6.3.12: no such mailbox, NO [TRYCREATE]; nothing stored.
		if _, tagged := r.cmdPrompt("APPEND Ghost %s", imapLiteral("Subject: lost\r\n\r\nx\r\n")); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "TRYCREATE" {
			t.Errorf("APPEND to a missing mailbox: %q", tagged)
		}
		r.ok("NOOP")
		// With a synchronizing literal the client waits for "+": the NO
		// must come instead (RFC 9051 7.5), at once.
		if u, tagged := r.cmdPrompt("APPEND Ghost {21}"); len(u) != 0 || !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "TRYCREATE" {
			t.Errorf("APPEND (synchronizing literal) to a missing mailbox: %q %q", u, tagged)
		}
		// The same with imapclient (a literal over 4096 octets is
		// synchronizing): on its own connection, which is closed if the
		// client is stuck.
		big := "Subject: lost\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n"
		ac := dialIMAPClient(t, in, imapAlice, nil)
		done := make(chan error, 1)
		go func() {
			a := ac.Append("Ghost", int64(len(big)), nil)
			a.Write([]byte(big))
			a.Close()
			_, err := a.Wait()
			done <- err
		}()
		select {
		case err := <-done:
			imapErr(t, "imapclient APPEND to a missing mailbox", err, imap.StatusResponseTypeNo, imap.ResponseCodeTryCreate)
		case <-time.After(2 * time.Second):
			t.Errorf("imapclient APPEND to a missing mailbox: no response within 2s, the client waits for \"+\" forever")
			ac.Close()
			<-done
		}
		if sd, err := other.Status("Appended", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *sd.NumMessages != 7 {
			t.Errorf("STATUS Appended: %+v %v", sd, err)
		}
	})

	t.Run("MULTIAPPEND", func(t *testing.T) {
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("CREATE Multi")
		m1, m2, m3 := "Subject: m1\r\n\r\none\r\n", "Subject: m2\r\n\r\ntwo\r\n", "Subject: m3\r\n\r\nthree\r\n"
		// RFC 3502 6.3.11: several messages in one command; RFC 4315 3:
		// APPENDUID with a UID set.
		_, tagged := r.cmd(`APPEND Multi (\Seen) "01-Feb-2024 10:00:00 +0000" %s (\Flagged) %s %s`,
			imapLiteral(m1), imapLiteral(m2), imapLiteral(m3))
		var v uint32
		var set string
		if _, err := fmt.Sscanf(imapCodeOf(tagged), "APPENDUID %d %s", &v, &set); err != nil || set != "1:3" || !strings.HasPrefix(tagged, "OK ") {
			t.Fatalf("MULTIAPPEND: %q", tagged)
		}
		r.ok("EXAMINE Multi")
		fs, _ := imapFetches(t, r.ok("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])"))
		if len(fs) != 3 || fs[0].Items["BODY[]"].S() != m1 || fs[1].Items["BODY[]"].S() != m2 || fs[2].Items["BODY[]"].S() != m3 ||
			imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != `\seen` || imapFlagSet(fs[1].Items["FLAGS"].Atoms()) != `\flagged` ||
			len(fs[2].Items["FLAGS"].List) != 0 || fs[0].Items["INTERNALDATE"].S() != "01-Feb-2024 10:00:00 +0000" {
			t.Errorf("MULTIAPPEND stored %+v", fs)
		}
		// RFC 3502 6.3.11: all or nothing. An invalid flag on the second
		// message fails the command, and the first is not stored.
		if _, tagged := r.cmdPrompt(`APPEND Multi %s (\Bogus) %s`, imapLiteral(m1), imapLiteral(m2)); strings.HasPrefix(tagged, "OK") {
			t.Errorf("MULTIAPPEND with an invalid flag: %q", tagged)
		}
		if st := imapStatus(t, r, "Multi", "MESSAGES"); st["MESSAGES"] != 3 {
			t.Errorf("after a failed MULTIAPPEND: %v", st)
		}
		if sd, err := other.Status("Multi", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait(); err != nil || *sd.NumMessages != 3 {
			t.Errorf("second connection: %+v %v", sd, err)
		}
	})

	t.Run("SELECT and EXAMINE", func(t *testing.T) {
		validity, uids := imapFill(t, c, "Sel")
		r := rawIMAPLogin(t, in, imapAlice)
		// IMAP4rev1 (RFC 3501 6.3.1): FLAGS, EXISTS, RECENT, UNSEEN,
		// UIDVALIDITY, UIDNEXT, PERMANENTFLAGS; READ-WRITE.
		u, tagged := r.cmd("SELECT Sel")
		flags := `FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Important)`
		want := []string{flags, "5 EXISTS", "0 RECENT", "OK [UNSEEN 2]", fmt.Sprintf("OK [UIDVALIDITY %d]", validity),
			fmt.Sprintf("OK [UIDNEXT %d]", uids[4]+1), `OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Important \*)]`}
		imapCheckSelect(t, "SELECT (IMAP4rev1)", u, want)
		if imapCodeOf(tagged) != "READ-WRITE" {
			t.Errorf("SELECT: %q", tagged)
		}
		// EXAMINE: READ-ONLY; [CLOSED] first since Sel was selected (RFC
		// 9051 6.3.2, 7.1).
		u, tagged = r.cmd("EXAMINE Sel")
		if len(u) == 0 || u[0] != "OK [CLOSED] Previous mailbox closed" && !strings.HasPrefix(u[0], "OK [CLOSED]") {
			t.Errorf("EXAMINE while selected: first response %q, want OK [CLOSED]", u)
		} else {
			want[6] = "OK [PERMANENTFLAGS ()]"
			imapCheckSelect(t, "EXAMINE", u[1:], want)
		}
		if imapCodeOf(tagged) != "READ-ONLY" {
			t.Errorf("EXAMINE: %q", tagged)
		}
		// Nothing changes under EXAMINE: STORE refused, BODY[] sets no
		// \Seen (RFC 9051 6.3.3).
		if _, tagged := r.cmd(`STORE 2 +FLAGS (\Flagged)`); !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("STORE under EXAMINE: %q", tagged)
		}
		fs, _ := imapFetches(t, r.ok("FETCH 2 BODY[]"))
		if len(fs) != 1 || fs[0].Items["FLAGS"].IsList || fs[0].Items["BODY[]"].S() != imapFixtures[1].body {
			t.Errorf("FETCH BODY[] under EXAMINE: %+v", fs)
		}
		if _, tagged := r.cmd("EXPUNGE"); !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("EXPUNGE under EXAMINE: %q", tagged)
		}
		// A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
		u, tagged = r.cmd("SELECT Ghost")
		if !strings.HasPrefix(tagged, "NO ") || len(u) != 1 || !strings.HasPrefix(u[0], "OK [CLOSED]") {
			t.Errorf("SELECT Ghost while selected: %q %q", u, tagged)
		}
		if _, tagged := r.cmd("FETCH 1 FLAGS"); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("FETCH after a failed SELECT: %q", tagged)
		}

		// IMAP4rev2 (RFC 9051 6.3.2): no RECENT, no UNSEEN; a LIST response
		// with the mailbox name is REQUIRED.
		r2 := rawIMAPLogin(t, in, imapAlice)
		r2.ok("ENABLE IMAP4rev2")
		u, tagged = r2.cmd("SELECT Sel")
		imapCheckSelect(t, "SELECT (IMAP4rev2)", u, []string{flags, "5 EXISTS", `LIST (\HasNoChildren) "/" Sel`,
			fmt.Sprintf("OK [UIDVALIDITY %d]", validity), fmt.Sprintf("OK [UIDNEXT %d]", uids[4]+1),
			`OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Important \*)]`})
		if imapCodeOf(tagged) != "READ-WRITE" {
			t.Errorf("SELECT: %q", tagged)
		}

		// imapclient.
		d, err := c.Select("Sel", nil).Wait()
		if err != nil || d.NumMessages != 5 || d.UIDValidity != validity || d.UIDNext != uids[4]+1 ||
			!slices.Contains(d.PermanentFlags, imap.FlagWildcard) || !slices.Contains(d.Flags, "$Important") {
			t.Errorf("imapclient SELECT: %+v %v", d, err)
		}
		d, err = c.Select("Sel", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || d.NumMessages != 5 || len(d.PermanentFlags) != 0 {
			t.Errorf("imapclient EXAMINE: %+v %v", d, err)
		}
		if err := c.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SEARCH", func(t *testing.T) {
		_, uids := imapFill(t, c, "Search")
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("EXAMINE Search")
		size := func(i int) int { return len(imapFixtures[i].body) }
		// The smallest message, to test SMALLER and LARGER at its edge.
		smallest := slices.MinFunc([]int{0, 1, 2, 3, 4}, func(a, b int) int { return size(a) - size(b) })
		var larger []uint32
		for i := range imapFixtures {
			if size(i) > size(smallest) {
				larger = append(larger, uint32(i)+1)
			}
		}
		for _, c := range []struct {
			keys string
			want []uint32
		}{
			{"ALL", []uint32{1, 2, 3, 4, 5}},
			{"SUBJECT lunch", []uint32{1, 5}},
			{`SUBJECT "LUNCH TOMORROW"`, []uint32{1, 5}},
			{"FROM carol", []uint32{2}},
			{`FROM "bob example"`, []uint32{1, 3, 5}},
			{"TO alice@example.test", []uint32{1, 2, 3, 4, 5}},
			{"CC dave", []uint32{2}},
			{"HEADER X-Tracking abc123", []uint32{2}},
			{`HEADER X-Tracking ""`, []uint32{2}},
			{"HEADER In-Reply-To m1@example", []uint32{5}},
			{"BODY canteen", []uint32{1, 5}},
			{"BODY lunch", nil}, // only in Subject: not body text
			{"TEXT lunch", []uint32{1, 5}},
			{"TEXT carol", []uint32{2}},
			{"TEXT trip", []uint32{3}},  // the text part of a multipart
			{"BODY zebra", []uint32{4}}, // deep in a large body
			{"BODY tiny.png", nil},      // a part header is not body text
			{"SINCE 1-Jun-2024", []uint32{3, 4, 5}},
			{"BEFORE 1-Jun-2024", []uint32{1, 2}},
			{"SINCE 10-May-2024 BEFORE 21-Jun-2024", []uint32{2, 3}},
			{"ON 20-Jun-2024", []uint32{3}},
			{"SENTBEFORE 1-Apr-2024", []uint32{1}},
			{"SENTSINCE 15-Aug-2024", []uint32{5}},
			{"LARGER 10000", []uint32{4}},
			{fmt.Sprintf("SMALLER %d", size(smallest)+1), []uint32{uint32(smallest) + 1}},
			{fmt.Sprintf("LARGER %d", size(smallest)), larger},
			{"SEEN", []uint32{1, 5}},
			{"UNSEEN", []uint32{2, 3, 4}},
			{"NOT SEEN", []uint32{2, 3, 4}},
			{"FLAGGED", []uint32{3}},
			{"ANSWERED", []uint32{5}},
			{"OR FLAGGED ANSWERED", []uint32{3, 5}},
			{"NOT OR FLAGGED ANSWERED", []uint32{1, 2, 4}},
			{"KEYWORD $Important", []uint32{2}},
			{"UNKEYWORD $important", []uint32{1, 3, 4, 5}},
			{"2:4", []uint32{2, 3, 4}},
			{"2:4 SEEN", nil},
			{"*", []uint32{5}},
			{"4:*", []uint32{4, 5}},
			{fmt.Sprintf("UID %d:%d", uids[1], uids[3]), []uint32{2, 3, 4}},
			{fmt.Sprintf("UID %d:*", uids[4]), []uint32{5}},
			{fmt.Sprintf("UID %d,%d SEEN", uids[0], uids[1]), []uint32{1}},
			{"(SEEN FLAGGED)", nil},
			{"OR (SEEN SUBJECT re) FLAGGED", []uint32{3, 5}},
			{"NOT (FROM bob SEEN)", []uint32{2, 3, 4}},
			{"SUBJECT nothing-like-this", nil},
		} {
			u, tagged := r.cmd("SEARCH %s", c.keys)
			if !strings.HasPrefix(tagged, "OK") {
				t.Errorf("SEARCH %s: %q", c.keys, tagged)
				continue
			}
			if got := imapSeqs(t, u); !slices.Equal(got, c.want) {
				t.Errorf("SEARCH %s: %v, want %v", c.keys, got, c.want)
			}
		}
		// UID SEARCH answers UIDs.
		if got := imapSeqs(t, r.ok("UID SEARCH SUBJECT lunch")); !slices.Equal(got, []uint32{uint32(uids[0]), uint32(uids[4])}) {
			t.Errorf("UID SEARCH SUBJECT lunch: %v", got)
		}
		// RFC 9051 6.4.4: an unknown charset is NO [BADCHARSET]; UTF-8 works.
		if _, tagged := r.cmd("SEARCH CHARSET X-UNKNOWN SUBJECT x"); !strings.HasPrefix(tagged, "NO ") || !strings.HasPrefix(imapCodeOf(tagged), "BADCHARSET") {
			t.Errorf("SEARCH CHARSET X-UNKNOWN: %q", tagged)
		}
		if got := imapSeqs(t, r.ok("SEARCH CHARSET UTF-8 SUBJECT %s", imapLiteral("Lunch"))); !slices.Equal(got, []uint32{1, 5}) {
			t.Errorf("SEARCH CHARSET UTF-8: %v", got)
		}

		// ESEARCH (RFC 4731): one response with the command's tag.
		for _, c := range []struct {
			cmd  string
			uid  bool
			want map[string]string
		}{
			{"SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT lunch", false, map[string]string{"MIN": "1", "MAX": "5", "COUNT": "2", "ALL": "1,5"}},
			{"SEARCH RETURN () NOT SEEN", false, map[string]string{"ALL": "2:4"}},
			{"SEARCH RETURN (COUNT) ALL", false, map[string]string{"COUNT": "5"}},
			{"SEARCH RETURN (MIN COUNT) SUBJECT nothing-like-this", false, map[string]string{"COUNT": "0"}},
			{fmt.Sprintf("UID SEARCH RETURN (MAX ALL) UID %d:*", uids[2]), true,
				map[string]string{"MAX": fmt.Sprint(uids[4]), "ALL": imapUIDList(uids[2], uids[3], uids[4])}},
		} {
			tag := r.send("%s", c.cmd)
			u, tagged := r.until(tag)
			if !strings.HasPrefix(tagged, "OK") {
				t.Errorf("%s: %q", c.cmd, tagged)
				continue
			}
			gotTag, uid, data := imapESearch(t, u)
			if gotTag != tag || uid != c.uid || !maps.Equal(data, c.want) {
				t.Errorf("%s: tag %q uid %v %v, want %q %v %v", c.cmd, gotTag, uid, data, tag, c.uid, c.want)
			}
		}
		if _, err := c.Select("Search", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		sd, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "lunch"}}},
			&imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true}).Wait()
		if err != nil || sd.Min != 1 || sd.Max != 5 || sd.Count != 2 || !slices.Equal(sd.AllSeqNums(), []uint32{1, 5}) {
			t.Errorf("imapclient ESEARCH: %+v %v", sd, err)
		}
		sd, err = c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}, Body: []string{"quarterly"}}, nil).Wait()
		if err != nil || !slices.Equal(sd.AllUIDs(), []imap.UID{uids[1]}) {
			t.Errorf("imapclient UID SEARCH: %+v %v", sd, err)
		}
		c.Unselect().Wait()

		// SEARCHRES (RFC 5182): SAVE alone answers nothing; "$" is the
		// result in later commands.
		if u := r.ok("SEARCH RETURN (SAVE) SUBJECT lunch"); len(u) != 0 {
			t.Errorf("SEARCH RETURN (SAVE): %q, want no untagged response (RFC 5182 1)", u)
		}
		fs, _ := imapFetches(t, r.ok("FETCH $ (UID)"))
		if len(fs) != 2 || fs[0].Seq != 1 || fs[1].Seq != 5 || fs[1].Items["UID"].Atom != fmt.Sprint(uids[4]) {
			t.Errorf("FETCH $: %+v", fs)
		}
		if got := imapSeqs(t, r.ok("SEARCH $ NOT ANSWERED")); !slices.Equal(got, []uint32{1}) {
			t.Errorf("SEARCH $ NOT ANSWERED: %v", got)
		}
		fs, _ = imapFetches(t, r.ok("UID FETCH $ (FLAGS)"))
		if len(fs) != 2 {
			t.Errorf("UID FETCH $: %+v", fs)
		}
		// RFC 5182 2.4: SAVE with MIN alone saves only the minimum.
		_, _, data := imapESearch(t, r.ok("SEARCH RETURN (SAVE MIN) SUBJECT lunch"))
		if !maps.Equal(data, map[string]string{"MIN": "1"}) {
			t.Errorf("SEARCH RETURN (SAVE MIN): %v", data)
		}
		if fs, _ := imapFetches(t, r.ok("FETCH $ (UID)")); len(fs) != 1 || fs[0].Seq != 1 {
			t.Errorf("FETCH $ after SAVE MIN: %+v", fs)
		}
		// A new SELECT forgets it (RFC 5182 2.1): $ is empty.
		r.ok("EXAMINE Search")
		if fs, _ := imapFetches(t, r.ok("FETCH $ (UID)")); len(fs) != 0 {
			t.Errorf("FETCH $ after reselect: %+v", fs)
		}

		// IMAP4rev2 (RFC 9051 6.4.4 and Appendix E item 4): SEARCH answers
		// ESEARCH, never SEARCH.
		r2 := rawIMAPLogin(t, in, imapAlice)
		r2.ok("ENABLE IMAP4rev2")
		r2.ok("EXAMINE Search")
		tag := r2.send("SEARCH SUBJECT lunch")
		u, _ := r2.until(tag)
		if len(u) != 1 || !strings.HasPrefix(u[0], "ESEARCH") {
			t.Errorf("SEARCH after ENABLE IMAP4rev2: %q, want [ESEARCH (TAG %q) ALL 1,5]", u, tag)
		} else if gotTag, _, data := imapESearch(t, u); gotTag != tag || !maps.Equal(data, map[string]string{"ALL": "1,5"}) {
			t.Errorf("SEARCH after ENABLE IMAP4rev2: %q", u)
		}
	})

	t.Run("FETCH", func(t *testing.T) {
		_, uids := imapFill(t, c, "Fetch")
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("SELECT Fetch")
		m1, m3 := imapFixtures[0].body, imapFixtures[2].body
		fetch1 := func(cmd string) map[string]imapTok {
			t.Helper()
			fs, other := imapFetches(t, r.ok("%s", cmd))
			if len(fs) != 1 || len(other) != 0 {
				t.Fatalf("%s: %+v %q", cmd, fs, other)
			}
			return fs[0].Items
		}
		it := fetch1("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)")
		if imapFlagSet(it["FLAGS"].Atoms()) != `\seen` || it["INTERNALDATE"].S() != "01-Mar-2024 09:00:00 +0100" ||
			it["RFC822.SIZE"].Atom != fmt.Sprint(len(m1)) || it["UID"].Atom != fmt.Sprint(uids[0]) || len(it) != 4 {
			t.Errorf("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID): %v", it)
		}
		// RFC 9051 7.5.2: sender and reply-to default to from.
		it = fetch1("FETCH 1 ENVELOPE")
		if want := `("Fri, 01 Mar 2024 08:59:00 +0100" "Lunch tomorrow" (("Bob Example" NIL "bob" "example.test")) ` +
			`(("Bob Example" NIL "bob" "example.test")) (("Bob Example" NIL "bob" "example.test")) ((NIL NIL "alice" "example.test")) ` +
			`NIL NIL NIL "<m1@example.test>")`; it["ENVELOPE"].String() != want {
			t.Errorf("ENVELOPE:\n got %s\nwant %s", it["ENVELOPE"], want)
		}
		it = fetch1("FETCH 5 ENVELOPE")
		if env := it["ENVELOPE"].List; len(env) != 10 || env[8].S() != "<m1@example.test>" || env[9].S() != "" || env[5].S() != "" {
			t.Errorf("ENVELOPE of the reply: %s", it["ENVELOPE"])
		}
		it = fetch1("FETCH 1 BODYSTRUCTURE")
		if want := `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 36 1 NIL NIL NIL NIL)`; !strings.EqualFold(it["BODYSTRUCTURE"].String(), want) {
			t.Errorf("BODYSTRUCTURE:\n got %s\nwant %s", it["BODYSTRUCTURE"], want)
		}
		head, text, _ := strings.Cut(m1, "\r\n\r\n")
		it = fetch1("FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] " +
			"BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM DATE MESSAGE-ID)] BODY.PEEK[]<0.10> BODY.PEEK[]<30.5> BODY.PEEK[]<9999.5>)")
		for k, want := range map[string]string{
			"BODY[]": m1, "BODY[HEADER]": head + "\r\n\r\n", "BODY[TEXT]": text, "BODY[1]": text,
			"BODY[HEADER.FIELDS (SUBJECT FROM)]":                     "From: Bob Example <bob@example.test>\r\nSubject: Lunch tomorrow\r\n\r\n",
			"BODY[HEADER.FIELDS.NOT (SUBJECT FROM DATE MESSAGE-ID)]": "To: alice@example.test\r\n\r\n",
			"BODY[]<0>": m1[:10], "BODY[]<30>": m1[30:35], "BODY[]<9999>": "",
		} {
			if tok, ok := it[k]; !ok || tok.S() != want {
				t.Errorf("%s: %q, want %q", k, tok.S(), want)
			}
		}
		// RFC822.SIZE is the size of BODY[] for every message.
		fs, _ := imapFetches(t, r.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])"))
		for i, f := range fs {
			if f.Items["RFC822.SIZE"].Atom != fmt.Sprint(len(f.Items["BODY[]"].S())) || f.Items["BODY[]"].S() != imapFixtures[i].body {
				t.Errorf("message %d: RFC822.SIZE %s, BODY[] of %d octets", i+1, f.Items["RFC822.SIZE"].Atom, len(f.Items["BODY[]"].S()))
			}
		}

		// The multipart message: parts, MIME headers, BINARY (RFC 3516).
		b64 := imapB64Lines(imapPNG)
		it = fetch1("FETCH 3 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.MIME] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1] BINARY.PEEK[2]<8.4> BODY.PEEK[3])")
		for k, want := range map[string]string{
			"BODY[1]": imapPart1Body, "BODY[1.MIME]": "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
			"BODY[2]": strings.TrimSuffix(b64, "\r\n"), "BODY[2.MIME]": imapPart2Header + "\r\n",
			"BINARY[2]": string(imapPNG), "BINARY.SIZE[2]": fmt.Sprint(len(imapPNG)), "BINARY[1]": imapPart1Body,
			"BINARY[2]<8>": string(imapPNG[8:12]), "BODY[3]": "",
		} {
			if tok, ok := it[k]; !ok || tok.S() != want {
				t.Errorf("%s: %q, want %q", k, tok.S(), want)
			}
		}
		// imapclient's view of the same message.
		if _, err := other.Select("Fetch", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
		msgs, err := other.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BinarySection: []*imap.FetchItemBinarySection{bin}, BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("imapclient FETCH: %v", err)
		}
		m := msgs[0]
		if m.Envelope == nil || m.Envelope.Subject != "Photos" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != "bob@example.test" ||
			m.Envelope.From[0].Name != "Bob Example" || !m.Envelope.Date.Equal(imapFixtures[2].date) {
			t.Errorf("imapclient ENVELOPE: %+v", m.Envelope)
		}
		if got := m.FindBinarySection(bin); !bytes.Equal(got, imapPNG) {
			t.Errorf("imapclient BINARY[2]: %d octets", len(got))
		}
		if n, ok := m.FindBinarySectionSize([]int{2}); !ok || n != uint32(len(imapPNG)) {
			t.Errorf("imapclient BINARY.SIZE[2]: %d %v", n, ok)
		}
		mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
		if !ok || !strings.EqualFold(mp.Subtype, "mixed") || len(mp.Children) != 2 || mp.Extended == nil || mp.Extended.Params["boundary"] != "b1" {
			t.Fatalf("BODYSTRUCTURE: %#v", m.BodyStructure)
		}
		p1, ok1 := mp.Children[0].(*imap.BodyStructureSinglePart)
		p2, ok2 := mp.Children[1].(*imap.BodyStructureSinglePart)
		if !ok1 || !ok2 || !strings.EqualFold(p1.Type, "text") || !strings.EqualFold(p1.Subtype, "plain") || p1.Params["charset"] != "us-ascii" ||
			p1.Size != uint32(len(imapPart1Body)) || p1.Text == nil || p1.Text.NumLines != 1 || !strings.EqualFold(p1.Encoding, "7bit") ||
			!strings.EqualFold(p2.Type, "image") || !strings.EqualFold(p2.Subtype, "png") || p2.Params["name"] != "tiny.png" ||
			!strings.EqualFold(p2.Encoding, "base64") || p2.Size != uint32(len(b64)-2) || p2.Extended == nil || p2.Extended.Disposition == nil ||
			!strings.EqualFold(p2.Extended.Disposition.Value, "attachment") || p2.Extended.Disposition.Params["filename"] != "tiny.png" {
			t.Errorf("BODYSTRUCTURE parts:\n%#v\n%#v", mp.Children[0], mp.Children[1])
		}
		other.Unselect().Wait()

		// \Seen: BODY.PEEK leaves it, BODY[] sets it and says so in the same
		// response (RFC 9051 6.4.5).
		it = fetch1("FETCH 2 BODY.PEEK[TEXT]")
		if _, hasFlags := it["FLAGS"]; hasFlags {
			t.Errorf("BODY.PEEK answered FLAGS: %v", it)
		}
		unseen := func() []imap.UID {
			t.Helper()
			if _, err := other.Select("Fetch", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			defer func() { other.Unselect().Wait() }()
			sd, err := other.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			return sd.AllUIDs()
		}
		if got := unseen(); !slices.Equal(got, []imap.UID{uids[1], uids[2], uids[3]}) {
			t.Errorf("unseen after BODY.PEEK: %v", got)
		}
		it = fetch1("FETCH 2 BODY[TEXT]")
		if imapFlagSet(it["FLAGS"].Atoms()) != imapFlagSet([]string{`\Seen`, "$Important"}) || it["BODY[TEXT]"].S() == "" {
			t.Errorf("FETCH BODY[TEXT] of an unseen message: %v", it)
		}
		it = fetch1("FETCH 3 BINARY[1]") // RFC 3516 4.2: BINARY sets \Seen too
		if imapFlagSet(it["FLAGS"].Atoms()) != imapFlagSet([]string{`\Seen`, `\Flagged`}) {
			t.Errorf("FETCH BINARY[1] of an unseen message: %v", it)
		}
		if got := unseen(); !slices.Equal(got, []imap.UID{uids[3]}) {
			t.Errorf("unseen after BODY[] and BINARY[]: %v", got)
		}
		// IMAP4rev1's RFC822 items and the macros.
		it = fetch1("FETCH 4 (RFC822.HEADER RFC822.TEXT)")
		h4, t4, _ := strings.Cut(imapFixtures[3].body, "\r\n\r\n")
		if it["RFC822.HEADER"].S() != h4+"\r\n\r\n" || it["RFC822.TEXT"].S() != t4 || imapFlagSet(it["FLAGS"].Atoms()) != `\seen` {
			t.Errorf("RFC822.HEADER/RFC822.TEXT: %d %d octets, flags %s", len(it["RFC822.HEADER"].S()), len(it["RFC822.TEXT"].S()), it["FLAGS"])
		}
		it = fetch1("FETCH 1 FAST")
		if len(it) != 3 || it["RFC822.SIZE"].Atom != fmt.Sprint(len(m1)) {
			t.Errorf("FETCH FAST: %v", it)
		}
		if it = fetch1("FETCH 3 RFC822"); it["RFC822"].S() != m3 {
			t.Errorf("FETCH RFC822: %d octets", len(it["RFC822"].S()))
		}
		// UID FETCH always returns the UID (RFC 9051 6.4.9); UIDs not in
		// the mailbox are left out without error.
		fs, _ = imapFetches(t, r.ok("UID FETCH %d,%d:%d (FLAGS)", uids[2], uids[4]+1, uids[4]+9))
		if len(fs) != 1 || fs[0].Seq != 3 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[2]) {
			t.Errorf("UID FETCH: %+v", fs)
		}
	})

	t.Run("STORE", func(t *testing.T) {
		_, uids := imapFill(t, c, "Store")
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("SELECT Store")
		store := func(cmd string) []imapFetchResp {
			t.Helper()
			fs, rest := imapFetches(t, r.ok("%s", cmd))
			for _, o := range rest {
				// A new keyword may announce the mailbox's flags again.
				if !strings.HasPrefix(o, "FLAGS ") && !strings.HasPrefix(o, "OK [PERMANENTFLAGS ") {
					t.Errorf("%s: unexpected %q", cmd, o)
				}
			}
			return fs
		}
		for _, c := range []struct {
			cmd  string
			want map[uint32]string // seq -> FLAGS
		}{
			{`STORE 4 +FLAGS (\Flagged)`, map[uint32]string{4: `\Flagged`}},
			{`STORE 4 +FLAGS (\Flagged \Answered)`, map[uint32]string{4: `\Flagged \Answered`}},
			{`STORE 4 -FLAGS (\Flagged)`, map[uint32]string{4: `\Answered`}},
			{`STORE 4 FLAGS (\Draft $Todo)`, map[uint32]string{4: `\Draft $Todo`}},
			{`STORE 4 +FLAGS.SILENT (\Seen)`, map[uint32]string{}},
			{`STORE 4 -FLAGS ($todo)`, map[uint32]string{4: `\Draft \Seen`}}, // keywords are case-insensitive
			{`STORE 1:2 +FLAGS (Label1 $Label2)`, map[uint32]string{1: `\Seen Label1 $Label2`, 2: `$Important Label1 $Label2`}},
			{`STORE 1:2 FLAGS.SILENT (\Seen)`, map[uint32]string{}},
			{`STORE 2,4 FLAGS ()`, map[uint32]string{2: ``, 4: ``}},
		} {
			got := map[uint32]string{}
			for _, f := range store(c.cmd) {
				if len(f.Items) != 1 {
					t.Errorf("%s: FETCH %d items %v, want FLAGS only", c.cmd, f.Seq, f.Items)
				}
				got[f.Seq] = imapFlagSet(f.Items["FLAGS"].Atoms())
			}
			want := map[uint32]string{}
			for k, v := range c.want {
				want[k] = imapFlagSet(strings.Fields(v))
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: %v, want %v", c.cmd, got, want)
			}
		}
		fs := store(fmt.Sprintf(`UID STORE %d +FLAGS ($Done)`, uids[2]))
		if len(fs) != 1 || fs[0].Seq != 3 || fs[0].Items["UID"].Atom != fmt.Sprint(uids[2]) ||
			imapFlagSet(fs[0].Items["FLAGS"].Atoms()) != imapFlagSet([]string{`\Flagged`, "$Done"}) {
			t.Errorf("UID STORE: %+v", fs)
		}
		// RFC 9051 2.3.2: \Recent cannot be set; an unknown \-flag is refused.
		if _, tagged := r.cmd(`STORE 1 +FLAGS (\Bogus)`); strings.HasPrefix(tagged, "OK") {
			t.Errorf(`STORE \Bogus: %q`, tagged)
		}
		// Read back on the other connection.
		if _, err := other.Select("Store", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := other.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5), &imap.FetchOptions{Flags: true}).Collect()
		other.Unselect().Wait()
		want := []string{`\Seen`, ``, `\Flagged $Done`, ``, `\Answered \Seen`}
		for i, m := range msgs {
			if imapClientFlags(m.Flags) != imapFlagSet(strings.Fields(want[i])) {
				t.Errorf("message %d on the other connection: %v, want %s", i+1, m.Flags, want[i])
			}
		}
		if err != nil || len(msgs) != 5 {
			t.Errorf("FETCH on the other connection: %d %v", len(msgs), err)
		}
		// imapclient STORE.
		if _, err := c.Select("Store", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		res, err := c.Store(imap.UIDSetNum(uids[1]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, "$Junk"}}, nil).Collect()
		if err != nil || len(res) != 1 || imapClientFlags(res[0].Flags) != imapFlagSet([]string{`\Deleted`, "$Junk"}) {
			t.Errorf("imapclient STORE: %+v %v", res, err)
		}
		c.Unselect().Wait()
	})

	t.Run("COPY and MOVE", func(t *testing.T) {
		_, uids := imapFill(t, c, "Src")
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("CREATE Dest")
		dv, _ := imapAppendRaw(t, r, "Dest", "", "Subject: already there\r\n\r\nx\r\n")
		r.ok("SELECT Src")
		// COPY: COPYUID in the tagged OK (RFC 4315 3), the source unchanged.
		u, tagged := r.cmd("COPY 1:2 Dest")
		if len(u) != 0 || !strings.HasPrefix(tagged, "OK ") || imapCodeOf(tagged) != fmt.Sprintf("COPYUID %d %s 2:3", dv, imapUIDList(uids[0], uids[1])) {
			t.Errorf("COPY: %q %q", u, tagged)
		}
		if _, tagged := r.cmd("COPY 1 Ghost"); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "TRYCREATE" {
			t.Errorf("COPY to a missing mailbox: %q", tagged)
		}
		// MOVE (RFC 6851 4.3): untagged OK [COPYUID], then EXPUNGE, then OK.
		u, tagged = r.cmd("MOVE 5 Dest")
		if len(u) != 2 || !strings.HasPrefix(u[0], "OK ") || imapCodeOf(u[0]) != fmt.Sprintf("COPYUID %d %d 4", dv, uids[4]) ||
			u[1] != "5 EXPUNGE" || !strings.HasPrefix(tagged, "OK") {
			t.Errorf("MOVE 5 Dest: %q %q", u, tagged)
		}
		if _, tagged := r.cmd("MOVE 1 Ghost"); !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "TRYCREATE" {
			t.Errorf("MOVE to a missing mailbox: %q", tagged)
		}
		// UID MOVE with imapclient, UID COPY.
		if _, err := c.Select("Src", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		md, err := c.Move(imap.UIDSetNum(uids[3]), "Dest").Wait()
		if err != nil || md.UIDValidity != dv || md.SourceUIDs.String() != fmt.Sprint(uids[3]) || md.DestUIDs.String() != "5" {
			t.Errorf("imapclient UID MOVE: %+v %v", md, err)
		}
		cd, err := c.Copy(imap.UIDSetNum(uids[2]), "Dest").Wait()
		if err != nil || cd.UIDValidity != dv || cd.SourceUIDs.String() != fmt.Sprint(uids[2]) || cd.DestUIDs.String() != "6" {
			t.Errorf("imapclient UID COPY: %+v %v", cd, err)
		}
		if err := c.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
		// r learns of the UID MOVE's expunge (message 4 of its 4).
		if u := r.ok("NOOP"); !slices.Equal(u, []string{"4 EXPUNGE"}) {
			t.Errorf("NOOP after another session's MOVE: %q", u)
		}
		// Contents: Src keeps 1,2,3; Dest has the copies and moves with
		// their flags, internal dates and bytes, read on the other
		// connection.
		if st := imapStatus(t, r, "Src", "MESSAGES"); st["MESSAGES"] != 3 {
			t.Errorf("STATUS Src: %v", st)
		}
		if _, err := other.Select("Dest", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		body := &imap.FetchItemBodySection{Peek: true}
		msgs, err := other.Fetch(imap.SeqSetNum(2, 3, 4, 5, 6), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		other.Unselect().Wait()
		if err != nil || len(msgs) != 5 {
			t.Fatalf("Dest: %d messages, %v", len(msgs), err)
		}
		for i, src := range []int{0, 1, 4, 3, 2} {
			m, f := msgs[i], imapFixtures[src]
			if m.UID != imap.UID(i+2) || string(m.FindBodySection(body)) != f.body || imapClientFlags(m.Flags) != imapClientFlags(f.flags) ||
				!m.InternalDate.Equal(f.date) {
				t.Errorf("Dest UID %d (from message %d): flags %v date %v", m.UID, src+1, m.Flags, m.InternalDate)
			}
		}
	})

	t.Run("EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT", func(t *testing.T) {
		_, uids := imapFill(t, c, "Exp")
		r := rawIMAPLogin(t, in, imapAlice)
		r.ok("SELECT Exp")
		r.ok(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
		u := r.ok("EXPUNGE")
		// Apply the EXPUNGE responses to the UID list: what is left must be
		// exactly the messages without \Deleted.
		left := slices.Clone(uids)
		for _, e := range u {
			var n int
			if _, err := fmt.Sscanf(e, "%d EXPUNGE", &n); err != nil || n < 1 || n > len(left) {
				t.Fatalf("EXPUNGE: %q", u)
			}
			left = slices.Delete(left, n-1, n)
		}
		if len(u) != 2 || !slices.Equal(left, []imap.UID{uids[0], uids[2], uids[4]}) {
			t.Errorf("EXPUNGE: %q leaves %v", u, left)
		}
		imapCheckUIDs(t, r, left)
		// UID EXPUNGE (RFC 4315 2.1): only the given UIDs, even though
		// others have \Deleted.
		r.ok(`STORE 1:3 +FLAGS.SILENT (\Deleted)`)
		if u := r.ok("UID EXPUNGE %d", uids[2]); !slices.Equal(u, []string{"2 EXPUNGE"}) {
			t.Errorf("UID EXPUNGE: %q", u)
		}
		imapCheckUIDs(t, r, []imap.UID{uids[0], uids[4]})
		if u := r.ok("UID EXPUNGE %d", uids[1]); len(u) != 0 { // already gone
			t.Errorf("UID EXPUNGE of an expunged UID: %q", u)
		}
		r.ok("CHECK")
		// UNSELECT expunges nothing (RFC 3691, RFC 9051 6.4.2).
		if u := r.ok("UNSELECT"); len(u) != 0 {
			t.Errorf("UNSELECT: %q", u)
		}
		if st := imapStatus(t, r, "Exp", "MESSAGES DELETED"); st["MESSAGES"] != 2 || st["DELETED"] != 2 {
			t.Errorf("after UNSELECT: %v", st)
		}
		// CLOSE after EXAMINE expunges nothing either; after SELECT it
		// removes \Deleted messages silently (RFC 9051 6.4.1).
		r.ok("EXAMINE Exp")
		if u := r.ok("CLOSE"); len(u) != 0 {
			t.Errorf("CLOSE (EXAMINE): %q", u)
		}
		if st := imapStatus(t, r, "Exp", "MESSAGES"); st["MESSAGES"] != 2 {
			t.Errorf("after CLOSE of EXAMINE: %v", st)
		}
		imapAppendRaw(t, r, "Exp", "", "Subject: keep\r\n\r\nkeep me\r\n")
		r.ok("SELECT Exp")
		if u := r.ok("CLOSE"); len(u) != 0 {
			t.Errorf("CLOSE: %q, want no EXPUNGE responses", u)
		}
		if _, tagged := r.cmd("NOOP"); !strings.HasPrefix(tagged, "OK") {
			t.Fatal(tagged)
		}
		if _, tagged := r.cmd("FETCH 1 FLAGS"); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("FETCH after CLOSE: %q", tagged)
		}
		if sd, err := other.Status("Exp", &imap.StatusOptions{NumMessages: true, NumDeleted: true}).Wait(); err != nil ||
			*sd.NumMessages != 1 || *sd.NumDeleted != 0 {
			t.Errorf("after CLOSE, second connection: %+v %v", sd, err)
		}
		// imapclient's EXPUNGE and UID EXPUNGE.
		if _, err := c.Select("Exp", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		if seqs, err := c.Expunge().Collect(); err != nil || !slices.Equal(seqs, []uint32{1}) {
			t.Errorf("imapclient EXPUNGE: %v %v", seqs, err)
		}
		if c.Mailbox().NumMessages != 0 {
			t.Errorf("imapclient sees %d messages", c.Mailbox().NumMessages)
		}
		c.Unselect().Wait()
	})

	t.Run("IDLE", func(t *testing.T) {
		_, uids := imapFill(t, c, "Idle")
		type event struct {
			exists  uint32
			expunge uint32
			fetch   uint32
		}
		events := make(chan event, 16)
		watcher := dialIMAPClient(t, in, imapAlice, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					events <- event{exists: *d.NumMessages}
				}
			},
			Expunge: func(seq uint32) { events <- event{expunge: seq} },
			Fetch: func(m *imapclient.FetchMessageData) {
				m.Collect()
				events <- event{fetch: m.SeqNum}
			},
		})
		if _, err := watcher.Select("Idle", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		idle, err := watcher.Idle()
		if err != nil {
			t.Fatal(err)
		}
		wait := func(what string, want event) {
			t.Helper()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case e := <-events:
					if e == want {
						return
					}
				case <-deadline:
					t.Fatalf("IDLE: no %s within 5s", what)
				}
			}
		}
		r := rawIMAPLogin(t, in, imapAlice)
		imapAppendRaw(t, r, "Idle", "", "Subject: during idle\r\n\r\nhello\r\n")
		wait("EXISTS 6 after APPEND", event{exists: 6})
		r.ok("SELECT Idle")
		r.ok(`UID STORE %d +FLAGS.SILENT (\Flagged)`, uids[1])
		wait("FETCH 2 after STORE", event{fetch: 2})
		r.ok(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uids[0])
		r.ok("EXPUNGE")
		wait("EXPUNGE 1", event{expunge: 1})
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatalf("IDLE ended: %v", err)
		}
		if n := watcher.Mailbox().NumMessages; n != 5 {
			t.Errorf("after IDLE: %d messages, want 5", n)
		}
		// Raw: "+ idling" at once, DONE answers OK.
		w := rawIMAPLogin(t, in, imapAlice)
		w.ok("SELECT Idle")
		tag := w.send("IDLE")
		if l := w.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		w.write("DONE\r\n")
		if u, tagged := w.until(tag); len(u) != 0 || !strings.HasPrefix(tagged, "OK") {
			t.Errorf("IDLE DONE: %q %q", u, tagged)
		}
	})
}

// imapCheckSelect compares SELECT's untagged responses with want, ignoring
// the human-readable text of the OK responses and the order.
func imapCheckSelect(t testing.TB, what string, got, want []string) {
	t.Helper()
	norm := func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			if strings.HasPrefix(s, "OK [") {
				s = s[:strings.IndexByte(s, ']')+1]
			}
			out[i] = s
		}
		slices.Sort(out)
		return out
	}
	if g, w := norm(got), norm(want); !slices.Equal(g, w) {
		t.Errorf("%s:\n got %q\nwant %q", what, g, w)
	}
}

// imapCheckUIDs checks sequence number n -> UID for the selected mailbox.
func imapCheckUIDs(t testing.TB, r *rawIMAP, want []imap.UID) {
	t.Helper()
	fs, _ := imapFetches(t, r.ok("FETCH 1:* (UID)"))
	var got []imap.UID
	for i, f := range fs {
		if f.Seq != uint32(i+1) {
			t.Errorf("FETCH 1:* answered sequence number %d at position %d", f.Seq, i+1)
		}
		n, _ := strconv.ParseUint(f.Items["UID"].Atom, 10, 32)
		got = append(got, imap.UID(n))
	}
	if !slices.Equal(got, want) {
		t.Errorf("UIDs by sequence number: %v, want %v", got, want)
	}
}
