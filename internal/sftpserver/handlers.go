package sftpserver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"posta/internal/files"
)

// handlers are pkg/sftp's request handlers for one SFTP session, over the
// account's tree. Every path from the client goes through clean (files.Join)
// and then the tree, whose os.Root is the jail. The optional interfaces of
// pkg/sftp request-interfaces.go that are implemented: OpenFileWriter,
// PosixRenameFileCmder, StatVFSFileCmder, LstatFileLister,
// RealPathFileLister, ReadlinkFileLister, NameLookupFileLister.
type handlers struct {
	c    *conn
	tree *files.Tree
	user string // the account's local part, shown as owner in listings

	mu       sync.Mutex
	handles  int
	uploads  map[string]*upload // client path -> this session's upload in progress
	reorder  int64              // bytes held by uploads for out-of-order writes
	nextOpen uint64
}

var (
	_ sftp.OpenFileWriter       = (*handlers)(nil)
	_ sftp.PosixRenameFileCmder = (*handlers)(nil)
	_ sftp.StatVFSFileCmder     = (*handlers)(nil)
	_ sftp.LstatFileLister      = (*handlers)(nil)
	_ sftp.RealPathFileLister   = (*handlers)(nil)
	_ sftp.ReadlinkFileLister   = (*handlers)(nil)
	_ sftp.NameLookupFileLister = (*handlers)(nil)
)

func newHandlers(c *conn, tree *files.Tree) *handlers {
	user, _, _ := strings.Cut(c.account, "@")
	return &handlers{c: c, tree: tree, user: user, uploads: map[string]*upload{}}
}

// clean makes a client path absolute and clean inside the tree:
// draft-02 6.2, ".." at the top stays at the top. pkg/sftp has cleaned it
// already; files.Join is the rule the FTP side uses too.
func clean(p string) string { return files.Join("/", p) }

// fail maps err for the client (statusFor) and logs what the client does
// not see: our own failures at error level, refusals at debug.
func (h *handlers) fail(op, p string, err error) error {
	st, internal := statusFor(err)
	if internal {
		h.c.s.log.Error("sftp: operation failed", "conn", h.c.id, "account", h.c.account, "op", op, "path", p,
			"err", err.Error())
	} else if err != nil && !errors.Is(err, io.EOF) {
		h.c.s.log.Debug("sftp: refused", "conn", h.c.id, "account", h.c.account, "op", op, "path", p,
			"err", err.Error())
	}
	return st
}

// recover turns a panic in a handler into a FAILURE status and a count:
// pkg/sftp runs handlers on its own goroutines, where a panic would end the
// process.
func (h *handlers) recover(op string, err *error) {
	if r := recover(); r != nil {
		h.c.s.panics.Add(1)
		h.c.s.log.Error("sftp: handler panicked", "conn", h.c.id, "op", op, "panic", fmt.Sprint(r),
			"stack", string(debug.Stack()))
		*err = errInternal
	}
}

// takeHandle reserves one of the session's MaxHandles.
func (h *handlers) takeHandle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handles >= h.c.s.lim.MaxHandles {
		return false
	}
	h.handles++
	return true
}

func (h *handlers) releaseHandle() {
	h.mu.Lock()
	h.handles--
	h.mu.Unlock()
}

// Fileread opens a file for reading (SSH_FXP_OPEN with READ only,
// draft-02 6.3).
func (h *handlers) Fileread(r *sftp.Request) (_ io.ReaderAt, err error) {
	defer h.recover("open", &err)
	p := clean(r.Filepath)
	if !h.takeHandle() {
		return nil, errTooManyOpen
	}
	f, err := h.tree.Open(p)
	if err != nil {
		h.releaseHandle()
		return nil, h.fail("open", p, err)
	}
	h.c.fileOpened()
	return &download{h: h, f: f, path: p, start: time.Now()}, nil
}

// download is a file open for reading. ReadAt is called concurrently with
// nothing but itself (pkg/sftp's reading worker), Close once.
type download struct {
	h     *handlers
	f     *os.File
	path  string
	start time.Time
	bytes atomic.Int64
	once  sync.Once
}

func (d *download) ReadAt(b []byte, off int64) (n int, err error) {
	defer d.h.recover("read", &err)
	n, err = d.f.ReadAt(b, off)
	d.bytes.Add(int64(n))
	if err != nil && err != io.EOF {
		return n, d.h.fail("read", d.path, err)
	}
	return n, err
}

