package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"posta/internal/blob"
	"posta/internal/directory"
	"posta/internal/mailauth"
	"posta/internal/mailstore"
	"posta/internal/queue"
)

// inlineMax is the largest body (with its Return-Path line) kept in the
// database rather than in a file of its own.
const inlineMax = 128 << 10

// Delivery implements the SMTP server's Deliverer.
type Delivery struct {
	dir   *directory.Directory
	store *mailstore.Store
	queue *queue.Queue
	log   *slog.Logger
	// maxSize is the largest message body accepted (the SMTP limit); the
	// SMTP server enforces it too, this is the last line.
	maxSize int64
	// senderMustOwn restricts an authenticated MAIL FROM to the account's
	// own addresses (config smtp.sender_must_own).
	senderMustOwn bool
	// verifier checks SPF, DKIM and DMARC of unauthenticated MX mail; nil
	// means no checks.
	verifier *mailauth.Verifier
}

// Options configure a Delivery.
type Options struct {
	Directory     *directory.Directory
	Store         *mailstore.Store
	Queue         *queue.Queue
	Logger        *slog.Logger
	MaxSize       int64
	SenderMustOwn bool
	// Verifier checks mail arriving on the MX listener without
	// authentication (SPF, DKIM, DMARC); nil means no checks.
	Verifier *mailauth.Verifier
}

// New makes a Delivery.
func New(o Options) *Delivery {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Delivery{dir: o.Directory, store: o.Store, queue: o.Queue, log: log, maxSize: o.MaxSize,
		senderMustOwn: o.SenderMustOwn, verifier: o.Verifier}
}

