package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// writeFile writes body to path with the given modification time.
func writeFile(t *testing.T, path, body string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type imported struct {
	flags []string
	date  time.Time
	body  string
}

// fetchAll reads every message of a folder over IMAP, by UID.
func fetchAll(t *testing.T, c *imapclient.Client, folder string) []imported {
	t.Helper()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("SELECT %s: %v", folder, err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatalf("FETCH in %s: %v", folder, err)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	var out []imported
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			fl = append(fl, string(f))
		}
		slices.Sort(fl)
		out = append(out, imported{flags: fl, date: m.InternalDate.UTC(), body: string(m.FindBodySection(body))})
	}
	return out
}

// TestMailImportExport imports a Dovecot-style Maildir and an mbox with
// "posta mail import", reads the result over IMAP from "posta serve",
// refuses to import while it runs, then exports and checks the Maildir.
func TestMailImportExport(t *testing.T) {
	work := t.TempDir()
	data := filepath.Join(work, "data")
	port := freePort(t)
	cfgFile := filepath.Join(work, "posta.toml")
	cfgText := fmt.Sprintf("data_dir = %q\nbind_address = \"127.0.0.1\"\nallow_plaintext_auth = true\n"+
		"[imap]\nport = %d\ntls_port = 0\n[smtp]\nenabled = false\n[pop3]\nenabled = false\n[ftp]\nenabled = false\n[sftp]\nenabled = false\n",
		data, port)
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	c := "--config=" + cfgFile
	ok(t, "", "domain", "add", "example.test", c)
	ok(t, "alice-password\n", "user", "add", "alice@example.test", "--password-stdin", c)

	// A Maildir as Dovecot leaves it: LF line ends, flags and a keyword
	// letter in cur/, a message in new/, a Maildir++ subfolder whose name
	// is modified UTF-7.
	md := filepath.Join(work, "Maildir")
	d1 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	d2 := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	d3 := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	writeFile(t, filepath.Join(md, "cur", "1704164645.M1P1.old:2,FSa"), "Subject: one\n\nfirst\n", d1)
	writeFile(t, filepath.Join(md, "new", "1706933106.M2P1.old"), "Subject: two\n\nsecond\n", d2)
	writeFile(t, filepath.Join(md, "dovecot-keywords"), "0 $Label1\n", d1)
	os.MkdirAll(filepath.Join(md, "tmp"), 0o700)
	writeFile(t, filepath.Join(md, ".Work.Entw&APw-rfe", "cur", "1709528767.M3P1.old:2,RS"), "Subject: three\r\n\r\nthird\r\n", d3)
	// An mbox as Thunderbird or mutt writes it.
	mb := filepath.Join(work, "archive.mbox")
	writeFile(t, mb, "From a@example.net Mon Jan  1 10:00:00 2018\nSubject: old\nStatus: RO\nX-Status: A\n\n"+
		">From here on\nbody\n\nFrom b@example.net Tue Jan  2 11:00:00 2018\nSubject: older\n\nx\n\n", d1)

	out := ok(t, "", "mail", "import", "alice@example.test", md, c)
	if !strings.Contains(out, "imported 3 messages") {
		t.Errorf("import said %q", out)
	}
	ok(t, "", "mail", "import", "--into", "Archive/2018", "alice@example.test", mb, c)
	fails(t, "", "no such account", "mail", "import", "nobody@example.test", md, c)
	fails(t, "", "no cur/ or new/", "mail", "import", "alice@example.test", filepath.Join(md, "cur"), c)

	cmd, _ := startServe(t, "--config", cfgFile)
	// While the server runs, an import would write behind its back.
	fails(t, "", "stop the server first", "mail", "import", "alice@example.test", mb, c)
	cl, err := imapclient.DialInsecure(fmt.Sprintf("127.0.0.1:%d", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Login("alice@example.test", "alice-password").Wait(); err != nil {
		t.Fatal(err)
	}
	// UTF-8 folder names on the wire (RFC 6855), as imapclient sends them.
	if _, err := cl.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatal(err)
	}
	inbox := fetchAll(t, cl, "INBOX")
	want := []imported{
		{[]string{"$Label1", `\Flagged`, `\Seen`}, d1, "Subject: one\r\n\r\nfirst\r\n"},
		{nil, d2, "Subject: two\r\n\r\nsecond\r\n"},
	}
	check := func(folder string, got, want []imported) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d: %+v", folder, len(got), len(want), got)
		}
		for i := range want {
			if !slices.Equal(got[i].flags, want[i].flags) || !got[i].date.Equal(want[i].date) || got[i].body != want[i].body {
				t.Errorf("%s message %d: %+v, want %+v", folder, i+1, got[i], want[i])
			}
		}
	}
	check("INBOX", inbox, want)
	check("Work/Entwürfe", fetchAll(t, cl, "Work/Entwürfe"), []imported{{[]string{`\Answered`, `\Seen`}, d3, "Subject: three\r\n\r\nthird\r\n"}})
	check("Archive/2018", fetchAll(t, cl, "Archive/2018"), []imported{
		{[]string{`\Answered`, `\Seen`}, time.Date(2018, 1, 1, 10, 0, 0, 0, time.UTC), "Subject: old\r\n\r\nFrom here on\r\nbody\r\n"},
		{nil, time.Date(2018, 1, 2, 11, 0, 0, 0, time.UTC), "Subject: older\r\n\r\nx\r\n"},
	})
	cl.Logout().Wait()
	cl.Close()
	stopServe(t, cmd, syscall.SIGTERM)

	// Export, then check the Maildir file by file.
	exp := filepath.Join(work, "export")
	out = ok(t, "", "mail", "export", "alice@example.test", exp, c)
	if !strings.Contains(out, "exported 5 messages") {
		t.Errorf("export said %q", out)
	}
	type file struct {
		flags, body string
		date        time.Time
	}
	read := func(dir string) []file {
		t.Helper()
		entries, err := os.ReadDir(filepath.Join(dir, "cur"))
		if err != nil {
			t.Fatal(err)
		}
		var out []file
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, "cur", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			info, _ := e.Info()
			_, flags, _ := strings.Cut(e.Name(), ":2,")
			out = append(out, file{flags, string(b), info.ModTime().UTC()})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].date.Before(out[j].date) })
		return out
	}
	got := read(exp)
	if len(got) != 2 || got[0] != (file{"FSa", "Subject: one\r\n\r\nfirst\r\n", d1}) || got[1] != (file{"", "Subject: two\r\n\r\nsecond\r\n", d2}) {
		t.Errorf("exported INBOX %+v", got)
	}
	if kw, _ := os.ReadFile(filepath.Join(exp, "dovecot-keywords")); string(kw) != "0 $Label1\n" {
		t.Errorf("dovecot-keywords %q", kw)
	}
	if got := read(filepath.Join(exp, ".Work.Entw&APw-rfe")); len(got) != 1 || got[0].flags != "RS" {
		t.Errorf("exported Work/Entwürfe %+v", got)
	}
	if got := read(filepath.Join(exp, ".Archive.2018")); len(got) != 2 {
		t.Errorf("exported Archive/2018 %+v", got)
	}
	// What was exported imports again.
	ok(t, "bob-password\n", "user", "add", "bob@example.test", "--password-stdin", c)
	out = ok(t, "", "mail", "import", "bob@example.test", exp, c)
	if !strings.Contains(out, "imported 5 messages") {
		t.Errorf("re-import said %q", out)
	}
}
