package files

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const alice = "alice@example.test"

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "files")
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func openTree(t *testing.T, s *Store, a Account) *Tree {
	t.Helper()
	tr, err := s.Tree(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func put(t *testing.T, tr *Tree, p, content string) {
	t.Helper()
	u, err := tr.Create(p, Replace, 0)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := u.ReadFrom(strings.NewReader(content)); err != nil {
		u.Abort()
		t.Fatalf("write %s: %v", p, err)
	}
	if err := u.Commit(); err != nil {
		t.Fatalf("commit %s: %v", p, err)
	}
}

func get(t *testing.T, tr *Tree, p string) string {
	t.Helper()
	f, err := tr.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJoin(t *testing.T) {
	for _, tc := range []struct{ cwd, arg, want string }{
		{"/", "", "/"},
		{"/", "a", "/a"},
		{"/a/b", "c", "/a/b/c"},
		{"/a/b", "..", "/a"},
		{"/a/b", "../../..", "/"},
		{"/a", "/etc/passwd", "/etc/passwd"},
		{"/a", "../../etc/passwd", "/etc/passwd"},
		{"/a", "./x//y/./", "/a/x/y"},
		{"/", "/..", "/"},
		{"", "x", "/x"},
		{"rel", "x", "/rel/x"},
		{"/a", "b\\..\\c", "/a/b\\..\\c"}, // a backslash is a name character on Unix
	} {
		if got := Join(tc.cwd, tc.arg); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.cwd, tc.arg, got, tc.want)
		}
	}
}

// plantOutside makes a secret file next to the store's directory and links
// to it from inside alice's tree, as an attacker with shell access (or a
// careless admin) might.
func plantOutside(t *testing.T, s *Store, dir string) (secret string) {
	t.Helper()
	secretPath := filepath.Join(filepath.Dir(dir), "secret.txt")
	if err := os.WriteFile(secretPath, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := openTree(t, s, Account{Address: alice})
	tr.Mkdir("/sub")
	home := filepath.Join(dir, alice)
	for name, target := range map[string]string{
		"abs-out":     secretPath,
		"rel-out":     "../../secret.txt",
		"sub/rel-out": "../../../secret.txt",
		"dir-out":     filepath.Dir(dir),
		"etc":         "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(home, name)); err != nil {
			t.Fatal(err)
		}
	}
	return secretPath
}

func TestTraversalStaysInside(t *testing.T) {
	s, dir := newStore(t)
	plantOutside(t, s, dir)
	tr := openTree(t, s, Account{Address: alice})
	put(t, tr, "/inside.txt", "inside")
	if err := os.Symlink("inside.txt", filepath.Join(dir, alice, "link-in")); err != nil {
		t.Fatal(err)
	}

	// Paths with .. are cleaned to the top of the tree, never above it.
	for _, p := range []string{"../../secret.txt", "/../../../secret.txt", "sub/../../secret.txt"} {
		cp := Join("/sub", p)
		if _, err := tr.Open(cp); !errors.Is(err, ErrNotExist) {
			t.Errorf("Open(%q -> %q) = %v, want ErrNotExist", p, cp, err)
		}
	}
	// Links that lead out are refused by the jail.
	for _, p := range []string{"/abs-out", "/rel-out", "/sub/rel-out", "/dir-out/secret.txt", "/etc/passwd"} {
		if f, err := tr.Open(p); !errors.Is(err, ErrOutside) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrOutside", p, err)
		}
		if _, err := tr.Stat(p); !errors.Is(err, ErrOutside) {
			t.Errorf("Stat(%q) = %v, want ErrOutside", p, err)
		}
	}
	// Writing through an outward link is refused too.
	if u, err := tr.Create("/dir-out/new.txt", Replace, 0); err == nil {
		u.Abort()
		t.Error("created a file through a link leading outside")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "new.txt")); err == nil {
		t.Error("a file appeared outside the tree")
	}
	// A link inside the tree works and is listed as its target; outward
	// ones are not listed at all.
	if got := get(t, tr, "/link-in"); got != "inside" {
		t.Errorf("link-in = %q", got)
	}
	ents, err := tr.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "inside.txt,link-in,sub" {
		t.Errorf("listing = %v, want inside.txt,link-in,sub (outward links and %s hidden)", names, tmpDir)
	}
	// NUL never reaches the OS.
	if _, err := tr.Stat("/a\x00b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NUL: %v", err)
	}
}

