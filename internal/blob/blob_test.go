package blob

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteCommitOpenRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("line\r\n", 1000)
	if _, err := io.Copy(w, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(body)) {
		t.Fatalf("size %d", w.Size())
	}
	// Not visible before commit.
	if _, err := s.Open(w.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("visible before commit: %v", err)
	}
	d, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(d); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err == nil {
		t.Fatal("second commit accepted")
	}
	f, err := s.Open(w.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, []byte(body)) {
		t.Fatal("body differs")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("temp files left: %v", ents)
	}
	if err := s.Remove(w.ID()); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(w.ID()); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := s.Open(w.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after remove: %v", err)
	}
}

func TestAbortAndCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create()
	w.Write([]byte("partial"))
	w.Abort()
	if _, err := s.Open(w.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatal("aborted body visible")
	}
	// A crash leaves a temp file; the next Open removes it.
	w2, _ := s.Create()
	w2.Write([]byte("never acknowledged"))
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("temp files survive reopen: %d", len(ents))
	}
}

func TestBadIDsNeverEscape(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []ID{"", "../../etc/passwd", "ABCDEF0123456789ABCDEF0123456789", ID(strings.Repeat("a", 31)), "00/" + ID(strings.Repeat("a", 29))} {
		if _, err := s.Open(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v", id, err)
		}
		if err := s.Remove(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%q) = %v", id, err)
		}
	}
}

func TestLinkIsIndependent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create()
	w.Write([]byte("shared body"))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	nid, dir, err := s.Link(w.ID())
	if err != nil || nid == w.ID() || dir == "" {
		t.Fatalf("Link = %q %q %v", nid, dir, err)
	}
	if err := s.Remove(w.ID()); err != nil {
		t.Fatal(err)
	}
	f, err := s.Open(nid)
	if err != nil {
		t.Fatalf("link gone with the original: %v", err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != "shared body" {
		t.Fatalf("link content %q", got)
	}
}
