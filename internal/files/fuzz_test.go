package files

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzJoin: whatever the working directory and argument, the result is
// absolute, clean, and has no ".." element, so rel can never name a path
// above the tree's top.
func FuzzJoin(f *testing.F) {
	for _, s := range [][2]string{
		{"/", ".."}, {"/a/b", "../../../../etc/passwd"}, {"/", "/.."}, {"/x", "..//..//./y"},
		{"", "a"}, {"/a", "b\\..\\..\\c"}, {"/", "~/x"}, {"/a", ".../...."}, {"/", "a\x00b"},
		{"/", "/" + tmpDir + "/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		p := Join(Join("/", cwd), arg)
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			t.Fatalf("Join(%q, %q) = %q: not absolute and clean", cwd, arg, p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." || el == "." {
				t.Fatalf("Join(%q, %q) = %q has %q", cwd, arg, p, el)
			}
		}
		r, err := rel("fuzz", p)
		if err != nil {
			return
		}
		if r == ".." || strings.HasPrefix(r, "../") || strings.HasPrefix(r, "/") || filepath.IsAbs(r) {
			t.Fatalf("rel(%q) = %q leaves the root", p, r)
		}
	})
}

// FuzzTreeNeverEscapes drives reads and writes with arbitrary paths at a
// tree whose neighbour holds a secret, with links planted to it: no read
// returns the secret and no write lands outside the tree.
func FuzzTreeNeverEscapes(f *testing.F) {
	for _, s := range []string{"../secret.txt", "/abs-out", "rel-out", "sub/rel-out", "dir-out/secret.txt",
		"dir-out/../secret.txt", "/etc/passwd", "sub/../../../secret.txt", "..", "/", tmpDir + "/../abs-out"} {
		f.Add("/sub", s)
	}
	s, dir := newStoreF(f)
	secret := plantOutsideF(f, s, dir)
	outside := filepath.Dir(dir)
	before := listDir(f, outside)
	tr, err := s.Tree(f.Context(), Account{Address: alice})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		p := Join(Join("/", cwd), arg)
		if fh, err := tr.Open(p); err == nil {
			b, _ := io.ReadAll(io.LimitReader(fh, 1<<20))
			fh.Close()
			if strings.Contains(string(b), "top secret") {
				t.Fatalf("read the secret through %q", p)
			}
		}
		tr.Stat(p)
		tr.ReadDir(p)
		if u, err := tr.Create(p+".new", Replace, 0); err == nil {
			u.Write([]byte("w"))
			u.Commit()
			tr.Remove(p + ".new")
		}
		if err := tr.Mkdir(p + ".d"); err == nil {
			tr.RemoveDir(p + ".d")
		}
		if after := listDir(t, outside); after != before {
			t.Fatalf("outside the tree changed via %q: %s -> %s", p, before, after)
		}
		if b, _ := os.ReadFile(secret); string(b) != "top secret" {
			t.Fatalf("secret changed via %q", p)
		}
	})
}

func listDir(t testing.TB, dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

func newStoreF(f *testing.F) (*Store, string) {
	dir := filepath.Join(f.TempDir(), "files")
	s, err := Open(Options{Dir: dir})
	if err != nil {
		f.Fatal(err)
	}
	return s, dir
}

func plantOutsideF(f *testing.F, s *Store, dir string) string {
	secretPath := filepath.Join(filepath.Dir(dir), "secret.txt")
	if err := os.WriteFile(secretPath, []byte("top secret"), 0o600); err != nil {
		f.Fatal(err)
	}
	tr, err := s.Tree(f.Context(), Account{Address: alice})
	if err != nil {
		f.Fatal(err)
	}
	tr.Mkdir("/sub")
	tr.Close()
	home := filepath.Join(dir, alice)
	for name, target := range map[string]string{
		"abs-out": secretPath, "rel-out": "../../secret.txt", "sub/rel-out": "../../../secret.txt",
		"dir-out": filepath.Dir(dir), "etc": "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(home, name)); err != nil {
			f.Fatal(err)
		}
	}
	return secretPath
}
