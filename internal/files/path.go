package files

import (
	"path"
	"strings"
)

// tmpDir is the hidden directory at the top of every writable tree that
// holds uploads in progress. Clients never see it: listings skip it and any
// path through it is refused with ErrPermission.
const tmpDir = ".posta-tmp"

// Join resolves a client's path argument against the session's working
// directory, the way every protocol edge must before calling the store: an
// absolute argument replaces cwd, a relative one is joined to it, and the
// result is cleaned (path.Clean) into an absolute slash-separated path with
// no "." or ".." left, where ".." at the top stays at the top. The result is
// the path clients see and logs show; the jail (os.Root) is what enforces
// the tree's bounds, not this function.
func Join(cwd, arg string) string {
	if strings.HasPrefix(arg, "/") {
		return path.Clean(arg)
	}
	if cwd == "" || cwd[0] != '/' {
		cwd = "/" + cwd
	}
	return path.Clean(cwd + "/" + arg)
}

// rel turns a client path into the name os.Root takes: relative, "." for the
// top. Paths are cleaned again, so a caller that skipped Join cannot pass
// "..". It refuses NUL (no file name may hold it) and the hidden upload
// directory.
func rel(op, p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", newErr(op, p, ErrInvalidName)
	}
	c := Join("/", p)
	if c == "/" {
		return ".", nil
	}
	r := c[1:]
	if first, _, _ := strings.Cut(r, "/"); first == tmpDir {
		return "", newErr(op, c, ErrPermission)
	}
	return r, nil
}

// Base is the last element of a cleaned client path ("/" for the top).
func Base(p string) string { return path.Base(Join("/", p)) }

// Dir is the parent of a cleaned client path ("/" for the top).
func Dir(p string) string { return path.Dir(Join("/", p)) }
