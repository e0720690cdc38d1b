// Package maildir reads and writes Maildir folders (the layout of Dovecot,
// Courier and Postfix's local delivery): a folder is a directory with tmp/,
// new/ and cur/; a message is one file, whose name after ":2," carries its
// flags as letters. Subfolders follow Maildir++: ".Work.Projects" next to
// cur/ is the folder Work/Projects, its name in modified UTF-7 as IMAP
// servers wrote it. Dovecot keeps keyword names in dovecot-keywords and
// their letters (a-z) in the file names.
//
// It imports nothing of Posta's own; names stay encoded for the caller.
package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Folder is one Maildir folder found under a root.
type Folder struct {
	// Name is "" for the root (the INBOX), else the Maildir++ name with
	// "/" for its "." separators, still in modified UTF-7.
	Name string
	Dir  string
}

// IsMaildir reports whether dir looks like a Maildir folder.
func IsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// Folders lists root and its Maildir++ subfolders, root first, then by name.
func Folders(root string) ([]Folder, error) {
	if !IsMaildir(root) {
		return nil, fmt.Errorf("maildir: %s has no cur/ or new/ directory", root)
	}
	out := []Folder{{Dir: root}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		dir := filepath.Join(root, n)
		if !IsMaildir(dir) {
			continue
		}
		out = append(out, Folder{Name: strings.ReplaceAll(n[1:], ".", "/"), Dir: dir})
	}
	slices.SortFunc(out[1:], func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Message is one message file of a folder.
type Message struct {
	Path  string
	Size  int64
	Date  time.Time // the file's modification time: when it was delivered
	Flags []string  // IMAP flags and keywords from the name
}

// Messages lists a folder's messages, new/ and cur/, in name order (names
// start with the delivery time, so this is about delivery order).
func Messages(dir string) ([]Message, error) {
	keywords := Keywords(dir)
	var out []Message
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("maildir: %w", err)
			}
			m := Message{Path: filepath.Join(dir, sub, e.Name()), Size: info.Size(), Date: info.ModTime()}
			if sub == "cur" {
				m.Flags = ParseFlags(e.Name(), keywords)
			}
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return strings.Compare(filepath.Base(a.Path), filepath.Base(b.Path)) })
	return out, nil
}

// letters maps the Maildir flag letters to IMAP flags.
var letters = []struct {
	letter byte
	flag   string
}{{'D', `\Draft`}, {'F', `\Flagged`}, {'R', `\Answered`}, {'S', `\Seen`}, {'T', `\Deleted`}}

// ParseFlags reads the flags from a message file name: the letters after
// ":2," (or "!2," where ":" is not allowed), keywords by their index in
// keywords (a is 0).
func ParseFlags(name string, keywords []string) []string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		i = strings.LastIndex(name, "!2,")
	}
	if i < 0 {
		return nil
	}
	var flags []string
	for _, c := range []byte(name[i+3:]) {
		switch {
		case c >= 'a' && c <= 'z':
			if k := int(c - 'a'); k < len(keywords) && keywords[k] != "" {
				flags = append(flags, keywords[k])
			}
		default:
			for _, l := range letters {
				if l.letter == c {
					flags = append(flags, l.flag)
				}
			}
		}
	}
	return flags
}

// Keywords reads Dovecot's dovecot-keywords file ("0 $Label1" per line):
// the keyword each letter stands for. Missing or unreadable: none.
func Keywords(dir string) []string {
	f, err := os.Open(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var kw []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		num, name, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(num)
		if !ok || err != nil || i < 0 || i >= 26 || name == "" {
			continue
		}
		for len(kw) <= i {
			kw = append(kw, "")
		}
		kw[i] = name
	}
	return kw
}

// Writer writes messages into one folder it created.
type Writer struct {
	dir      string
	host     string
	n        int
	keywords []string // letters given out, a first
}

// Create makes the folder dir (with tmp/, new/ and cur/).
func Create(dir, host string) (*Writer, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	return &Writer{dir: dir, host: strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)}, nil
}

// SubfolderDir is where the Maildir++ subfolder with the given name (its
// "/" separated parts already in modified UTF-7) lives under root.
func SubfolderDir(root, name string) string {
	return filepath.Join(root, "."+strings.ReplaceAll(name, "/", "."))
}

// Write stores one message in cur/ with its flags, written to tmp/ and
// synced first, then renamed (the Maildir protocol), its modification time
// set to date.
func (w *Writer) Write(body io.Reader, date time.Time, flags []string) error {
	w.n++
	base := fmt.Sprintf("%d.M%dP%d_%d.%s", date.Unix(), date.Nanosecond()/1000, os.Getpid(), w.n, w.host)
	tmp := filepath.Join(w.dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	_, err = io.Copy(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, date, date)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.dir, "cur", base+":2,"+w.letters(flags)))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

// letters turns flags into the info letters, system flags in ASCII order
// then keywords, giving keywords letters as they first appear (at most 26;
// more are left out of the names).
func (w *Writer) letters(flags []string) string {
	var sys, kw []byte
	for _, f := range flags {
		found := false
		for _, l := range letters {
			if strings.EqualFold(f, l.flag) {
				sys, found = append(sys, l.letter), true
			}
		}
		if found || strings.HasPrefix(f, `\`) {
			continue
		}
		i := slices.Index(w.keywords, f)
		if i < 0 && len(w.keywords) < 26 {
			w.keywords = append(w.keywords, f)
			i = len(w.keywords) - 1
		}
		if i >= 0 {
			kw = append(kw, byte('a'+i))
		}
	}
	slices.Sort(sys)
	slices.Sort(kw)
	return string(sys) + string(kw)
}

// Close writes dovecot-keywords for the keywords the names use.
func (w *Writer) Close() error {
	if len(w.keywords) == 0 {
		return nil
	}
	var b strings.Builder
	for i, k := range w.keywords {
		fmt.Fprintf(&b, "%d %s\n", i, k)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "dovecot-keywords"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}
