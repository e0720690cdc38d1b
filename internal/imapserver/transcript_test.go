package imapserver

import (
	"bytes"
	"errors"
	stdflag "flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"posta/internal/mailstore"
)

var updateTranscripts = stdflag.Bool("update", false, "rewrite the S: lines of testdata/transcripts from the server's replies")

// transcriptMail is what every transcript starts with: two messages in
// alice's INBOX (INTERNALDATE 01-Mar-2024 12:00:00 +0000), the second with
// a MIME structure, and one in Archive.
var transcriptMail = []string{
	"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: first\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <first@example.test>\r\n\r\nHello Alice.\r\n",
	"From: Carol <carol@example.test>\r\nTo: alice@example.test\r\nSubject: second\r\nDate: Tue, 8 Feb 1994 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=xyz\r\n\r\n--xyz\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain text\r\n--xyz\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>html</p>\r\n--xyz--\r\n",
}

// TestTranscripts replays testdata/transcripts/*.txt against a fresh
// server: C: lines are sent, S: lines must come back exactly and in order
// (RFC 9051's own notation; a literal's data is on the S: lines that
// follow its {n}), and the connection must be closed at the end. Lines
// starting with # are comments. Volatile values are placeholders:
// {UIDVALIDITY} is that of alice's INBOX, {UIDVALIDITY:name} that of her
// mailbox name (as it exists when the line is read). Every S: line
// must arrive within replyWait, so a reply the server holds back fails
// rather than stalls.
//
// With -update the S: lines are recorded from the server: after each C:
// line, whatever it sends until it has been quiet for a moment.
// Review the diff: a recording is only as right as the server was.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			replay(t, file)
		})
	}
}

func replay(t *testing.T, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	h := start(t)
	h.add(alice, "INBOX", transcriptMail...)
	h.add(alice, "Archive", testMsg(1))
	vars := func() *strings.Replacer { return uidValidities(t, h, false) }
	scrub := func() *strings.Replacer { return uidValidities(t, h, true) }
	c := h.dialRaw(t)
	if *updateTranscripts {
		record(t, c, file, lines, scrub)
		return
	}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "C: ") || l == "C:":
			c.write(strings.TrimPrefix(strings.TrimPrefix(l, "C:"), " ") + "\r\n")
		case strings.HasPrefix(l, "S: ") || l == "S:":
			want := vars().Replace(strings.TrimPrefix(strings.TrimPrefix(l, "S:"), " "))
			c.nc.SetReadDeadline(time.Now().Add(replyWait))
			got, err := c.rawLine()
			if err != nil {
				t.Fatalf("%s:%d: want %q, got %v (partial %q)", file, i+1, want, err, got)
			}
			if got != want {
				t.Fatalf("%s:%d:\n got %q\nwant %q", file, i+1, got, want)
			}
		}
	}
	c.nc.SetReadDeadline(time.Now().Add(replyWait))
	if l, err := c.rawLine(); err == nil {
		t.Fatalf("%s: the server sent more than the transcript says: %q", file, l)
	} else if !errors.Is(err, io.EOF) {
		t.Fatalf("%s: the connection is still open at the end of the transcript (%v)", file, err)
	}
}