func TestHiddenUploadDir(t *testing.T) {
	s, _ := newStore(t)
	tr := openTree(t, s, Account{Address: alice})
	u, err := tr.Create("/f", Replace, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	for _, p := range []string{"/" + tmpDir, "/" + tmpDir + "/x", "/a/../" + tmpDir} {
		if _, err := tr.Stat(p); !errors.Is(err, ErrPermission) {
			t.Errorf("Stat(%q) = %v, want ErrPermission", p, err)
		}
	}
	if err := tr.Rename("/f", "/"+tmpDir+"/g"); !errors.Is(err, ErrPermission) {
		t.Errorf("rename into the upload dir: %v", err)
	}
	ents, _ := tr.ReadDir("/")
	if len(ents) != 0 {
		t.Errorf("listing shows %v during an upload", ents)
	}
}

func TestAtomicReplace(t *testing.T) {
	s, dir := newStore(t)
	tr := openTree(t, s, Account{Address: alice})
	put(t, tr, "/doc.txt", "version one")
	u, err := tr.Create("/doc.txt", Replace, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("version two, longer")); err != nil {
		t.Fatal(err)
	}
	// Until Commit, readers see the old file whole.
	if got := get(t, tr, "/doc.txt"); got != "version one" {
		t.Fatalf("during upload: %q", got)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, tr, "/doc.txt"); got != "version two, longer" {
		t.Fatalf("after commit: %q", got)
	}
	// An aborted upload leaves the old file and no temporary file.
	u, err = tr.Create("/doc.txt", Replace, 0)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("broken"))
	u.Abort()
	if got := get(t, tr, "/doc.txt"); got != "version two, longer" {
		t.Fatalf("after abort: %q", got)
	}
	left, _ := os.ReadDir(filepath.Join(dir, alice, tmpDir))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if used, _ := tr.Usage(); used != int64(len("version two, longer")) {
		t.Fatalf("usage = %d", used)
	}
	// Replacing a directory is refused before any byte.
	tr.Mkdir("/d")
	if _, err := tr.Create("/d", Replace, 0); !errors.Is(err, ErrIsDir) {
		t.Fatalf("create over a directory: %v", err)
	}
	if _, err := tr.Create("/nodir/x", Replace, 0); !errors.Is(err, ErrNotExist) {
		t.Fatalf("create in a missing directory: %v", err)
	}
}

func TestResumeAppendUnique(t *testing.T) {
	s, _ := newStore(t)
	tr := openTree(t, s, Account{Address: alice})
	put(t, tr, "/r", "0123456789")
	u, err := tr.Create("/r", Resume, 4)
	if err != nil {
		t.Fatal(err)
	}
	if u.Offset() != 4 {
		t.Fatalf("offset %d", u.Offset())
	}
	u.ReadFrom(strings.NewReader("abc"))
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, tr, "/r"); got != "0123abc" {
		t.Fatalf("resume: %q", got)
	}
	if _, err := tr.Create("/r", Resume, 8); !errors.Is(err, ErrBadOffset) {
		t.Fatalf("resume past the end: %v", err)
	}
	u, _ = tr.Create("/r", Append, 0)
	u.Write([]byte("XY"))
	u.Commit()
	if got := get(t, tr, "/r"); got != "0123abcXY" {
		t.Fatalf("append: %q", got)
	}
	// An interrupted append keeps what arrived.
	u, _ = tr.Create("/r", Append, 0)
	u.Write([]byte("Z"))
	u.Abort()
	if got := get(t, tr, "/r"); got != "0123abcXYZ" {
		t.Fatalf("aborted append: %q", got)
	}
	u1, err := tr.Create("/r", Unique, 0)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := tr.Create("/r", Unique, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u1.Name() != "/r.1" || u2.Name() != "/r.2" {
		t.Fatalf("unique names %q %q", u1.Name(), u2.Name())
	}
	u1.Write([]byte("one"))
	u1.Commit()
	u2.Abort()
	if got := get(t, tr, "/r.1"); got != "one" {
		t.Fatalf("unique: %q", got)
	}
	if _, err := tr.Stat("/r.2"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("aborted unique upload left %v", err)
	}
	if used, _ := tr.Usage(); used != int64(len("0123abcXYZ")+3) {
		t.Fatalf("usage %d", used)
	}
}

