package files

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Tree is one session's handle on an account's tree (or the anonymous area).
// Paths are client paths: absolute, slash-separated, cleaned by Join (they
// are cleaned again here). A Tree is safe for concurrent use (a session's
// transfer and its control commands may overlap).
type Tree struct {
	root     *os.Root
	u        *usage // nil for the anonymous area
	quota    int64
	readOnly bool
	owner    string
}

// Close releases the tree's directory handle.
func (t *Tree) Close() error { return t.root.Close() }

// ReadOnly reports whether every change is refused.
func (t *Tree) ReadOnly() bool { return t.readOnly }

// Owner is the account address, or "anonymous".
func (t *Tree) Owner() string { return t.owner }

// Usage returns the bytes counted and the quota (0 = none).
func (t *Tree) Usage() (used, quota int64) { return t.u.get(), t.quota }

// CheckSpace reports ErrQuota if n more bytes would not fit now (FTP ALLO).
func (t *Tree) CheckSpace(n int64) error {
	if t.readOnly {
		return newErr("allocate", "", ErrReadOnly)
	}
	if t.quota > 0 && n > 0 && t.u.get()+n > t.quota {
		return newErr("allocate", "", ErrQuota)
	}
	return nil
}

func (t *Tree) writable(op, p string) error {
	if t.readOnly {
		return newErr(op, p, ErrReadOnly)
	}
	return nil
}

// Stat describes p, following symbolic links that stay inside the tree.
func (t *Tree) Stat(p string) (fs.FileInfo, error) {
	r, err := rel("stat", p)
	if err != nil {
		return nil, err
	}
	fi, err := t.root.Stat(r)
	if err != nil {
		return nil, osErr("stat", p, err)
	}
	if r == "." {
		return rootInfo{fi}, nil
	}
	return fi, nil
}

// rootInfo names the top of the tree "/" instead of the account's
// directory name.
type rootInfo struct{ fs.FileInfo }

func (rootInfo) Name() string { return "/" }

