package sftpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/directory"
)

func TestPutGetListRenameRemove(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)

	if err := c.Mkdir("/docs"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	put(t, c, "/docs/a.bin", data)
	if got := get(t, c, "docs/a.bin"); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes, not what was put", len(got))
	}
	// The bytes are in alice's tree on disk, nowhere else.
	if disk, err := os.ReadFile(e.treeFile(alice, "docs/a.bin")); err != nil || !bytes.Equal(disk, data) {
		t.Fatalf("on disk: %d bytes, %v", len(disk), err)
	}
	put(t, c, "/docs/b.txt", []byte("bee"))
	ents, err := c.ReadDir("/docs")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range ents {
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "a.bin,b.txt" {
		t.Fatalf("listing = %v", names)
	}
	root, err := c.ReadDir("/")
	if err != nil || len(root) != 1 || root[0].Name() != "docs" || !root[0].IsDir() {
		t.Fatalf("root listing = %v, %v (the upload directory must not show)", root, err)
	}

	// draft-02 6.5: plain RENAME onto an existing name fails...
	err = c.Rename("/docs/b.txt", "/docs/a.bin")
	if statusCode(err) != fxFailure || !strings.Contains(err.Error(), "target exists") {
		t.Fatalf("rename onto existing: %v; want FAILURE target exists", err)
	}
	if got := get(t, c, "/docs/a.bin"); !bytes.Equal(got, data) {
		t.Fatal("refused rename changed the target")
	}
	// ...posix-rename@openssh.com replaces.
	if err := c.PosixRename("/docs/b.txt", "/docs/a.bin"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "/docs/a.bin"); string(got) != "bee" {
		t.Fatalf("after posix-rename: %q", got)
	}
	if _, err := c.Stat("/docs/b.txt"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("stat of renamed-away file: %v", err)
	}
	if err := c.Rename("/docs/a.bin", "/docs/c.txt"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("/docs"); statusCode(err) != fxFailure {
		t.Fatalf("remove of a directory: %v; want FAILURE", err)
	}
	if err := c.RemoveDirectory("/docs"); statusCode(err) != fxFailure || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("rmdir of non-empty: %v", err)
	}
	if err := c.Remove("/docs/c.txt"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDirectory("/docs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.treeFile(alice, "docs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("docs still on disk: %v", err)
	}
	if err := c.Remove("/nope"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("remove missing: %v", err)
	}
	if _, err := c.Open("/nope"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("open missing: %v", err)
	}
}

// Bob's session cannot see or touch alice's tree, and ".." and absolute
// paths stay in the tree (draft-02 6.2).
func TestTraversalConfined(t *testing.T) {
	e := startEnv(t)
	a := e.login(t, alice, alicePW)
	put(t, a, "/secret.txt", []byte("alice's"))
	b := e.login(t, bob, bobPW)
	for _, p := range []string{"../alice@example.test/secret.txt", "/../../alice@example.test/secret.txt",
		"/../../../../etc/passwd", "../../etc/passwd"} {
		if got, err := b.Open(p); err == nil {
			got.Close()
			t.Errorf("bob opened %q", p)
		}
	}
	for _, p := range []string{"/..", "../..", "/../../..", ".", ""} {
		rp, err := b.RealPath(p)
		if err != nil || rp != "/" {
			t.Errorf("realpath(%q) = %q, %v; want /", p, rp, err)
		}
	}
	ents, err := b.ReadDir("/../..")
	if err != nil || len(ents) != 0 {
		t.Fatalf("bob's /../.. lists %d entries, %v; want his empty tree", len(ents), err)
	}
	put(t, b, "/../../escape.txt", []byte("x"))
	if _, err := os.Stat(e.treeFile(bob, "escape.txt")); err != nil {
		t.Fatalf("the write did not land at the top of bob's tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "escape.txt")); err == nil {
		t.Fatal("a write escaped the tree")
	}
	if _, err := b.Stat("/.posta-tmp"); statusCode(err) != fxPermission {
		t.Fatalf("stat of the upload directory: %v; want PERMISSION_DENIED", err)
	}
}

// A link planted on disk that leads out of the tree is refused by the jail;
// links cannot be made over SFTP.
func TestSymlinkEscapeConfined(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)
	put(t, c, "/inside.txt", []byte("in"))
	if err := os.Symlink("/etc", e.treeFile(alice, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("inside.txt", e.treeFile(alice, "good-link")); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Open("/etc/passwd"); err == nil {
		f.Close()
		t.Fatal("read /etc/passwd through a planted link")
	} else if statusCode(err) != fxPermission {
		t.Fatalf("open through escaping link: %v; want PERMISSION_DENIED", err)
	}
	ents, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range ents {
		if fi.Name() == "etc" {
			t.Fatal("the escaping link is listed")
		}
	}
	// A link inside the tree is followed.
	if got := get(t, c, "/good-link"); string(got) != "in" {
		t.Fatalf("inside link: %q", got)
	}
	if err := c.Symlink("/etc", "/etc2"); statusCode(err) != fxUnsupported {
		t.Fatalf("symlink: %v; want OP_UNSUPPORTED", err)
	}
	if _, err := os.Lstat(e.treeFile(alice, "etc2")); err == nil {
		t.Fatal("a link was created")
	}
	if err := c.Link("/inside.txt", "/hard"); statusCode(err) != fxUnsupported {
		t.Fatalf("hardlink: %v; want OP_UNSUPPORTED", err)
	}
	if _, err := c.ReadLink("/good-link"); statusCode(err) != fxFailure {
		t.Fatalf("readlink: %v; want FAILURE (links are seen through)", err)
	}
	if err := c.Rename("/inside.txt", "/etc/x"); err == nil {
		t.Fatal("renamed through an escaping link")
	}
}

func TestQuota(t *testing.T) {
	e := startEnv(t)
	q := int64(1 << 20)
	if err := e.dir.UpdateAccount(context.Background(), alice, directory.AccountUpdate{QuotaBytes: &q}); err != nil {
		t.Fatal(err)
	}
	c := e.login(t, alice, alicePW)
	put(t, c, "/small", make([]byte, 600<<10))
	f, err := c.Create("/big")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(make([]byte, 600<<10))
	cerr := f.Close()
	if werr == nil && cerr == nil {
		t.Fatal("an upload past the quota succeeded")
	}
	for _, err := range []error{werr, cerr} {
		if err != nil && (statusCode(err) != fxFailure || !strings.Contains(err.Error(), "quota exceeded")) {
			t.Fatalf("error %v; want FAILURE quota exceeded", err)
		}
	}
	if _, err := c.Stat("/big"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("the failed upload left a file: %v", err)
	}
	vfs, err := c.StatVFS("/")
	if err != nil {
		t.Fatal(err)
	}
	if vfs.TotalSpace() < uint64(q)-vfs.Frsize || vfs.TotalSpace() > uint64(q) {
		t.Fatalf("statvfs total %d; want the quota %d", vfs.TotalSpace(), q)
	}
	if free := vfs.FreeSpace(); free > uint64(q-600<<10) || free < uint64(q-600<<10)-vfs.Frsize {
		t.Fatalf("statvfs free %d; want %d", free, q-600<<10)
	}
	// Replacing the file within the quota works (the old size is freed).
	put(t, c, "/small", make([]byte, 900<<10))
}

func TestReadOnlyAccount(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)
	put(t, c, "/keep.txt", []byte("keep"))
	ro := true
	if err := e.dir.UpdateAccount(context.Background(), alice, directory.AccountUpdate{FilesReadOnly: &ro}); err != nil {
		t.Fatal(err)
	}
	c = e.login(t, alice, alicePW) // the flag is read at session start
	if _, err := c.Create("/new.txt"); statusCode(err) != fxPermission {
		t.Fatalf("create: %v; want PERMISSION_DENIED", err)
	}
	if err := c.Mkdir("/d"); statusCode(err) != fxPermission {
		t.Fatalf("mkdir: %v", err)
	}
	if err := c.Remove("/keep.txt"); statusCode(err) != fxPermission {
		t.Fatalf("remove: %v", err)
	}
	if err := c.Rename("/keep.txt", "/k2"); statusCode(err) != fxPermission {
		t.Fatalf("rename: %v", err)
	}
	if err := c.Chmod("/keep.txt", 0o600); statusCode(err) != fxPermission {
		t.Fatalf("chmod: %v", err)
	}
	if got := get(t, c, "/keep.txt"); string(got) != "keep" {
		t.Fatalf("read: %q", got)
	}
	vfs, err := c.StatVFS("/")
	if err != nil || vfs.Flag&1 == 0 {
		t.Fatalf("statvfs flag %v, %v; want ST_RDONLY", vfs, err)
	}
}

func TestSetstat(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)
	put(t, c, "/f", []byte("0123456789"))
	if err := c.Chmod("/f", 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := c.Chtimes("/f", mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(e.treeFile(alice, "f"))
	if err != nil || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("on disk: %v %v, %v", fi.Mode(), fi.ModTime(), err)
	}
	if err := c.Chmod("/f", os.ModeSetuid|0o755); statusCode(err) != fxPermission {
		t.Fatalf("setuid: %v; want PERMISSION_DENIED", err)
	}
	if err := c.Chown("/f", 0, 0); statusCode(err) != fxPermission {
		t.Fatalf("chown: %v; want PERMISSION_DENIED", err)
	}
	if err := c.Truncate("/f", 4); err != nil {
		t.Fatal(err)
	}
	if err := c.Truncate("/f", 6); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "/f"); string(got) != "0123\x00\x00" {
		t.Fatalf("after truncates: %q", got)
	}
	// Growing is writing zeros (no sparse files): bounded.
	if err := c.Truncate("/f", 1<<40); statusCode(err) != fxUnsupported {
		t.Fatalf("truncate to 1 TiB: %v; want OP_UNSUPPORTED", err)
	}
}

// Writes that arrive out of order are put in order; a write past the end
// leaves a hole of zeros (draft-02 6.4); rewriting is refused and fails the
// upload.
func TestRandomAccessWrites(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)
	f, err := c.Create("/r")
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{30, 20, 10, 0} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte('a' + off/10)}, 10), off); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if _, err := f.WriteAt([]byte("Z"), 50); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 51 {
		t.Fatalf("fstat while writing: %v, %v; want size 51", st, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("a", 10) + strings.Repeat("b", 10) + strings.Repeat("c", 10) + strings.Repeat("d", 10) +
		strings.Repeat("\x00", 10) + "Z"
	if got := get(t, c, "/r"); string(got) != want {
		t.Fatalf("got %q", got)
	}

	// A write far past the end would be a hole of real zeros: refused.
	f, err = c.Create("/far")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 1<<40); statusCode(err) != fxUnsupported {
		t.Fatalf("write at 1 TiB: %v; want OP_UNSUPPORTED", err)
	}
	f.Close()

	f, err = c.Create("/rw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("J"), 0); statusCode(err) != fxUnsupported {
		t.Fatalf("rewrite: %v; want OP_UNSUPPORTED", err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("close after a refused write succeeded")
	}
	if _, err := c.Stat("/rw"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("failed upload left a file: %v", err)
	}
}

// Opening an existing file without TRUNC writes at its end (a resume);
// APPEND appends whether the client counts offsets from 0 (pkg/sftp) or
// from the old end (curl).
func TestResumeAndAppend(t *testing.T) {
	e := startEnv(t)
	c := e.login(t, alice, alicePW)
	put(t, c, "/f", []byte("12345"))
	f, err := c.OpenFile("/f", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("678"), 5); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = c.OpenFile("/f", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 2); statusCode(err) != fxUnsupported {
		t.Fatalf("write inside an existing file: %v; want OP_UNSUPPORTED", err)
	}
	f.Close()
	f, err = c.OpenFile("/f", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("ab")); err != nil { // pkg/sftp's client: offset 0
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("cd")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = c.OpenFile("/f", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("ef"), 12); err != nil { // absolute, at the old end
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "/f"); string(got) != "12345678abcdef" {
		t.Fatalf("got %q", got)
	}
	// EXCL on an existing file fails.
	if _, err := c.OpenFile("/f", os.O_WRONLY|os.O_CREATE|os.O_EXCL); statusCode(err) != fxFailure {
		t.Fatalf("O_EXCL on existing: %v", err)
	}
}

// A new version is invisible to other sessions until CLOSE, which makes it
// durable and visible at once; the old file stays readable meanwhile.
func TestUploadAtomic(t *testing.T) {
	e := startEnv(t)
	a := e.login(t, alice, alicePW)
	put(t, a, "/doc", []byte("old"))
	f, err := a.Create("/doc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new version")); err != nil {
		t.Fatal(err)
	}
	other := e.login(t, alice, alicePW)
	if got := get(t, other, "/doc"); string(got) != "old" {
		t.Fatalf("other session sees %q during the upload", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, other, "/doc"); string(got) != "new version" {
		t.Fatalf("after close: %q", got)
	}
}

// A connection that ends mid-upload leaves nothing behind.
func TestLostConnectionDiscardsUpload(t *testing.T) {
	e := startEnv(t)
	sc, err := e.dialSSH(t, alice, ssh.Password(alicePW))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("/partial")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	c.Close()
	// The server notices, aborts the upload and closes: once the
	// connection is gone from the server, the tree must hold nothing.
	waitFor(t, func() bool { return e.s.conns.Len() == 0 })
	c2 := e.login(t, alice, alicePW)
	if _, err := c2.Stat("/partial"); statusCode(err) != fxNoSuchFile {
		t.Fatalf("partial upload visible: %v", err)
	}
	ents, _ := os.ReadDir(e.treeFile(alice, ".posta-tmp"))
	if len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