func TestQuota(t *testing.T) {
	s, _ := newStore(t)
	tr := openTree(t, s, Account{Address: alice, QuotaBytes: 1000})
	put(t, tr, "/a", strings.Repeat("a", 600))
	// 600 more do not fit: refused, nothing left behind, usage unchanged.
	u, err := tr.Create("/b", Replace, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := u.ReadFrom(strings.NewReader(strings.Repeat("b", 600)))
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("ReadFrom over quota = %d, %v", n, err)
	}
	u.Abort()
	if used, _ := tr.Usage(); used != 600 {
		t.Fatalf("usage after refused upload = %d", used)
	}
	if _, err := tr.Stat("/b"); !errors.Is(err, ErrNotExist) {
		t.Fatal("refused upload visible")
	}
	// Exactly filling the quota is fine.
	put(t, tr, "/c", strings.Repeat("c", 400))
	if used, _ := tr.Usage(); used != 1000 {
		t.Fatalf("usage = %d", used)
	}
	// A full quota refuses a new upload up front...
	if _, err := tr.Create("/d", Replace, 0); !errors.Is(err, ErrQuota) {
		t.Fatalf("create with full quota: %v", err)
	}
	if err := tr.CheckSpace(1); !errors.Is(err, ErrQuota) {
		t.Fatalf("CheckSpace: %v", err)
	}
	// ...but replacing a file may reuse its space.
	put(t, tr, "/a", strings.Repeat("A", 550))
	if used, _ := tr.Usage(); used != 950 {
		t.Fatalf("usage after shrinking replace = %d", used)
	}
	// Deleting frees.
	if err := tr.Remove("/c"); err != nil {
		t.Fatal(err)
	}
	if used, _ := tr.Usage(); used != 550 {
		t.Fatalf("usage after delete = %d", used)
	}
	// Rename over a file frees the replaced one.
	put(t, tr, "/x", "12345")
	if err := tr.Rename("/x", "/a"); err != nil {
		t.Fatal(err)
	}
	if used, _ := tr.Usage(); used != 5 {
		t.Fatalf("usage after rename over = %d", used)
	}
	// A second session of the same account shares the counter.
	tr2 := openTree(t, s, Account{Address: alice, QuotaBytes: 1000})
	if used, _ := tr2.Usage(); used != 5 {
		t.Fatalf("second session sees %d", used)
	}
}

// Concurrent uploads of one account never pass its quota together.
func TestQuotaConcurrent(t *testing.T) {
	s, dir := newStore(t)
	const quota = 20 << 20
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, err := s.Tree(context.Background(), Account{Address: alice, QuotaBytes: quota})
			if err != nil {
				errs[i] = err
				return
			}
			defer tr.Close()
			u, err := tr.Create("/f"+string(rune('0'+i)), Replace, 0)
			if err != nil {
				errs[i] = err
				return
			}
			if _, err := u.ReadFrom(io.LimitReader(zeros{}, 5<<20)); err != nil {
				u.Abort()
				errs[i] = err
				return
			}
			errs[i] = u.Commit()
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrQuota):
			t.Fatalf("unexpected error %v", err)
		}
	}
	var onDisk int64
	filepath.WalkDir(filepath.Join(dir, alice), func(p string, d fs.DirEntry, err error) error {
		if d.Type().IsRegular() {
			fi, _ := d.Info()
			onDisk += fi.Size()
		}
		return nil
	})
	if ok != 4 || onDisk != 4*(5<<20) {
		t.Fatalf("%d uploads of 5 MiB succeeded under a 20 MiB quota, %d bytes on disk", ok, onDisk)
	}
	u, _ := s.Usage(context.Background(), alice)
	if u != onDisk {
		t.Fatalf("counter %d, disk %d", u, onDisk)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFirstUseCountsAndSweeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	home := filepath.Join(dir, alice)
	os.MkdirAll(filepath.Join(home, "deep", "er"), 0o755)
	os.MkdirAll(filepath.Join(home, tmpDir), 0o700)
	os.WriteFile(filepath.Join(home, "deep", "er", "f"), make([]byte, 1234), 0o644)
	os.WriteFile(filepath.Join(home, "g"), make([]byte, 100), 0o644)
	os.WriteFile(filepath.Join(home, tmpDir, "upload-crashed"), make([]byte, 999), 0o644)
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tr := openTree(t, s, Account{Address: alice})
	if used, _ := tr.Usage(); used != 1334 {
		t.Fatalf("usage %d, want 1334 (crashed upload swept)", used)
	}
	if _, err := os.Stat(filepath.Join(home, tmpDir, "upload-crashed")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("leftover upload not swept")
	}
}

