package ftpserver

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"posta/internal/files"
)

// cmdCWD: RFC 959 4.1.1. Paths are cleaned at this edge (files.Join) and
// resolved in the account's jail: "CWD ../.." at the top stays at the top.
func (ss *session) cmdCWD(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	fi, err := ss.tree.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, files.ErrNotDir
	}
	ss.cwd = p
	return ok(250, "Directory changed to "+p), nil
}

// cmdCDUP: RFC 959 4.1.1: CWD to the parent, "the reply codes shall be
// identical to the reply codes of CWD" (250; 5.4's list says 200).
func (ss *session) cmdCDUP(string) (*reply, error) { return ss.cmdCWD("..") }

// cmdSMNT: RFC 959 4.1.1; there is nothing to mount (502 not implemented).
func (ss *session) cmdSMNT(string) (*reply, error) {
	return nil, refuse(502, "SMNT not implemented")
}

// cmdPWD: RFC 959 4.1.3 and Appendix II: 257 with the quoted path.
func (ss *session) cmdPWD(string) (*reply, error) {
	return ok(257, quotePath(ss.cwd)+" is the current directory"), nil
}

// cmdMKD: RFC 959 4.1.3 and Appendix II: 257 with the new path.
func (ss *session) cmdMKD(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	if err := ss.tree.Mkdir(p); err != nil {
		return nil, err
	}
	return ok(257, quotePath(p)+" created"), nil
}

// cmdRMD: RFC 959 4.1.3.
func (ss *session) cmdRMD(arg string) (*reply, error) {
	if err := ss.tree.RemoveDir(files.Join(ss.cwd, arg)); err != nil {
		return nil, err
	}
	return ok(250, "Directory removed"), nil
}

// cmdDELE: RFC 959 4.1.3.
func (ss *session) cmdDELE(arg string) (*reply, error) {
	if err := ss.tree.Remove(files.Join(ss.cwd, arg)); err != nil {
		return nil, err
	}
	return ok(250, "File deleted"), nil
}

// cmdRNFR: RFC 959 4.1.3: 350, and RNTO must follow at once.
func (ss *session) cmdRNFR(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	if _, err := ss.tree.Stat(p); err != nil {
		return nil, err
	}
	ss.rnfr = p
	return ok(350, "Ready for RNTO"), nil
}

// cmdRNTO: RFC 959 4.1.3: 503 without an RNFR right before.
func (ss *session) cmdRNTO(arg string) (*reply, error) {
	if ss.cmdRnfr == "" {
		return nil, refuse(503, "RNFR required first")
	}
	if err := ss.tree.Rename(ss.cmdRnfr, files.Join(ss.cwd, arg)); err != nil {
		return nil, err
	}
	return ok(250, "Rename successful"), nil
}

// cmdSIZE: RFC 3659 4: the octets a transfer would send in the current
// TYPE. In TYPE A that means reading the file (4.2 allows 550 when that is
// too costly: above Limits.MaxASCIIScan).
func (ss *session) cmdSIZE(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	fi, err := ss.tree.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, refuse(550, "SIZE is only for files")
	}
	if ss.typ == typeImage {
		return ok(213, strconv.FormatInt(fi.Size(), 10)), nil
	}
	if fi.Size() > ss.s.lim.MaxASCIIScan {
		return nil, refuse(550, "SIZE not available in TYPE A for files this large; use TYPE I")
	}
	f, err := ss.tree.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := wireSize(f)
	if err != nil {
		return nil, err
	}
	return ok(213, strconv.FormatInt(n, 10)), nil
}

// cmdMDTM: RFC 3659 3: the modification time, UTC, YYYYMMDDHHMMSS.
func (ss *session) cmdMDTM(arg string) (*reply, error) {
	fi, err := ss.tree.Stat(files.Join(ss.cwd, arg))
	if err != nil {
		return nil, err
	}
	return ok(213, fi.ModTime().UTC().Format("20060102150405")), nil
}

// cmdMFMT: draft-somers-ftp-mfxx 3: "MFMT time path" sets the modification
// time; 213 "Modify=time; path".
func (ss *session) cmdMFMT(arg string) (*reply, error) {
	ts, name, found := strings.Cut(arg, " ")
	if !found || name == "" {
		return nil, errArg
	}
	t, err := parseFTPTime(ts)
	if err != nil {
		return nil, errArg
	}
	p := files.Join(ss.cwd, name)
	if err := ss.tree.Chtimes(p, t); err != nil {
		return nil, err
	}
	return ok(213, "Modify="+t.Format("20060102150405")+"; "+p), nil
}

// parseFTPTime reads RFC 3659 2.3's time-val: YYYYMMDDHHMMSS[.sss], UTC.
func parseFTPTime(s string) (time.Time, error) {
	layout := "20060102150405"
	if len(s) > 14 && s[14] == '.' {
		layout += "." + strings.Repeat("0", len(s)-15)
	}
	return time.ParseInLocation(layout, s, time.UTC)
}

// cmdSITE: RFC 959 4.1.3: SITE HELP and SITE CHMOD.
func (ss *session) cmdSITE(arg string) (*reply, error) {
	sub, rest, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(sub) {
	case "HELP":
		return &reply{code: 214, lines: []string{"SITE commands:", "CHMOD <octal mode> <path>", "HELP", "End"}}, nil
	case "CHMOD":
		if ss.tree.ReadOnly() {
			return nil, errReadOnly
		}
		modeStr, name, found := strings.Cut(strings.TrimLeft(rest, " "), " ")
		if !found || name == "" {
			return nil, errArg
		}
		mode, err := strconv.ParseUint(modeStr, 8, 32)
		if err != nil || mode > 0o777 {
			return nil, errArg
		}
		if err := ss.tree.Chmod(files.Join(ss.cwd, name), fs.FileMode(mode)); err != nil {
			return nil, err
		}
		return ok(200, "SITE CHMOD command successful"), nil
	default:
		return nil, refuse(501, "Unknown SITE command; see SITE HELP")
	}
}

// Hash algorithms of draft-bryan-ftpext-hash (FEAT order).
var hashAlgos = []string{"SHA-256", "SHA-1", "MD5"}

func newHash(name string) hash.Hash {
	switch name {
	case "SHA-1":
		return sha1.New()
	case "MD5":
		return md5.New()
	default:
		return sha256.New()
	}
}

// cmdHASH: draft-bryan-ftpext-hash-02 3: "213 <algo> <start>-<end> <hex>
// <path>" over the whole file with the algorithm OPTS HASH selected.
func (ss *session) cmdHASH(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	f, err := ss.tree.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newHash(ss.hashAlgo)
	n, err := io.Copy(h, ctxReader{ss, f})
	if err != nil {
		return nil, err
	}
	return ok(213, ss.hashAlgo+" 0-"+strconv.FormatInt(n, 10)+" "+hex.EncodeToString(h.Sum(nil))+" "+p), nil
}

// ctxReader stops a long read (HASH of a big file) when the session ends.
type ctxReader struct {
	ss *session
	r  io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ss.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (ss *session) optsHASH(arg string) (*reply, error) {
	if arg == "" {
		return ok(200, ss.hashAlgo), nil
	}
	for _, a := range hashAlgos {
		if strings.EqualFold(a, arg) {
			ss.hashAlgo = a
			return ok(200, a), nil
		}
	}
	return nil, refuse(501, "Unknown algorithm; use one of "+strings.Join(hashAlgos, ", "))
}
