package maildir

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	kw := []string{"$Label1", "", "work"}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"1700000000.M1P2.host:2,FRS", []string{`\Flagged`, `\Answered`, `\Seen`}},
		{"1700000000.M1P2.host,S=120,W=123:2,DTac", []string{`\Draft`, `\Deleted`, "$Label1", "work"}},
		{"1700000000.M1P2.host!2,S", []string{`\Seen`}},
		{"1700000000.M1P2.host:2,bz", nil}, // no name for b or z
		{"1700000000.M1P2.host", nil},
	} {
		if got := ParseFlags(c.name, kw); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseFlags(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestWriteThenRead: what Writer writes, Folders and Messages read back:
// bodies, dates, flags (keywords through dovecot-keywords) and subfolders.
func TestWriteThenRead(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	date := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	w, err := Create(root, "host/name:x")
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{"Subject: a\r\n\r\nA\r\n", "Subject: b\r\n\r\nB\r\n"}
	flags := [][]string{{`\Seen`, "$Label1", `\Flagged`}, {"work", `\Recent`, "$Label1"}}
	for i := range bodies {
		if err := w.Write(strings.NewReader(bodies[i]), date.Add(time.Duration(i)*time.Second), flags[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sub, err := Create(SubfolderDir(root, "Work/Entw&APw-rfe"), "host")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Write(strings.NewReader("x"), date, nil); err != nil {
		t.Fatal(err)
	}
	// Not folders: a dot directory without cur/new, and a plain file.
	os.Mkdir(filepath.Join(root, ".notafolder"), 0o700)
	os.WriteFile(filepath.Join(root, ".file"), nil, 0o600)

	folders, err := Folders(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) != 2 || folders[0].Name != "" || folders[1].Name != "Work/Entw&APw-rfe" {
		t.Fatalf("folders %+v", folders)
	}
	msgs, err := Messages(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	wantFlags := [][]string{{`\Flagged`, `\Seen`, "$Label1"}, {"$Label1", "work"}}
	for i, m := range msgs {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != bodies[i] || m.Size != int64(len(bodies[i])) {
			t.Errorf("message %d: %q (%d), want %q", i, b, m.Size, bodies[i])
		}
		if !m.Date.Equal(date.Add(time.Duration(i) * time.Second)) {
			t.Errorf("message %d date %v", i, m.Date)
		}
		if !reflect.DeepEqual(m.Flags, wantFlags[i]) {
			t.Errorf("message %d flags %v, want %v", i, m.Flags, wantFlags[i])
		}
		if strings.ContainsAny(filepath.Base(m.Path), "/") || strings.Count(filepath.Base(m.Path), ":") != 1 {
			t.Errorf("file name %q", filepath.Base(m.Path))
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ not empty: %v", entries)
	}
	if _, err := Folders(filepath.Join(root, "cur")); err == nil {
		t.Error("Folders of a directory without cur/ or new/ succeeded")
	}
}

// A message in new/ has no flags yet, whatever its name says.
func TestNewHasNoFlags(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"new", "cur", "tmp"} {
		os.Mkdir(filepath.Join(root, d), 0o700)
	}
	os.WriteFile(filepath.Join(root, "new", "1.M1.h:2,S"), []byte("x"), 0o600)
	msgs, err := Messages(root)
	if err != nil || len(msgs) != 1 || msgs[0].Flags != nil {
		t.Fatalf("%+v %v", msgs, err)
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add("1.M1.h:2,DFRST", "0 $Label1\n1 work\n")
	f.Add("x!2,abc", "")
	f.Add(":2,", "25 z\n")
	f.Fuzz(func(t *testing.T, name, kwfile string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "dovecot-keywords"), []byte(kwfile), 0o600)
		kw := Keywords(dir)
		if len(kw) > 26 {
			t.Fatalf("%d keywords", len(kw))
		}
		flags := ParseFlags(name, kw)
		if len(flags) > len(name) {
			t.Fatalf("%d flags from %q", len(flags), name)
		}
	})
}
