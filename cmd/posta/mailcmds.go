package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"posta/internal/database"
	"posta/internal/delivery"
	"posta/internal/directory"
	"posta/internal/imapwire"
	"posta/internal/maildir"
	"posta/internal/mailstore"
	"posta/internal/mbox"
)

func newMailCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "mail", Short: "Import and export an account's mail (Maildir, mbox)"}
	var into string
	imp := &cobra.Command{
		Use:   "import ADDRESS PATH...",
		Short: "Import Maildir folders or mbox files into an account (with the server stopped)",
		Long: `Import mail into an account from other servers' files:

  - a Maildir (Dovecot, Courier, Postfix): the folder itself goes to INBOX (or
    --into), its Maildir++ subfolders (.Work.Projects) to folders of their names;
    flags come from the file names (and dovecot-keywords), the date from the
    file's time;
  - an mbox file (Thunderbird, mutt, Google Takeout): every message goes to
    INBOX (or --into); flags come from Status, X-Status and X-Keywords.

Folders are created as needed; lines are stored with CRLF endings, as IMAP
serves them. The account's quota is not applied. Importing twice imports
twice. The server must be stopped: it keeps the mail store's state in memory.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withMailStore(cmd.Context(), args[0], func(ms *mailSession) error {
				for _, p := range args[1:] {
					if err := ms.importPath(p, into); err != nil {
						return err
					}
				}
				ms.prog.finish()
				fmt.Fprintf(g.stdout, "imported %d messages (%s) into %s\n", ms.prog.n, mib(ms.prog.bytes), ms.account)
				for _, f := range ms.folders {
					fmt.Fprintf(g.stdout, "  %-30s %d\n", f, ms.counts[f])
				}
				return nil
			})
		},
	}
	imp.Flags().StringVar(&into, "into", "", "folder for mbox messages and a Maildir's own messages (default INBOX)")
	exp := &cobra.Command{
		Use:   "export ADDRESS DIR",
		Short: "Export an account's mail as a Maildir (with the server stopped)",
		Long: `Export every folder of an account into DIR as a Maildir: INBOX in DIR
itself, other folders as Maildir++ subfolders (.Work.Projects), flags in the
file names (keywords through dovecot-keywords), each file's time its
internal date. Dovecot, Courier and "posta mail import" read it back.
The server must be stopped.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withMailStore(cmd.Context(), args[0], func(ms *mailSession) error {
				if err := ms.export(args[1]); err != nil {
					return err
				}
				ms.prog.finish()
				fmt.Fprintf(g.stdout, "exported %d messages (%s) of %s to %s\n", ms.prog.n, mib(ms.prog.bytes), ms.account, args[1])
				return nil
			})
		},
	}
	cmd.AddCommand(imp, exp)
	return cmd
}

// mailSession is one import or export: the stores, opened with the data
// directory locked, and what was done.
type mailSession struct {
	ctx     context.Context
	account string
	store   *mailstore.Store
	spool   *delivery.Delivery
	host    string
	prog    *progress
	folders []string // in the order first used
	counts  map[string]int
	batch   []mailstore.NewMessage
	release []func()
	size    int64
	mailbox string
}

// withMailStore locks the data directory (the server must be stopped),
// opens the stores and checks the account.
func (g *globals) withMailStore(ctx context.Context, address string, fn func(*mailSession) error) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := database.Lock(cfg.DataDir)
	if errors.Is(err, database.ErrLocked) {
		return fmt.Errorf("%w: stop the server first (its mail store keeps state in memory)", err)
	}
	if err != nil {
		return err
	}
	defer unlock()
	db, err := database.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	dir, err := directory.Open(ctx, db)
	if err != nil {
		return err
	}
	acc, err := dir.Account(ctx, address)
	if err != nil {
		return err
	}
	st, err := mailstore.Open(ctx, db, cfg.DataDir, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.EnsureAccount(ctx, acc.Address); err != nil {
		return err
	}
	ms := &mailSession{ctx: ctx, account: acc.Address, store: st, host: cfg.Hostname,
		spool: delivery.New(delivery.Options{Directory: dir, Store: st}),
		prog:  newProgress(g.stderr), counts: map[string]int{}}
	return fn(ms)
}

