package e2e

// curl as an IMAP client (imaps:// and imap:// with --ssl-reqd): LIST,
// FETCH by UID byte for byte, APPEND by upload, SEARCH, EXAMINE, refused
// logins.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"posta/internal/postatest"
)

func TestCurlIMAP(t *testing.T) {
	curl := requireTool(t, "curl")
	in := postatest.Start(t)
	m1 := "From: a@remote.test\r\nTo: bob@example.test\r\nSubject: first hello\r\n\r\nOne.\r\n"
	m2 := "From: b@remote.test\r\nTo: bob@example.test\r\nSubject: second hello\r\n\r\nTwo.\r\n.leading dot\r\n"
	imapDeliver(t, in, imapBob, m1, 1)
	msgs := imapDeliver(t, in, imapBob, m2, 2)
	imaps := fmt.Sprintf("imaps://localhost:%d/", in.Port(t, "imaps"))
	imapURL := fmt.Sprintf("imap://localhost:%d/", in.Port(t, "imap"))
	user := imapBob + ":" + postatest.Users[imapBob]

	// What a raw session answers, to compare curl's output with.
	r := rawIMAPLogin(t, in, imapBob)
	var list strings.Builder
	for _, u := range r.ok(`LIST "" *`) {
		list.WriteString("* " + u + "\r\n")
	}

	t.Run("LIST", func(t *testing.T) {
		// curl prints the untagged LIST responses of LIST "" *.
		for _, args := range [][]string{
			{"-u", user, imaps},
			{"--ssl-reqd", "-u", user, imapURL}, // STARTTLS
		} {
			out, err := curlRun(t, in, args...)
			if err != nil || out != list.String() {
				t.Errorf("curl %v: %v\n got %q\nwant %q", args, err, out, list.String())
			}
		}
		// --insecure instead of the CA file.
		out, err := exec.Command(curl, "-sS", "--insecure", "--max-time", "30", "-u", user, imaps).Output()
		if err != nil || string(out) != list.String() {
			t.Errorf("curl --insecure: %v %q", err, out)
		}
	})

	t.Run("FETCH by UID", func(t *testing.T) {
		c := dialIMAPClient(t, in, imapBob, nil)
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		body := &imap.FetchItemBodySection{Peek: true}
		got, err := c.Fetch(imap.UIDSetNum(1, 2), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil || len(got) != 2 {
			t.Fatalf("imapclient FETCH: %v", err)
		}
		for i, m := range got {
			out, err := curlRun(t, in, "-u", user, fmt.Sprintf("%sINBOX;UID=%d", imaps, m.UID))
			if err != nil {
				t.Fatalf("curl FETCH UID %d: %v\n%s", m.UID, err, out)
			}
			if out != string(m.FindBodySection(body)) || out != string(msgs[i]) {
				t.Errorf("curl FETCH UID %d: %d octets, BODY[] has %d, the store %d", m.UID, len(out), len(m.FindBodySection(body)), len(msgs[i]))
			}
		}
		// Over STARTTLS, with a section.
		out, err := curlRun(t, in, "--ssl-reqd", "-u", user, imapURL+"INBOX;UID=2;SECTION=TEXT")
		if want := "Two.\r\n.leading dot\r\n"; err != nil || out != want {
			t.Errorf("curl FETCH UID 2 TEXT: %v %q, want %q", err, out, want)
		}
	})

	t.Run("SEARCH", func(t *testing.T) {
		for _, c := range []struct{ query, want string }{
			{"SUBJECT%20second", "* SEARCH 2\r\n"},
			{"SUBJECT%20hello", "* SEARCH 1 2\r\n"},
			{"FROM%20nobody", "* SEARCH\r\n"},
		} {
			out, err := curlRun(t, in, "-u", user, imaps+"INBOX?"+c.query)
			if err != nil || out != c.want {
				t.Errorf("curl SEARCH %s: %v %q, want %q", c.query, err, out, c.want)
			}
		}
		// A custom command in the selected mailbox (-X on a mailbox URL).
		out, err := curlRun(t, in, "-u", user, "-X", "UID SEARCH ALL", imaps+"INBOX")
		if err != nil || out != "* SEARCH 1 2\r\n" {
			t.Errorf("curl -X 'UID SEARCH ALL': %v %q", err, out)
		}
	})

	t.Run("EXAMINE", func(t *testing.T) {
		defer r.bind(t)()
		st := imapStatus(t, r, "INBOX", "UIDVALIDITY UIDNEXT")
		out, err := curlRun(t, in, "-u", user, "-X", "EXAMINE INBOX", imaps)
		if err != nil {
			t.Fatalf("curl EXAMINE: %v\n%s", err, out)
		}
		for _, want := range []string{"* 2 EXISTS\r\n", fmt.Sprintf("* OK [UIDVALIDITY %d]", st["UIDVALIDITY"]),
			fmt.Sprintf("* OK [UIDNEXT %d]", st["UIDNEXT"]), "* OK [PERMANENTFLAGS ()]"} {
			if !strings.Contains(out, want) {
				t.Errorf("curl EXAMINE INBOX: no %q in\n%s", want, out)
			}
		}
	})

	t.Run("APPEND by upload", func(t *testing.T) {
		up := "From: bob@example.test\r\nTo: bob@example.test\r\nSubject: uploaded by curl\r\n\r\nbody\r\n.dot line\r\n"
		file := filepath.Join(t.TempDir(), "up.eml")
		if err := os.WriteFile(file, []byte(up), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := curlRun(t, in, "-u", user, "-T", file, imaps+"INBOX"); err != nil {
			t.Fatalf("curl APPEND: %v\n%s", err, out)
		}
		if out, err := curlRun(t, in, "--ssl-reqd", "-u", user, "-T", file, imapURL+"Archive"); err != nil {
			t.Fatalf("curl APPEND over STARTTLS: %v\n%s", err, out)
		}
		// Read back on another connection, and from the store.
		c := dialIMAPClient(t, in, imapBob, nil)
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		body := &imap.FetchItemBodySection{Peek: true}
		got, err := c.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil || len(got) != 1 || string(got[0].FindBodySection(body)) != up || got[0].RFC822Size != int64(len(up)) {
			t.Errorf("the uploaded message over IMAP: %v %v", got, err)
		}
		for _, mb := range []string{"INBOX", "Archive"} {
			stored := in.Messages(t, imapBob, mb)
			if len(stored) == 0 || !bytes.Equal(stored[len(stored)-1], []byte(up)) {
				t.Errorf("%s in the store: %d messages, last not the upload", mb, len(stored))
			}
		}
		// And curl fetches it back the same.
		if out, err := curlRun(t, in, "-u", user, imaps+"INBOX;UID=3"); err != nil || out != up {
			t.Errorf("curl FETCH of the upload: %v %q", err, out)
		}
	})

	t.Run("refused logins", func(t *testing.T) {
		// A wrong password: curl's "login denied" (67).
		if out, err := curlRun(t, in, "-u", imapBob+":wrong", imaps); exitCode(err) != 67 {
			t.Errorf("wrong password: exit %d\n%s", exitCode(err), out)
		}
		// imap:// without TLS: LOGINDISABLED, no mechanism, no login.
		if out, err := curlRun(t, in, "-u", user, imapURL); err == nil {
			t.Errorf("login without TLS succeeded:\n%s", out)
		}
	})
}
