package ftpserver

import (
	"bufio"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"syscall"
	"time"

	"posta/internal/files"
)

// listArg splits LIST/NLST's argument: leading "-x" words are ls options
// that clients send (LIST -la), not names.
func listArg(arg string) string {
	for strings.HasPrefix(arg, "-") {
		_, rest, found := strings.Cut(arg, " ")
		if !found {
			return ""
		}
		arg = strings.TrimLeft(rest, " ")
	}
	return arg
}

// listing reads what LIST, NLST, MLSD and STAT show for p: the directory's
// entries, or the file itself. dir reports which.
func (ss *session) listing(p string) (entries []fs.FileInfo, dir bool, err error) {
	fi, err := ss.tree.Stat(p)
	if err != nil {
		return nil, false, err
	}
	if !fi.IsDir() {
		return []fs.FileInfo{fi}, false, nil
	}
	entries, err = ss.tree.ReadDir(p)
	return entries, true, err
}

// lsLine renders one entry as `ls -l` does, which is what clients parse
// from LIST (RFC 959 leaves the format open). Owner and group are not
// meaningful here and not revealed.
func lsLine(fi fs.FileInfo, now time.Time) string {
	mode := fi.Mode()
	typ := byte('-')
	if mode.IsDir() {
		typ = 'd'
	}
	perm := []byte("rwxrwxrwx")
	for i := 0; i < 9; i++ {
		if mode&(1<<uint(8-i)) == 0 {
			perm[i] = '-'
		}
	}
	t := fi.ModTime()
	date := t.Format("Jan _2 15:04")
	if t.Before(now.AddDate(0, -6, 0)) || t.After(now.Add(24*time.Hour)) {
		date = t.Format("Jan _2  2006")
	}
	return fmt.Sprintf("%c%s 1 ftp ftp %12d %s %s", typ, perm, fi.Size(), date, fi.Name())
}

// cmdLIST: RFC 959 4.1.3.
func (ss *session) cmdLIST(arg string) (*reply, error) {
	return ss.list("LIST", arg, func(fi fs.FileInfo, now time.Time) string { return lsLine(fi, now) })
}

// cmdNLST: RFC 959 4.1.3: names only. For a directory, the names of its
// entries; for a file, the path as given.
func (ss *session) cmdNLST(arg string) (*reply, error) {
	return ss.list("NLST", arg, func(fi fs.FileInfo, _ time.Time) string { return fi.Name() })
}

// cmdMLSD: RFC 3659 7: facts of each entry of a directory; 501 for a file.
func (ss *session) cmdMLSD(arg string) (*reply, error) {
	if err := ss.dataReady(); err != nil {
		return nil, err
	}
	p := files.Join(ss.cwd, arg)
	entries, dir, err := ss.listing(p)
	if err != nil {
		return nil, err
	}
	if !dir {
		return nil, refuse(501, "MLSD needs a directory; use MLST for a file")
	}
	facts := ss.facts
	writable := !ss.tree.ReadOnly()
	return ss.sendLines("MLSD", p, len(entries), func(i int) string {
		return mlsxFacts(entries[i], facts, writable, false) + " " + entries[i].Name()
	})
}

func (ss *session) list(verb, arg string, line func(fs.FileInfo, time.Time) string) (*reply, error) {
	if err := ss.dataReady(); err != nil {
		return nil, err
	}
	p := files.Join(ss.cwd, listArg(arg))
	entries, dir, err := ss.listing(p)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return ss.sendLines(verb, p, len(entries), func(i int) string {
		if verb == "NLST" && !dir {
			return listArg(arg)
		}
		return line(entries[i], now)
	})
}