func (d *download) Close() (err error) {
	d.once.Do(func() {
		err = d.f.Close()
		d.h.releaseHandle()
		d.h.c.fileClosed()
		if n := d.bytes.Load(); n > 0 {
			d.h.c.s.log.Info("sftp download", "conn", d.h.c.id, "account", d.h.c.account, "path", d.path,
				"bytes", n, "duration", time.Since(d.start).Round(time.Millisecond))
		}
	})
	return nil
}

// Filewrite opens a file for writing (WRITE without READ).
func (h *handlers) Filewrite(r *sftp.Request) (_ io.WriterAt, err error) {
	defer h.recover("open", &err)
	return h.openWrite(r)
}

// OpenFile opens a file for reading and writing (READ|WRITE, as pkg/sftp's
// client Create does).
func (h *handlers) OpenFile(r *sftp.Request) (_ sftp.WriterAtReaderAt, err error) {
	defer h.recover("open", &err)
	return h.openWrite(r)
}

// openWrite decides how an SSH_FXP_OPEN for writing writes (draft-02 6.3):
//
//   - a new file, or TRUNC: a new version, written to a temporary file and
//     renamed over the name at CLOSE (files.Replace), after an fsync: other
//     sessions see the old file or the new one, never a part, and a
//     transfer that fails leaves nothing;
//   - APPEND: in place at the end of the file (files.Append). The draft
//     says offsets are ignored, but pkg/sftp serves a session's writes on
//     several goroutines, so they are the only order there is: offsets at
//     or past the old size are taken as absolute (curl -C -), offsets that
//     start below it as counted from the old end (pkg/sftp's client with
//     O_APPEND starts at 0);
//   - an existing file without TRUNC or APPEND: in place at its end
//     (files.Append), with offsets taken as absolute: writing from the old
//     size on is a resume (OpenSSH reput, curl -C -); writing before it is
//     refused, because internal/files has no in-place random write.
func (h *handlers) openWrite(r *sftp.Request) (*upload, error) {
	p := clean(r.Filepath)
	fl := r.Pflags()
	if h.tree.ReadOnly() {
		return nil, h.fail("open", p, files.ErrReadOnly)
	}
	if fl.Excl && !fl.Creat {
		// draft-02 6.3: CREAT MUST also be specified with EXCL (and with
		// TRUNC, where OpenSSH's server does not insist; neither do we).
		return nil, errBadFlags
	}
	fi, err := h.tree.Stat(p)
	exists := err == nil
	if err != nil && !errors.Is(err, files.ErrNotExist) {
		return nil, h.fail("open", p, err)
	}
	switch {
	case exists && fi.IsDir():
		return nil, h.fail("open", p, files.ErrIsDir)
	case exists && fl.Excl:
		return nil, errFileExists
	case !exists && !fl.Creat && !fl.Trunc:
		return nil, errNoFile
	}
	kind := kindReplace
	switch {
	case fl.Append:
		kind = kindAppend
	case exists && !fl.Trunc:
		kind = kindInPlace
	}
	if !h.takeHandle() {
		return nil, errTooManyOpen
	}
	mode := files.Replace
	if kind != kindReplace {
		mode = files.Append
	}
	up, err := h.tree.Create(p, mode, 0)
	if err != nil {
		h.releaseHandle()
		return nil, h.fail("open", p, err)
	}
	w := &upload{h: h, up: up, path: p, kind: kind, next: up.Offset(), base: up.Offset(), start: time.Now()}
	if !exists {
		// draft-02 6.3: attrs are the new file's initial attributes; only
		// the permissions mean something here. Applied after the commit.
		if a := r.Attributes(); r.AttrFlags().Permissions && a != nil {
			w.perm = fs.FileMode(a.Mode & 0o777)
			w.setPerm = true
		}
	}
	h.mu.Lock()
	h.nextOpen++
	w.seq = h.nextOpen
	h.uploads[p] = w
	h.mu.Unlock()
	h.c.fileOpened()
	return w, nil
}

// pending returns this session's upload in progress to p, if any.
func (h *handlers) pending(p string) *upload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.uploads[p]
}

func (h *handlers) forgetUpload(w *upload) {
	h.mu.Lock()
	if h.uploads[w.path] == w {
		delete(h.uploads, w.path)
	}
	h.mu.Unlock()
}

// reserveReorder takes n bytes of the session's budget for out-of-order
// writes (Limits.MaxReorderBytes).
func (h *handlers) reserveReorder(n int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reorder+n > h.c.s.lim.MaxReorderBytes {
		return false
	}
	h.reorder += n
	return true
}