// importPath imports one Maildir or mbox file.
func (ms *mailSession) importPath(path, into string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if into == "" {
		into = "INBOX"
	}
	if !st.IsDir() {
		return ms.importMbox(path, into)
	}
	folders, err := maildir.Folders(path)
	if err != nil {
		return err
	}
	for _, f := range folders {
		name := into
		if f.Name != "" {
			name = folderName(f.Name)
		}
		msgs, err := maildir.Messages(f.Dir)
		if err != nil {
			return err
		}
		if err := ms.use(name); err != nil {
			return err
		}
		ms.prog.label = path
		for _, m := range msgs {
			body, err := os.ReadFile(m.Path)
			if err != nil {
				return fmt.Errorf("read %s: %w", m.Path, err)
			}
			if err := ms.add(body, m.Date, m.Flags); err != nil {
				return fmt.Errorf("%s: %w", m.Path, err)
			}
		}
	}
	return ms.flush()
}

func (ms *mailSession) importMbox(path, into string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := ms.use(into); err != nil {
		return err
	}
	ms.prog.label = path
	r := mbox.NewReader(f)
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := ms.add(m.Body, m.Date, m.Flags); err != nil {
			return fmt.Errorf("%s: message at offset %d: %w", path, m.Offset, err)
		}
	}
	return ms.flush()
}

// folderName decodes a Maildir++ folder name (modified UTF-7, as IMAP
// servers write them); one that does not decode is taken as it is.
func folderName(raw string) string {
	if s, err := imapwire.DecodeUTF7(raw); err == nil {
		return s
	}
	return raw
}

// use makes name the folder the next messages go to, creating it.
func (ms *mailSession) use(name string) error {
	if err := ms.flush(); err != nil {
		return err
	}
	if imapwire.IsInbox(name) {
		name = "INBOX"
	}
	if _, err := ms.store.Mailbox(ms.ctx, ms.account, name); errors.Is(err, mailstore.ErrNoMailbox) {
		if _, err := ms.store.CreateMailbox(ms.ctx, ms.account, name, ""); err != nil && !errors.Is(err, mailstore.ErrMailboxExists) {
			return fmt.Errorf("create folder %q: %w", name, err)
		}
	} else if err != nil {
		return err
	}
	ms.mailbox = name
	if _, ok := ms.counts[name]; !ok {
		ms.folders = append(ms.folders, name)
		ms.counts[name] = 0
	}
	return nil
}

// Messages are appended in batches: one commit (one fsync) for many.
const (
	importBatch      = 100
	importBatchBytes = 16 << 20
)

func (ms *mailSession) add(body []byte, date time.Time, flags []string) error {
	body = crlf(body)
	if date.IsZero() {
		date = time.Now()
	}
	nm, release, err := ms.spool.Spool(bytes.NewReader(body), int64(len(body)), date)
	if err != nil {
		return err
	}
	nm.Flags = storeFlags(flags)
	ms.batch = append(ms.batch, nm)
	ms.release = append(ms.release, release)
	ms.size += int64(len(body))
	ms.counts[ms.mailbox]++
	ms.prog.add(int64(len(body)))
	if len(ms.batch) >= importBatch || ms.size >= importBatchBytes {
		return ms.flush()
	}
	return nil
}

func (ms *mailSession) flush() error {
	if len(ms.batch) == 0 {
		return nil
	}
	_, err := ms.store.Append(ms.ctx, ms.account, ms.mailbox, ms.batch...)
	if err != nil {
		for _, r := range ms.release {
			r()
		}
	}
	ms.batch, ms.release, ms.size = nil, nil, 0
	if err != nil {
		return fmt.Errorf("store into %s: %w", ms.mailbox, err)
	}
	return nil
}

