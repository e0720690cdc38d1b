package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"posta/internal/blob"
	"posta/internal/directory"
	"posta/internal/mailstore"
	"posta/internal/queue"
)

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
}

// Options configure a Delivery.
type Options struct {
	Directory     *directory.Directory
	Store         *mailstore.Store
	Queue         *queue.Queue
	Logger        *slog.Logger
	MaxSize       int64
	SenderMustOwn bool
}

// New makes a Delivery.
func New(o Options) *Delivery {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Delivery{dir: o.Directory, store: o.Store, queue: o.Queue, log: log, maxSize: o.MaxSize, senderMustOwn: o.SenderMustOwn}
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
	w, err := d.store.Blobs().Create()
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	bw := bufio.NewWriterSize(w, 64<<10)
	returnPath := "Return-Path: <" + env.MailFrom + ">\r\n"
	if _, err := bw.WriteString(returnPath); err != nil {
		return err
	}
	limit := d.maxSize
	if limit <= 0 {
		limit = 1 << 62
	}
	// Read one byte past the limit to tell "exactly the limit" from "over".
	n, err := io.Copy(bw, io.LimitReader(body, limit+1))
	if err != nil {
		return fmt.Errorf("delivery: read message: %w", err)
	}
	if n > limit {
		return fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, limit)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	dirName, err := w.Commit()
	committed = true
	if err != nil {
		return err
	}
	id, size := w.ID(), w.Size()
	structure, err := d.structure(id)
	if err != nil {
		d.store.Blobs().Remove(id)
		return err
	}

	if len(p.local) == 0 {
		// Only remote recipients: the queue owns the body itself.
		if err := syncDirs(dirName); err != nil {
			d.store.Blobs().Remove(id)
			return err
		}
		if err := d.enqueue(ctx, env, p, id, size, int64(len(returnPath))); err != nil {
			d.store.Blobs().Remove(id)
			return err
		}
		d.log.Info("queued", "id", env.ID, "size", size, "remote", len(p.remote))
		return nil
	}
	if len(p.remote) > 0 {
		// Local and remote: the queue gets its own name for the body (a
		// hard link, no copy), so either side can remove its copy alone.
		qid, qdir, err := d.store.Blobs().Link(id)
		if err != nil {
			d.store.Blobs().Remove(id)
			return err
		}
		err = syncDirs(dirName, qdir)
		if err == nil {
			err = d.enqueue(ctx, env, p, qid, size, int64(len(returnPath)))
		}
		if err != nil {
			d.store.Blobs().Remove(qid)
			d.store.Blobs().Remove(id)
			return err
		}
	}
	msg := mailstore.NewMessage{Blob: id, BlobDir: dirName, Size: size, InternalDate: env.ReceivedAt, Structure: structure}
	if err := d.store.Deliver(ctx, msg, p.local); err != nil {
		// Not acknowledged: the sender will retry. A remote copy already
		// queued would then be sent twice; that is the lesser failure
		// (duplicate, never loss), and it needs a store error to happen.
		d.store.Blobs().Remove(id)
		return err
	}
	d.log.Info("delivered", "id", env.ID, "size", size, "local", len(p.local), "remote", len(p.remote))
	return nil
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
		BodyType: env.Body, Recipients: p.remote, Created: env.ReceivedAt})
	return err
}