// ReadDir lists a directory sorted by name. Symbolic links are shown as what
// they point to; links that lead outside the tree or nowhere are left out, as
// is the hidden upload directory.
func (t *Tree) ReadDir(p string) ([]fs.FileInfo, error) {
	r, err := rel("list", p)
	if err != nil {
		return nil, err
	}
	f, err := t.root.Open(r)
	if err != nil {
		return nil, osErr("list", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, osErr("list", p, err)
	}
	if !st.IsDir() {
		return nil, newErr("list", p, ErrNotDir)
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, osErr("list", p, err)
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		if r == "." && e.Name() == tmpDir {
			continue
		}
		var fi fs.FileInfo
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err = t.root.Stat(path.Join(r, e.Name()))
			if err != nil {
				continue // escapes or dangles
			}
			fi = renamed{fi, e.Name()}
		} else if fi, err = e.Info(); err != nil {
			continue // removed since ReadDir
		}
		out = append(out, fi)
	}
	slices.SortFunc(out, func(a, b fs.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// renamed is a link target's info under the link's name.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// Open opens a regular file for reading. The *os.File is real, so a caller
// can give it with a socket to io.Copy for sendfile.
func (t *Tree) Open(p string) (*os.File, error) {
	r, err := rel("open", p)
	if err != nil {
		return nil, err
	}
	f, err := t.root.Open(r)
	if err != nil {
		return nil, osErr("open", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, osErr("open", p, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, newErr("open", p, ErrIsDir)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, newErr("open", p, ErrPermission)
	}
	return f, nil
}

// Mkdir creates one directory.
func (t *Tree) Mkdir(p string) error {
	if err := t.writable("mkdir", p); err != nil {
		return err
	}
	r, err := rel("mkdir", p)
	if err != nil {
		return err
	}
	if r == "." {
		return newErr("mkdir", p, ErrExist)
	}
	if err := t.root.Mkdir(r, 0o755); err != nil {
		return osErr("mkdir", p, err)
	}
	return t.syncDir(path.Dir(r))
}

// Remove deletes a file or a symbolic link, never a directory (ErrIsDir).
func (t *Tree) Remove(p string) error {
	if err := t.writable("delete", p); err != nil {
		return err
	}
	r, err := rel("delete", p)
	if err != nil {
		return err
	}
	if r == "." {
		return newErr("delete", p, ErrIsDir)
	}
	// The counter's lock covers the stat and the removal, so two sessions
	// deleting the same file subtract its size once; the directory sync
	// happens after, so a slow disk does not stall the account's writers.
	t.u.lock()
	fi, err := t.root.Lstat(r)
	if err != nil {
		t.u.unlock()
		return osErr("delete", p, err)
	}
	if fi.IsDir() {
		t.u.unlock()
		return newErr("delete", p, ErrIsDir)
	}
	if err := t.root.Remove(r); err != nil {
		t.u.unlock()
		return osErr("delete", p, err)
	}
	if fi.Mode().IsRegular() {
		t.u.addLocked(-fi.Size())
	}
	t.u.unlock()
	return t.syncDir(path.Dir(r))
}

// RemoveDir deletes an empty directory (ErrNotDir for anything else,
// ErrNotEmpty when it has entries).
func (t *Tree) RemoveDir(p string) error {
	if err := t.writable("rmdir", p); err != nil {
		return err
	}
	r, err := rel("rmdir", p)
	if err != nil {
		return err
	}
	if r == "." {
		return newErr("rmdir", p, ErrPermission)
	}
	fi, err := t.root.Lstat(r)
	if err != nil {
		return osErr("rmdir", p, err)
	}
	if !fi.IsDir() {
		return newErr("rmdir", p, ErrNotDir)
	}
	if err := t.root.Remove(r); err != nil {
		return osErr("rmdir", p, err)
	}
	return t.syncDir(path.Dir(r))
}

// Rename moves from to to, replacing a file at to (as rename(2) does).
func (t *Tree) Rename(from, to string) error {
	if err := t.writable("rename", from); err != nil {
		return err
	}
	rf, err := rel("rename", from)
	if err != nil {
		return err
	}
	rt, err := rel("rename", to)
	if err != nil {
		return err
	}
	if rf == "." || rt == "." {
		return newErr("rename", from, ErrPermission)
	}
	t.u.lock()
	src, err := t.root.Lstat(rf)
	if err != nil {
		t.u.unlock()
		return osErr("rename", from, err)
	}
	var replaced int64
	if fi, err := t.root.Lstat(rt); err == nil {
		if os.SameFile(src, fi) {
			// rename(2) of a file onto itself (or a hard link of it) does
			// nothing; nothing is replaced.
			t.u.unlock()
			return nil
		}
		if fi.Mode().IsRegular() {
			replaced = fi.Size()
		}
	}
	if err := t.root.Rename(rf, rt); err != nil {
		t.u.unlock()
		return osErr("rename", to, err)
	}
	t.u.addLocked(-replaced)
	t.u.unlock()
	if err := t.syncDir(path.Dir(rt)); err != nil {
		return err
	}
	if path.Dir(rf) != path.Dir(rt) {
		return t.syncDir(path.Dir(rf))
	}
	return nil
}

// Chmod sets the permission bits (0o777 at most) of a file or directory.
func (t *Tree) Chmod(p string, mode fs.FileMode) error {
	if err := t.writable("chmod", p); err != nil {
		return err
	}
	r, err := rel("chmod", p)
	if err != nil {
		return err
	}
	if mode&^fs.ModePerm != 0 {
		return newErr("chmod", p, ErrPermission)
	}
	return osErr("chmod", p, t.root.Chmod(r, mode))
}

// Chtimes sets the modification time (FTP MFMT, SFTP SETSTAT).
func (t *Tree) Chtimes(p string, mtime time.Time) error {
	if err := t.writable("chtimes", p); err != nil {
		return err
	}
	r, err := rel("chtimes", p)
	if err != nil {
		return err
	}
	return osErr("chtimes", p, t.root.Chtimes(r, time.Time{}, mtime))
}

// syncDir fsyncs a directory, so an entry just made or removed in it
// survives a crash.
func (t *Tree) syncDir(r string) error {
	d, err := t.root.Open(r)
	if err != nil {
		return osErr("sync", "/"+r, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return osErr("sync", "/"+r, err)
	}
	return nil
}

func (u *usage) lock() {
	if u != nil {
		u.mu.Lock()
	}
}

func (u *usage) unlock() {
	if u != nil {
		u.mu.Unlock()
	}
}

func (u *usage) addLocked(n int64) {
	if u != nil {
		u.used = max(0, u.used+n)
	}
}