// crlf ends every line with CRLF (IMAP serves messages that way, RFC 9051
// 2.3.4; Maildir and mbox files usually have bare LF).
func crlf(b []byte) []byte {
	n := bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte("\r\n"))
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// storeFlags maps IMAP flag names to the store's flags; \Recent and
// unknown system flags are dropped, and keywords that are not IMAP atoms
// (RFC 9051 9 flag-keyword) too.
func storeFlags(names []string) mailstore.Flags {
	var f mailstore.Flags
	for _, n := range names {
		switch strings.ToLower(n) {
		case `\seen`:
			f.System |= mailstore.Seen
		case `\answered`:
			f.System |= mailstore.Answered
		case `\flagged`:
			f.System |= mailstore.Flagged
		case `\deleted`:
			f.System |= mailstore.Deleted
		case `\draft`:
			f.System |= mailstore.Draft
		default:
			if isAtom(n) {
				f.Keywords = append(f.Keywords, n)
			}
		}
	}
	return f
}

func isAtom(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// export writes every folder of the account as a Maildir under dir.
func (ms *mailSession) export(dir string) error {
	boxes, err := ms.store.Mailboxes(ms.ctx, ms.account)
	if err != nil {
		return err
	}
	for _, mb := range boxes {
		fdir := dir
		if mb.Name != "INBOX" {
			enc := imapwire.EncodeUTF7(mb.Name)
			if strings.Contains(enc, ".") {
				// Maildir++ separates levels with "."; one inside a
				// name cannot be written.
				enc = strings.ReplaceAll(enc, ".", "_")
				fmt.Fprintf(ms.prog.w, "folder %q has a \".\" in its name: written as %q\n", mb.Name, enc)
			}
			fdir = maildir.SubfolderDir(dir, enc)
		}
		w, err := maildir.Create(fdir, ms.host)
		if err != nil {
			return err
		}
		metas, err := ms.store.Messages(ms.ctx, mb.ID)
		if err != nil {
			return err
		}
		ms.prog.label = mb.Name
		for _, m := range metas {
			if err := ms.exportOne(w, mb.ID, m); err != nil {
				return fmt.Errorf("%s UID %d: %w", mb.Name, m.UID, err)
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (ms *mailSession) exportOne(w *maildir.Writer, mailbox int64, m mailstore.MessageMeta) error {
	body, err := ms.store.OpenMessageBody(ms.ctx, mailbox, m.UID)
	if errors.Is(err, mailstore.ErrNoMessage) {
		return nil
	}
	if err != nil {
		return err
	}
	defer body.Close()
	var flags []string
	for _, f := range []struct {
		bit  mailstore.Flag
		name string
	}{{mailstore.Seen, `\Seen`}, {mailstore.Answered, `\Answered`}, {mailstore.Flagged, `\Flagged`},
		{mailstore.Deleted, `\Deleted`}, {mailstore.Draft, `\Draft`}} {
		if m.Flags.System&f.bit != 0 {
			flags = append(flags, f.name)
		}
	}
	flags = append(flags, m.Flags.Keywords...)
	if err := w.Write(body, m.InternalDate, flags); err != nil {
		return err
	}
	ms.prog.add(m.Size)
	return nil
}

// progress reports a long import or export on stderr, at most once a
// second, and a last line at the end.
type progress struct {
	w     io.Writer
	label string
	n     int
	bytes int64
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer) *progress {
	now := time.Now()
	return &progress{w: w, last: now, start: now}
}

func (p *progress) add(size int64) {
	p.n++
	p.bytes += size
	if now := time.Now(); now.Sub(p.last) >= time.Second {
		p.last = now
		p.print()
	}
}

func (p *progress) print() {
	secs := time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "%s: %d messages, %s, %.0f messages/s\n", p.label, p.n, mib(p.bytes), float64(p.n)/max(secs, 0.001))
}

func (p *progress) finish() {
	if time.Since(p.start) >= time.Second {
		p.print()
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