// CheckSender allows an authenticated user only its own address, its
// +detail forms, and aliases that deliver to it (RFC 6409 6.1 lets a
// submission server enforce this). The null sender is allowed.
func (d *Delivery) CheckSender(ctx context.Context, env *Envelope) error {
	if !d.senderMustOwn || env.Account == "" || env.MailFrom == "" {
		return nil
	}
	a, err := directory.ParseAddress(env.MailFrom)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	rs, err := d.dir.Resolve(ctx, a.String())
	switch {
	case errors.Is(err, directory.ErrNotLocal), errors.Is(err, directory.ErrNoSuchUser), errors.Is(err, directory.ErrAliasLoop):
		return fmt.Errorf("%w: %s", ErrSenderNotOwned, a)
	case err != nil:
		return err
	}
	for _, r := range rs {
		if r.Account == env.Account {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrSenderNotOwned, a)
}

// CheckRecipient decides at RCPT time. Local recipients must exist and have
// room; other domains are accepted only from an authenticated user (no open
// relay, RFC 5321 3.6.2).
func (d *Delivery) CheckRecipient(ctx context.Context, env *Envelope, rcpt Recipient) error {
	a, err := directory.ParseAddress(rcpt.Address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	rs, err := d.dir.Resolve(ctx, a.String())
	switch {
	case errors.Is(err, directory.ErrNotLocal):
		if env.Account == "" {
			return fmt.Errorf("%w: %s", ErrRelayDenied, a.Domain)
		}
		return nil
	case errors.Is(err, directory.ErrNoSuchUser), errors.Is(err, directory.ErrAliasLoop):
		return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
	case err != nil:
		return err
	}
	for _, r := range rs {
		if r.Account == "" {
			continue
		}
		if err := d.checkQuota(ctx, r.Account, env.Size); err != nil {
			return err
		}
	}
	return nil
}

// checkQuota: an account already at its quota is full now (452 4.2.2, the
// sender retries); a declared SIZE that cannot fit is permanent (552 5.2.2).
// An account under its quota takes the message even if it ends a little
// over (one message of grace, as Dovecot's quota_grace), so a message is
// never refused at DATA for a recipient accepted at RCPT.
func (d *Delivery) checkQuota(ctx context.Context, account string, size int64) error {
	acc, err := d.dir.Account(ctx, account)
	if err != nil {
		return err
	}
	if acc.QuotaBytes <= 0 {
		return nil
	}
	used, err := d.store.Usage(ctx, account)
	if err != nil {
		return err
	}
	if used >= acc.QuotaBytes {
		return fmt.Errorf("%w: %s", ErrMailboxFull, account)
	}
	if size > 0 && used+size > acc.QuotaBytes {
		return fmt.Errorf("%w: %s", ErrQuotaExceeded, account)
	}
	return nil
}

// plan is where one message goes.
type plan struct {
	local    []mailstore.Delivery
	accounts []string
	remote   []queue.Recipient
}

func (d *Delivery) plan(ctx context.Context, env *Envelope) (plan, error) {
	var p plan
	seenLocal := map[string]bool{}
	seenRemote := map[string]bool{}
	for _, rc := range env.Recipients {
		a, err := directory.ParseAddress(rc.Address)
		if err != nil {
			return p, fmt.Errorf("%w: %v", ErrBadAddress, err)
		}
		rs, err := d.dir.Resolve(ctx, a.String())
		if errors.Is(err, directory.ErrNotLocal) {
			if env.Account == "" {
				return p, fmt.Errorf("%w: %s", ErrRelayDenied, a.Domain)
			}
			rs = []directory.Recipient{{External: a.String()}}
		} else if errors.Is(err, directory.ErrNoSuchUser) || errors.Is(err, directory.ErrAliasLoop) {
			// The user was deleted between RCPT and DATA.
			return p, fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		} else if err != nil {
			return p, err
		}
		for _, r := range rs {
			switch {
			case r.Account != "" && !seenLocal[r.Account]:
				seenLocal[r.Account] = true
				p.local = append(p.local, mailstore.Delivery{Account: r.Account})
				p.accounts = append(p.accounts, r.Account)
			case r.External != "" && !seenRemote[r.External]:
				seenRemote[r.External] = true
				// DSN parameters follow the recipient the client named;
				// an alias expansion keeps the original ORCPT (RFC 3461 4.2).
				orcpt := rc.ORCPT
				if orcpt == "" {
					orcpt = "rfc822;" + rc.Address
				}
				p.remote = append(p.remote, queue.Recipient{Address: r.External, Notify: rc.Notify, ORCPT: orcpt})
			}
		}
	}
	return p, nil
}

// Deliver writes the body once (Return-Path first, RFC 5321 4.4), makes it
// durable, stores it in every local mailbox in one store transaction, and
// queues remote recipients. It returns nil only when all of that is durable.
//
// Mail arriving on the MX listener without authentication is first checked
// (SPF, DKIM, DMARC) when a Verifier is set: the Authentication-Results
// field goes right after Return-Path (RFC 8601 5), fields in the message
// claiming our authserv-id are renamed X-Original-Authentication-Results,
// a DMARC reject is refused with a *DMARCRejectError before anything is
// stored, and a quarantine goes to each local recipient's \Junk mailbox
// (remote recipients of an alias get it as usual).
func (d *Delivery) Deliver(ctx context.Context, env *Envelope, body io.Reader) error {
	p, err := d.plan(ctx, env)
	if err != nil {
		return err
	}
	for _, acc := range p.accounts {
		// Re-checked at DATA: an account that filled up since RCPT is full
		// now, for the whole message (452, retried), never partly delivered.
		if err := d.checkQuota(ctx, acc, 0); err != nil {
			return err
		}
	}
	limit := d.limit()
	returnPath := "Return-Path: <" + env.MailFrom + ">\r\n"
	// The first inlineMax bytes go to memory: most mail is small, and a
	// small body is stored inside the store's transaction, so the group
	// commit's one fsync makes it durable with its metadata.
	var buf bytes.Buffer
	buf.WriteString(returnPath)
	head := min(limit, inlineMax)
	n, err := io.CopyN(&buf, body, head+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("delivery: read message: %w", err)
	}
	if n > limit {
		return fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, limit)
	}
	small := n <= inlineMax
	inline := buf.Bytes()
	checked := d.checked(env)
	var verdict mailauth.Verdict

	// A file is needed for a large body, and for the outbound queue.
	var w *blob.Writer
	switch {
	case small && checked:
		if inline, verdict, err = d.verifiedInline(ctx, env, returnPath, inline[len(returnPath):]); err != nil {
			return err
		}
	case !small && checked:
		if w, verdict, err = d.spoolVerified(ctx, env, returnPath, inline[len(returnPath):], body, limit); err != nil {
			return err
		}
	case !small:
		if w, err = d.spoolPlain(inline, body, limit-n); err != nil {
			return err
		}
	}
	if small && len(p.remote) > 0 {
		if w, err = d.store.Blobs().Create(); err != nil {
			return err
		}
		if _, err := w.Write(inline); err != nil {
			w.Abort()
			return err
		}
	}
	size := int64(len(inline))
	var fileID blob.ID
	var fileDir string
	if w != nil {
		if fileDir, err = w.Commit(); err != nil {
			return err
		}
		fileID, size = w.ID(), w.Size()
	}
	if verdict.Action == mailauth.Quarantine {
		for i := range p.local {
			p.local[i].Mailbox = d.junkMailbox(ctx, p.local[i].Account)
		}
	}
	removeFile := func() {
		if fileID != "" {
			d.store.Blobs().Remove(fileID)
		}
	}
	var structure []byte
	if small {
		structure, err = parseStructure(bytes.NewReader(inline))
	} else {
		structure, err = d.fileStructure(fileID)
	}
	if err != nil {
		removeFile()
		return err
	}

	if len(p.remote) > 0 {
		qid, qdir := fileID, fileDir
		if !small && len(p.local) > 0 {
			// The local copy uses the file too: the queue gets its own
			// name for it (a hard link, no copy), so either side can
			// remove its copy alone.
			if qid, qdir, err = d.store.Blobs().Link(fileID); err != nil {
				removeFile()
				return err
			}
		}
		err := syncDirs(fileDir, qdir)
		if err == nil {
			// The queued copy starts after Return-Path: forwarded mail
			// keeps our Authentication-Results field, like our Received.
			err = d.enqueue(ctx, env, p, qid, size, int64(len(returnPath)))
		}
		if err != nil {
			if qid != fileID {
				d.store.Blobs().Remove(qid)
			}
			removeFile()
			return err
		}
		if len(p.local) == 0 {
			d.log.Info("queued", "id", env.ID, "size", size, "remote", len(p.remote))
			return nil
		}
		if small {
			fileID = "" // the file is the queue's alone
		}
	}
	msg := mailstore.NewMessage{Size: size, InternalDate: env.ReceivedAt, Structure: structure}
	if small {
		msg.Inline = inline
	} else {
		msg.Body, msg.BlobDir = mailstore.FileBody(fileID), fileDir
	}
	if err := d.store.Deliver(ctx, msg, p.local); err != nil {
		// Not acknowledged: the sender will retry. A remote copy already
		// queued would then be sent twice; that is the lesser failure
		// (duplicate, never loss), and it needs a store error to happen.
		removeFile()
		return err
	}
	if verdict.Action == mailauth.Quarantine {
		d.log.Info("delivered to junk", "id", env.ID, "size", size, "local", len(p.local), "remote", len(p.remote),
			"reason", verdict.Reason)
		return nil
	}
	d.log.Info("delivered", "id", env.ID, "size", size, "local", len(p.local), "remote", len(p.remote))
	return nil
}

// spoolPlain writes a large body to a blob file: head (Return-Path and
// what Deliver already read) and then the rest of the message, up to room
// more bytes. The caller commits the writer.
func (d *Delivery) spoolPlain(head []byte, rest io.Reader, room int64) (*blob.Writer, error) {
	w, err := d.store.Blobs().Create()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(head); err != nil {
		w.Abort()
		return nil, err
	}
	// Read one byte past the limit to tell "exactly the limit" from "over".
	m, err := io.Copy(w, io.LimitReader(rest, room+1))
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("delivery: read message: %w", err)
	}
	if m > room {
		w.Abort()
		return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, d.limit())
	}
	return w, nil
}

// limit is the largest message accepted.
func (d *Delivery) limit() int64 {
	if d.maxSize <= 0 {
		return 1 << 62
	}
	return d.maxSize
}

func syncDirs(dirs ...string) error {
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// enqueue queues the remote recipients; the queued body starts after the
// Return-Path line, which is for local delivery only.
func (d *Delivery) enqueue(ctx context.Context, env *Envelope, p plan, id blob.ID, size, offset int64) error {
	_, err := d.queue.Enqueue(ctx, queue.Message{Blob: id, BodyOffset: offset, Size: size - offset,
		MailFrom: env.MailFrom, Account: env.Account, EnvID: env.EnvID, Ret: env.Ret, SMTPUTF8: env.SMTPUTF8,
		BodyType: env.Body, RequireTLS: env.RequireTLS, Recipients: p.remote, Created: env.ReceivedAt})
	return err
}