// sendLines sends n lines, CRLF-terminated (listings are ASCII whatever the
// TYPE, RFC 959 4.1.3), over a data connection.
func (ss *session) sendLines(verb, p string, n int, line func(int) string) (*reply, error) {
	return ss.startJob(job{
		verb: verb, path: p, size: -1, opening: "Opening ASCII mode data connection for " + verb,
		okText: "Transfer complete",
		send: func(x *transfer, dc dataConn) error {
			w := bufio.NewWriterSize(deadlineConn{dc.conn, ss.s.lim.DataTimeout, x}, 32<<10)
			for i := 0; i < n; i++ {
				if x.aborted.Load() {
					return errAborted
				}
				w.WriteString(sanitize(line(i)))
				if _, err := w.WriteString("\r\n"); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	})
}

// cmdSTAT: RFC 959 4.1.3. During a transfer, its progress; with a path,
// the listing over the control connection (212 directory, 213 file); else
// the session's status (211).
func (ss *session) cmdSTAT(arg string) (*reply, error) {
	if x := ss.currentTransfer(); x != nil && arg == "" {
		return x.status(), nil
	}
	if arg == "" {
		return ss.sessionStatus(), nil
	}
	ss.waitTransfer()
	if ss.state != stateLoggedIn {
		return nil, errNotLoggedIn
	}
	p := files.Join(ss.cwd, listArg(arg))
	entries, dir, err := ss.listing(p)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	lines := []string{"Status of " + p + ":"}
	for _, e := range entries {
		lines = append(lines, lsLine(e, now))
	}
	lines = append(lines, "End of status")
	code := 213
	if dir {
		code = 212
	}
	return &reply{code: code, lines: lines}, nil
}

func (ss *session) sessionStatus() *reply {
	lines := []string{ss.s.o.Hostname + " Posta FTP server status:"}
	if ss.state == stateLoggedIn {
		lines = append(lines, "Logged in as "+ss.account)
	} else {
		lines = append(lines, "Not logged in")
	}
	sec := "plaintext"
	if ss.tlsState != nil {
		sec = "TLS (" + tlsDesc(*ss.tlsState) + ")"
	}
	prot := "C"
	if ss.protP {
		prot = "P"
	}
	lines = append(lines,
		"Control connection: "+sec+"; data protection: "+prot,
		"TYPE: "+typeName(ss.typ)+"; STRUcture: File; transfer MODE: Stream",
		"Working directory: "+ss.cwd,
		"End of status")
	return &reply{code: 211, lines: lines}
}

// MLSx facts (RFC 3659 7.5), in the order FEAT lists them.
var allFacts = []string{"type", "size", "modify", "perm", "unique", "unix.mode"}

func defaultFacts() map[string]bool {
	m := map[string]bool{}
	for _, f := range allFacts {
		m[f] = true
	}
	return m
}

// factName is how a fact is written (RFC 3659 7.4: names are
// case-insensitive; UNIX.mode is the registered spelling).
func factName(f string) string {
	if f == "unix.mode" {
		return "UNIX.mode"
	}
	return f
}

// mlsxFacts renders "fact=value;..." for one entry (RFC 3659 7.4, 7.5).
func mlsxFacts(fi fs.FileInfo, want map[string]bool, writable, isCwd bool) string {
	var b strings.Builder
	add := func(name, val string) {
		if want[name] {
			b.WriteString(factName(name))
			b.WriteByte('=')
			b.WriteString(val)
			b.WriteByte(';')
		}
	}
	// RFC 3659 7.5.1 type: file, dir, cdir (the directory listed itself).
	switch {
	case fi.IsDir() && isCwd:
		add("type", "cdir")
	case fi.IsDir():
		add("type", "dir")
	default:
		add("type", "file")
	}
	// 7.5.7 size: octets in TYPE I.
	if !fi.IsDir() {
		add("size", fmt.Sprint(fi.Size()))
	}
	// 7.5.3 modify: YYYYMMDDHHMMSS in UTC (RFC 3659 2.3).
	add("modify", fi.ModTime().UTC().Format("20060102150405"))
	// 7.5.5 perm: what this user may do.
	var perm string
	switch {
	case fi.IsDir() && writable:
		perm = "flcdmpe" // rename, list, create, delete, mkdir, purge, enter
	case fi.IsDir():
		perm = "el"
	case writable:
		perm = "adfrw" // append, delete, rename, retrieve, store
	default:
		perm = "r"
	}
	add("perm", perm)
	// 7.5.2 unique: stable per object; device and inode.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		add("unique", fmt.Sprintf("%xU%x", uint64(st.Dev), uint64(st.Ino)))
	}
	// UNIX.mode (IANA OS-specific fact): octal permission bits.
	add("unix.mode", fmt.Sprintf("0%o", fi.Mode().Perm()))
	return b.String()
}

// cmdMLST: RFC 3659 7: one object's facts on the control connection; the
// entry line starts with a space (7.2).
func (ss *session) cmdMLST(arg string) (*reply, error) {
	p := files.Join(ss.cwd, arg)
	fi, err := ss.tree.Stat(p)
	if err != nil {
		return nil, err
	}
	line := mlsxFacts(fi, ss.facts, !ss.tree.ReadOnly(), false) + " " + p
	return &reply{code: 250, lines: []string{"Listing " + p, line, "End"}}, nil
}

// optsMLST: RFC 3659 7.9: select facts; unknown ones are ignored, and the
// reply lists those now in use.
func (ss *session) optsMLST(arg string) (*reply, error) {
	want := map[string]bool{}
	for _, f := range strings.Split(arg, ";") {
		f = strings.ToLower(strings.TrimSpace(f))
		for _, known := range allFacts {
			if f == known {
				want[f] = true
			}
		}
	}
	ss.facts = want
	var used []string
	for _, f := range allFacts {
		if want[f] {
			used = append(used, factName(f)+";")
		}
	}
	return ok(200, "MLST OPTS "+strings.Join(used, "")), nil
}

// featMLST is the FEAT line: each fact, starred when in use (RFC 3659 7.8).
func (ss *session) featMLST() string {
	var b strings.Builder
	b.WriteString("MLST ")
	for _, f := range allFacts {
		b.WriteString(factName(f))
		if ss.facts[f] {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// sortedVerbs lists the table's verbs for HELP.
func sortedVerbs() []string {
	vs := make([]string, 0, len(commands))
	for v := range commands {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}