// uidValidities maps placeholders to alice's mailboxes' UIDVALIDITY
// values as they are now (or back, for scrub).
func uidValidities(t *testing.T, h *harness, scrub bool) *strings.Replacer {
	boxes, err := h.store.Mailboxes(h.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, mb := range boxes {
		name := "{UIDVALIDITY:" + mb.Name + "}"
		if mb.Name == "INBOX" {
			name = "{UIDVALIDITY}"
		}
		if scrub {
			pairs = append(pairs, " "+fmt.Sprint(mb.UIDValidity)+" ", " "+name+" ",
				" "+fmt.Sprint(mb.UIDValidity)+"]", " "+name+"]", " "+fmt.Sprint(mb.UIDValidity)+")", " "+name+")")
		} else {
			pairs = append(pairs, name, fmt.Sprint(mb.UIDValidity))
		}
	}
	return strings.NewReplacer(pairs...)
}

// record rewrites file's S: lines from what the server says.
func record(t *testing.T, c *tconn, file string, lines []string, scrub func() *strings.Replacer) {
	var out []string
	quiet := func() {
		for {
			c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			l, err := c.rawLine()
			if err != nil {
				return
			}
			out = append(out, strings.TrimSuffix("S: "+scrub().Replace(l), " "))
		}
	}
	greeted := false
	for _, l := range lines {
		if !greeted && !strings.HasPrefix(l, "#") {
			quiet() // the greeting
			greeted = true
		}
		switch {
		case strings.HasPrefix(l, "S:"):
			continue
		case strings.HasPrefix(l, "C:"):
			c.write(strings.TrimPrefix(strings.TrimPrefix(l, "C:"), " ") + "\r\n")
			out = append(out, l)
			quiet()
		default:
			out = append(out, l)
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// recConn records what a client writes.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// TestIMAPClient drives a session with a third-party client (go-imap v2's
// imapclient): LIST, SELECT, APPEND, FETCH, STORE, SEARCH, IDLE with an
// update from another session, MOVE, EXPUNGE, LOGOUT, each result checked
// against the store. With -update, the bytes it sent are saved as
// testdata/clients/imapclient.txt, a FuzzSession seed.
func TestIMAPClient(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.add(alice, "INBOX", transcriptMail...)
	nc, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recConn{Conn: nc}
	var mu sync.Mutex
	var exists []uint32
	var expunged []uint32
	c := imapclient.New(rec, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(n uint32) { mu.Lock(); expunged = append(expunged, n); mu.Unlock() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				exists = append(exists, *d.NumMessages)
				mu.Unlock()
			}
		},
	}})
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.CapIMAP4rev2) || !c.Caps().Has(imap.CapIdle) {
		t.Fatalf("capabilities %v", c.Caps())
	}
	if err := c.Login(alice, testUsers[alice]).Wait(); err != nil {
		t.Fatal(err)
	}
	boxes, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
		if b.Mailbox == "INBOX" && (b.Status == nil || b.Status.NumMessages == nil || *b.Status.NumMessages != 2) {
			t.Errorf("LIST-STATUS of INBOX: %+v", b.Status)
		}
	}
	if want := []string{"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}; !slices.Equal(names, want) {
		t.Errorf("LIST: %v, want %v", names, want)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := h.mailbox(alice, "INBOX")
	if sel.NumMessages != 2 || sel.UIDValidity != mb.UIDValidity || sel.UIDNext != 3 {
		t.Fatalf("SELECT: %+v", sel)
	}
	msg := "From: alice@example.test\r\nSubject: draft\r\n\r\nNot sent yet.\r\n"
	app := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, imap.FlagSeen},
		Time: time.Date(2024, 3, 2, 10, 0, 0, 0, time.UTC)})
	if _, err := io.WriteString(app, msg); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if drafts, ms := h.mailbox(alice, "Drafts"); ad.UIDValidity != drafts.UIDValidity || len(ms) != 1 || uint32(ad.UID) != ms[0].UID ||
		ms[0].Flags.System != mailstore.Draft|mailstore.Seen {
		t.Fatalf("APPEND: %+v, store %+v", ad, ms)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText, Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[0].Envelope.Subject != "first" || msgs[1].Envelope.Subject != "second" ||
		msgs[0].RFC822Size != int64(len(transcriptMail[0])) || string(msgs[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true})) != "Hello Alice.\r\n" {
		t.Fatalf("FETCH: %+v", msgs)
	}
	if _, err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := sd.AllUIDs(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("UID SEARCH FLAGGED: %v", got)
	}
	// IDLE hears another session's APPEND.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	other := h.login(t, alice)
	if r := other.appendMsg("INBOX", "", testMsg(3)); !strings.HasPrefix(r, "OK") {
		t.Fatal(r)
	}
	waitFor(t, "EXISTS 3 during IDLE", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(exists, 3)
	})
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(1), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	gone, err := c.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("EXPUNGE: %v", gone)
	}
	if got := h.storeUIDs(alice, "INBOX"); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("INBOX after MOVE and EXPUNGE: %v", got)
	}
	if _, arch := h.mailbox(alice, "Archive"); len(arch) != 1 {
		t.Fatalf("Archive: %+v", arch)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if *updateTranscripts {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		text := strings.ReplaceAll(rec.out.String(), "\r\n", "\n")
		if err := os.WriteFile("testdata/clients/imapclient.txt", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