func (h *handlers) releaseReorder(n int64) {
	h.mu.Lock()
	h.reorder -= n
	h.mu.Unlock()
}

// Filecmd runs the commands without a result (draft-02 6.5, 6.6, 6.9, 6.10).
func (h *handlers) Filecmd(r *sftp.Request) (err error) {
	defer h.recover(r.Method, &err)
	p := clean(r.Filepath)
	switch r.Method {
	case "Setstat":
		return h.setstat(r, p)
	case "Rename":
		to := clean(r.Target)
		// draft-02 6.5: "It is an error if there already exists a file with
		// the name specified by newpath." (posix-rename@openssh.com is the
		// one that replaces.) Checked, then renamed: a file another session
		// creates in between is replaced; internal/files has no
		// rename-without-replace to close that window.
		if _, err := h.tree.Stat(to); err == nil {
			return errTargetExists
		} else if !errors.Is(err, files.ErrNotExist) {
			return h.fail("rename", to, err)
		}
		return h.fail("rename", p, h.tree.Rename(p, to))
	case "Rmdir":
		return h.fail("rmdir", p, h.tree.RemoveDir(p))
	case "Mkdir":
		// The attrs' permissions are not applied: directories are 0755.
		return h.fail("mkdir", p, h.tree.Mkdir(p))
	case "Remove":
		return h.fail("remove", p, h.tree.Remove(p))
	case "Symlink":
		// draft-02 6.10. internal/files has no confined Symlink yet.
		return errNotSymlinks
	case "Link":
		return errNoHardLinks
	}
	return status(sftp.ErrSSHFxOpUnsupported, "unsupported operation", nil)
}

// PosixRename is posix-rename@openssh.com: rename(2), replacing newpath.
func (h *handlers) PosixRename(r *sftp.Request) (err error) {
	defer h.recover("posix-rename", &err)
	p, to := clean(r.Filepath), clean(r.Target)
	return h.fail("rename", p, h.tree.Rename(p, to))
}

// setstat applies SSH_FXP_SETSTAT / FSETSTAT (draft-02 6.9) in sshd's
// order: size, permissions, times. Owners cannot change.
func (h *handlers) setstat(r *sftp.Request, p string) error {
	fl := r.AttrFlags()
	a := r.Attributes()
	if a == nil {
		return status(sftp.ErrSSHFxBadMessage, "bad attributes", nil)
	}
	if fl.UidGid {
		return errOwner
	}
	var perm fs.FileMode
	if fl.Permissions {
		if a.Mode&0o7000 != 0 {
			return errSpecialMode
		}
		perm = fs.FileMode(a.Mode & 0o777) // file type bits, if sent, are ignored
	}
	if w := h.pending(p); w != nil {
		// FSETSTAT on a handle being uploaded (OpenSSH put -p): the file
		// appears at CLOSE, so that is when these apply.
		return w.setAttrs(fl, a, perm)
	}
	if h.tree.ReadOnly() {
		return h.fail("setstat", p, files.ErrReadOnly)
	}
	if fl.Size {
		if err := h.truncate(p, int64(a.Size)); err != nil {
			return h.fail("truncate", p, err)
		}
	}
	if fl.Permissions {
		if err := h.tree.Chmod(p, perm); err != nil {
			return h.fail("chmod", p, err)
		}
	}
	if fl.Acmodtime {
		if err := h.tree.Chtimes(p, time.Unix(int64(a.Mtime), 0)); err != nil {
			return h.fail("chtimes", p, err)
		}
	}
	return nil
}