func TestReadOnly(t *testing.T) {
	s, _ := newStore(t)
	rw := openTree(t, s, Account{Address: alice})
	put(t, rw, "/f", "data")
	rw.Mkdir("/d")
	tr := openTree(t, s, Account{Address: alice, ReadOnly: true})
	if got := get(t, tr, "/f"); got != "data" {
		t.Fatal(got)
	}
	for name, err := range map[string]error{
		"mkdir":   tr.Mkdir("/e"),
		"remove":  tr.Remove("/f"),
		"rmdir":   tr.RemoveDir("/d"),
		"rename":  tr.Rename("/f", "/g"),
		"chmod":   tr.Chmod("/f", 0o600),
		"chtimes": tr.Chtimes("/f", time.Now()),
		"alloc":   tr.CheckSpace(1),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
	for _, m := range []WriteMode{Replace, Append, Resume, Unique} {
		if _, err := tr.Create("/f", m, 0); !errors.Is(err, ErrReadOnly) {
			t.Errorf("create mode %d: %v", m, err)
		}
	}
	if got := get(t, rw, "/f"); got != "data" {
		t.Fatal("changed")
	}
}

func TestTreeOperations(t *testing.T) {
	s, _ := newStore(t)
	tr := openTree(t, s, Account{Address: alice})
	if err := tr.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Mkdir("/d"); !errors.Is(err, ErrExist) {
		t.Fatalf("mkdir twice: %v", err)
	}
	put(t, tr, "/d/f", "x")
	if err := tr.RemoveDir("/d"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := tr.RemoveDir("/d/f"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("rmdir file: %v", err)
	}
	if err := tr.Remove("/d"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("remove dir: %v", err)
	}
	if _, err := tr.Open("/d"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("open dir: %v", err)
	}
	if _, err := tr.ReadDir("/d/f"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("list file: %v", err)
	}
	if err := tr.Rename("/d/f", "/g"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Rename("/g", "/g"); err != nil {
		t.Fatalf("rename onto itself: %v", err)
	}
	if used, _ := tr.Usage(); used != 1 {
		t.Fatalf("usage after self-rename %d", used)
	}
	if err := tr.Rename("/nope", "/x"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("rename missing: %v", err)
	}
	if err := tr.Chmod("/g", 0o600); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := tr.Chtimes("/g", when); err != nil {
		t.Fatal(err)
	}
	fi, err := tr.Stat("/g")
	if err != nil || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(when) {
		t.Fatalf("stat %v %v", fi, err)
	}
	if err := tr.RemoveDir("/d"); err != nil {
		t.Fatal(err)
	}
	if fi, err := tr.Stat("/"); err != nil || fi.Name() != "/" || !fi.IsDir() {
		t.Fatalf("stat / = %v %v", fi, err)
	}
}

func TestAnonymous(t *testing.T) {
	pub := t.TempDir()
	os.WriteFile(filepath.Join(pub, "readme"), []byte("hello"), 0o644)
	s, err := Open(Options{Dir: filepath.Join(t.TempDir(), "files"), AnonymousDir: pub})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.AnonymousTree()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := get(t, tr, "/readme"); got != "hello" {
		t.Fatal(got)
	}
	if _, err := tr.Create("/x", Replace, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
	s2, _ := newStore(t)
	if _, err := s2.AnonymousTree(); !errors.Is(err, ErrNoAnonymous) {
		t.Fatal(err)
	}
}

func TestBadAddress(t *testing.T) {
	s, _ := newStore(t)
	for _, a := range []string{"", "..", "../x", "a/b", ".hidden", "a\x00b"} {
		if tr, err := s.Tree(context.Background(), Account{Address: a}); err == nil {
			tr.Close()
			t.Errorf("Tree(%q) accepted", a)
		}
	}
}

// ReadFrom a TCP connection (the zero-copy path) and through a caller's
// LimitedReader (how the FTP server applies per-chunk deadlines).
func TestReadFromTCP(t *testing.T) {
	s, _ := newStore(t)
	tr := openTree(t, s, Account{Address: alice, QuotaBytes: 64 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		c.Write(data)
		c.Close()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := tr.Create("/big", Replace, 0)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for {
		lr := &io.LimitedReader{R: c.(*net.TCPConn), N: 1 << 20}
		n, err := u.ReadFrom(lr)
		total += n
		if err != nil {
			t.Fatal(err)
		}
		if lr.N != 1<<20-n {
			t.Fatalf("caller's LimitedReader not advanced: N=%d after %d", lr.N, n)
		}
		if lr.N > 0 {
			break
		}
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if total != int64(len(data)) || get(t, tr, "/big") != string(data) {
		t.Fatalf("copied %d of %d", total, len(data))
	}
	if used, _ := tr.Usage(); used != int64(len(data)) {
		t.Fatalf("usage %d", used)
	}
}