// truncate sets a file's size with the store's own writes, so the quota
// counter stays right: shorter through files.Resume at the new size, longer
// by appending zeros (draft-02 6.4: what lies past the old end reads as
// zeros).
func (h *handlers) truncate(p string, size int64) error {
	if size < 0 {
		return files.ErrBadOffset
	}
	fi, err := h.tree.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return files.ErrIsDir
	}
	cur := fi.Size()
	switch {
	case size == cur:
		return nil
	case size < cur:
		up, err := h.tree.Create(p, files.Resume, size)
		if err != nil {
			return err
		}
		return up.Commit()
	case size-cur > h.c.s.lim.MaxReorderBytes:
		// The zeros are written for real: bounded like a hole in an upload.
		return errFarWrite
	default:
		up, err := h.tree.Create(p, files.Append, 0)
		if err != nil {
			return err
		}
		if _, err := up.ReadFrom(&io.LimitedReader{R: zeros{}, N: size - up.Offset()}); err != nil {
			up.Abort()
			return err
		}
		return up.Commit()
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// StatVFS answers statvfs@openssh.com. With a quota, the file system
// reported is the quota: its size and what is left of it (never more than
// the disk has free).
func (h *handlers) StatVFS(r *sftp.Request) (_ *sftp.StatVFS, err error) {
	defer h.recover("statvfs", &err)
	p := clean(r.Filepath)
	if _, err := h.tree.Stat(p); err != nil {
		return nil, h.fail("statvfs", p, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.c.s.o.Config.DataDir, &st); err != nil {
		return nil, h.fail("statvfs", p, err)
	}
	frsize := uint64(st.Frsize)
	if frsize == 0 {
		frsize = uint64(st.Bsize)
	}
	v := &sftp.StatVFS{
		Bsize: uint64(st.Bsize), Frsize: frsize,
		Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail,
		Files: st.Files, Ffree: st.Ffree, Favail: st.Ffree,
		Flag: 0x2, // ST_NOSUID
		// Fsid stays 0: the server's device numbers are none of the client's business.
		Namemax: 255,
	}
	if used, quota := h.tree.Usage(); quota > 0 && frsize > 0 {
		v.Blocks = uint64(quota) / frsize
		left := uint64(max(0, quota-used)) / frsize
		v.Bfree, v.Bavail = min(left, st.Bavail), min(left, st.Bavail)
	}
	if h.tree.ReadOnly() {
		v.Flag |= 0x1 // ST_RDONLY
	}
	return v, nil
}

// Filelist serves OPENDIR (method List) and STAT (draft-02 6.7, 6.8).
func (h *handlers) Filelist(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recover(r.Method, &err)
	p := clean(r.Filepath)
	switch r.Method {
	case "List":
		if !h.takeHandle() {
			return nil, errTooManyOpen
		}
		ents, err := h.tree.ReadDir(p)
		if err != nil {
			h.releaseHandle()
			return nil, h.fail("list", p, err)
		}
		return &lister{infos: ents, h: h}, nil
	case "Stat":
		fi, err := h.stat(p)
		if err != nil {
			return nil, h.fail("stat", p, err)
		}
		return &lister{infos: []fs.FileInfo{fi}}, nil
	}
	return nil, status(sftp.ErrSSHFxOpUnsupported, "unsupported operation", nil)
}

// stat describes p; a file this session is uploading is described as
// written so far (FSTAT on its handle arrives here as a STAT of its path).
func (h *handlers) stat(p string) (fs.FileInfo, error) {
	if w := h.pending(p); w != nil && w.kind == kindReplace {
		return w.info(), nil
	}
	return h.tree.Stat(p)
}

// Lstat is SSH_FXP_LSTAT. The tree shows symbolic links as what they point
// to (internal/files resolves them inside the jail and hides the rest), so
// there is no link to describe: LSTAT answers as STAT.
func (h *handlers) Lstat(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recover("lstat", &err)
	p := clean(r.Filepath)
	fi, err := h.stat(p)
	if err != nil {
		return nil, h.fail("lstat", p, err)
	}
	return &lister{infos: []fs.FileInfo{fi}}, nil
}

// RealPath is SSH_FXP_REALPATH (draft-02 6.11): the cleaned absolute path
// inside the tree ("/.." is "/").
func (h *handlers) RealPath(p string) (string, error) { return clean(p), nil }

// Readlink is SSH_FXP_READLINK (draft-02 6.10): no path in the tree is a
// link as clients see it (see Lstat).
func (h *handlers) Readlink(p string) (_ string, err error) {
	defer h.recover("readlink", &err)
	p = clean(p)
	if _, err := h.tree.Stat(p); err != nil {
		return "", h.fail("readlink", p, err)
	}
	return "", errNotALink
}

// LookupUserName and LookupGroupName name the owner in READDIR's longname
// (draft-02 7): the account, whatever the server's uid.
func (h *handlers) LookupUserName(string) string  { return h.user }
func (h *handlers) LookupGroupName(string) string { return h.user }

// lister is a directory listing or a single stat result.
type lister struct {
	infos []fs.FileInfo
	h     *handlers // set for directory handles, which hold a MaxHandles slot
	once  sync.Once
}

func (l *lister) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l.infos)) {
		return 0, io.EOF
	}
	n := copy(out, l.infos[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

func (l *lister) Close() error {
	if l.h != nil {
		l.once.Do(l.h.releaseHandle)
	}
	return nil
}
