package queue

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"sort"
	"strings"
	"sync"
	"time"
)

// worker is Run's shared state for its jobs.
type worker struct {
	q   *Queue
	o   RunOptions
	log *slog.Logger
	// sem bounds the Send calls in flight across all jobs (Concurrency).
	sem chan struct{}
}

// job is one claimed message. lease is the lease_until value this worker
// wrote: every commit checks it is still there (a fencing token), so a
// worker whose message was dropped, or whose lease another worker took
// after it ran out, changes nothing.
type job struct {
	id    int64
	mu    sync.Mutex // serializes the job's commits and lease renewals
	lease int64
	// removed: a record found every recipient final with no DSN owed and
	// deleted the message in the same commit.
	removed bool
}

// errLost: the message is gone (dropped) or no longer leased by this job.
var errLost = errors.New("queue: message dropped or lease lost")

// dsnGiveUp is how long after a message's expiry an owed DSN that cannot
// be handed to Bounce is still retried; dsnRetry is the wait between tries.
const (
	dsnGiveUp = 24 * time.Hour
	dsnRetry  = 5 * time.Minute
)

// owned runs fn in a transaction that first checks the job still holds
// the message.
func (w *worker) owned(ctx context.Context, j *job, fn func(tx *sql.Tx) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	tx, err := w.q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue: begin: %w", err)
	}
	defer tx.Rollback()
	var one int
	err = w.q.st.Tx(tx).QueryRowContext(ctx, `SELECT 1 FROM queue WHERE id = ? AND lease_until = ?`, j.id, j.lease).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return errLost
	}
	if err != nil {
		return fmt.Errorf("queue: lease: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue: commit: %w", err)
	}
	return nil
}

// renew extends the lease before a Send, so it outlasts the Send's timeout.
func (w *worker) renew(ctx context.Context, j *job) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	lease := w.o.Clock.Now().Add(w.o.lease()).Unix()
	if lease <= j.lease {
		return nil
	}
	res, err := w.q.st.DB().ExecContext(ctx, `UPDATE queue SET lease_until = ? WHERE id = ? AND lease_until = ?`, lease, j.id, j.lease)
	if err != nil {
		return fmt.Errorf("queue: lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("queue: lease: %w", err)
	} else if n == 0 {
		return errLost
	}
	j.lease = lease
	return nil
}

// release ends the job's lease and sets the next attempt; a Retry that
// came during the job (next_attempt 0) wins.
func (w *worker) release(ctx context.Context, j *job, next time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err := w.q.st.DB().ExecContext(ctx, `UPDATE queue SET lease_until = 0,
		next_attempt = CASE WHEN next_attempt = 0 THEN 0 ELSE ? END WHERE id = ? AND lease_until = ?`,
		next.Unix(), j.id, j.lease)
	if err != nil {
		return fmt.Errorf("queue: release: %w", err)
	}
	return nil
}

// load reads the message and its recipients.
func (w *worker) load(ctx context.Context, id int64) (Message, []RecipientStatus, error) {
	row := w.q.st.DB().QueryRowContext(ctx, `SELECT `+messageColumns+` FROM queue WHERE id = ?`, id)
	m, err := scanMessage(row, w.o.Clock.Now())
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil, fmt.Errorf("%w: %d", ErrNoSuchMessage, id)
	}
	if err != nil {
		return m, nil, fmt.Errorf("queue: load: %w", err)
	}
	rs, err := w.q.recipients(ctx, w.q.st.DB(), id)
	return m, rs, err
}

// process works on one claimed message: an attempt for its pending
// recipients, expiry, DSNs owed, then either its removal or the release of
// its lease with the next attempt time. Its commits use a context that
// outlives ctx, so what was done before a shutdown is recorded.
func (w *worker) process(ctx context.Context, j *job) {
	dbctx := context.WithoutCancel(ctx)
	log := w.log.With("queue_id", j.id)
	m, rs, err := w.load(dbctx, j.id)
	if err != nil {
		if !errors.Is(err, ErrNoSuchMessage) {
			log.Error("queue: load", "err", err)
			w.release(dbctx, j, w.o.Clock.Now().Add(w.o.Poll))
		}
		return
	}
	tried := false
	if pending := filterState(rs, StateQueued); len(pending) > 0 {
		tried, err = w.attempt(ctx, j, m, pending, log)
		if j.removed {
			log.Info("queue: done", "attempts", m.Attempts+1)
			return
		}
		if err != nil {
			w.stop(dbctx, j, err, log)
			return
		}
	}
	now := w.o.Clock.Now()
	if rs, err = w.q.recipients(dbctx, w.q.st.DB(), j.id); err != nil {
		w.stop(dbctx, j, err, log)
		return
	}
	pending := filterState(rs, StateQueued)
	if tried {
		// RFC 5321 4.5.4.1: retries continue until the give-up time; then
		// the recipients still pending fail (RFC 5321 6.1: notify the sender).
		expire := !m.Expires.IsZero() && !now.Before(m.Expires)
		err = w.owned(dbctx, j, func(tx *sql.Tx) error {
			if expire {
				for _, r := range pending {
					if _, err := tx.ExecContext(dbctx, `UPDATE queue_recipients SET status = ?, expired = 1, final_at = ?, dsn_pending = ?
						WHERE queue_id = ? AND address = ? AND status = ?`,
						StateBounced, now.Unix(), m.MailFrom != "" && wantsFailure(r.Notify), j.id, r.Address, StateQueued); err != nil {
						return fmt.Errorf("queue: expire: %w", err)
					}
				}
			}
			_, err := w.q.st.Tx(tx).ExecContext(dbctx, `UPDATE queue SET attempts = attempts + 1, last_attempt = ?, last_error = ? WHERE id = ?`,
				now.Unix(), lastError(pending), j.id)
			return err
		})
		if err != nil {
			w.stop(dbctx, j, err, log)
			return
		}
		m.Attempts++
		if expire {
			log.Info("queue: expired", "recipients", len(pending), "age", now.Sub(m.Created).String())
			for i := range rs {
				if rs[i].State == StateQueued {
					rs[i].State, rs[i].Expired, rs[i].Final = StateBounced, true, now
					rs[i].DSNPending = m.MailFrom != "" && wantsFailure(rs[i].Notify)
				}
			}
			pending = nil
		}
	}
	if ctx.Err() != nil {
		// Shutting down: DSNs wait for the next start (they are owed in the
		// database); what was not tried is due at once then.
		w.release(dbctx, j, w.next(m, now, tried, len(pending) > 0))
		return
	}

	next := w.next(m, now, tried, len(pending) > 0)
	owed := false
	for _, r := range rs {
		owed = owed || r.DSNPending
	}
	if owed {
		if err := w.sendOwed(ctx, j, m, rs, now, log); errors.Is(err, errLost) {
			return
		} else if err != nil {
			log.Warn("queue: DSN not delivered, will retry", "err", err)
			if len(pending) == 0 {
				next = now.Add(dsnRetry)
			} else {
				next = earliest(next, now.Add(dsnRetry))
			}
		} else {
			owed = false
		}
	}
	if len(pending) > 0 && !m.DelayNotified && w.o.DelayNotice > 0 && !now.Before(m.Created.Add(w.o.DelayNotice)) {
		if err := w.sendDelay(ctx, j, m, pending, now, log); errors.Is(err, errLost) {
			return
		} else if err != nil {
			log.Warn("queue: delay DSN not delivered, will retry", "err", err)
		}
	}
	if len(pending) == 0 && !owed {
		w.remove(dbctx, j, m, log)
		return
	}
	if err := w.release(dbctx, j, next); err != nil {
		log.Error("queue: release", "err", err)
	}
}

// stop ends a job after an error: lost means someone else owns the message
// now (or it is gone); other errors release it to be retried after a poll.
func (w *worker) stop(ctx context.Context, j *job, err error, log *slog.Logger) {
	if errors.Is(err, errLost) {
		log.Info("queue: message dropped or taken over during the attempt")
		return
	}
	log.Error("queue: attempt", "err", err)
	if err := w.release(ctx, j, w.o.Clock.Now().Add(w.o.Poll)); err != nil {
		log.Error("queue: release", "err", err)
	}
}

// next is the next attempt for a message with recipients still pending:
// the backoff after its attempts, but never past the moment the delay
// notice is due or the expiry, so both happen on time (at an attempt).
// Without an attempt (shutdown), it is due again at once.
func (w *worker) next(m Message, now time.Time, tried, pending bool) time.Time {
	if !pending || !tried {
		return now
	}
	next := now.Add(w.o.backoff(m.Attempts))
	if !m.DelayNotified && w.o.DelayNotice > 0 {
		if at := m.Created.Add(w.o.DelayNotice); at.After(now) {
			next = earliest(next, at)
		}
	}
	if !m.Expires.IsZero() && m.Expires.After(now) {
		next = earliest(next, m.Expires)
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// remove deletes a message whose recipients are all final. Its body goes
// later, through queue_trash (emptied by Run between jobs, in batches):
// the file goes only after the commit, and a crash in between leaves it
// to the next wake-up, not on disk forever.
func (w *worker) remove(ctx context.Context, j *job, m Message, log *slog.Logger) {
	err := w.owned(ctx, j, func(tx *sql.Tx) error {
		_, err := deleteMessage(ctx, w.q.st.Tx(tx), j.id)
		return err
	})
	if errors.Is(err, errLost) {
		return
	}
	if err != nil {
		log.Error("queue: remove", "err", err)
		w.release(ctx, j, w.o.Clock.Now().Add(w.o.Poll))
		return
	}
	log.Info("queue: done", "attempts", m.Attempts)
}

func filterState(rs []RecipientStatus, s State) []RecipientStatus {
	var out []RecipientStatus
	for _, r := range rs {
		if r.State == s {
			out = append(out, r)
		}
	}
	return out
}

// lastError summarizes the pending recipients' last failure for the
// operator (posta queue list).
func lastError(pending []RecipientStatus) string {
	for _, r := range pending {
		if r.Code != 0 || r.Text != "" {
			return describe(r)
		}
	}
	return ""
}

// describe is one line about a recipient's last reply.
func describe(r RecipientStatus) string {
	var b strings.Builder
	if r.Code != 0 {
		fmt.Fprintf(&b, "%d ", r.Code)
		if r.Enhanced != "" && !strings.HasPrefix(r.Text, r.Enhanced) {
			b.WriteString(r.Enhanced + " ")
		}
	}
	b.WriteString(r.Text)
	if r.RemoteMTA != "" {
		fmt.Fprintf(&b, " (%s)", r.RemoteMTA)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// domainOf is the domain of an address, lower case; "" without one.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// attempt sends the message once to each destination domain of its pending
// recipients, at most Concurrency sends at once across all jobs, and
// records each domain's results as they come. tried reports whether any
// result counted (a send cut short by shutdown does not count).
func (w *worker) attempt(ctx context.Context, j *job, m Message, pending []RecipientStatus, log *slog.Logger) (bool, error) {
	dbctx := context.WithoutCancel(ctx)
	byDomain := map[string][]RecipientStatus{}
	for _, r := range pending {
		d := domainOf(r.Address)
		byDomain[d] = append(byDomain[d], r)
	}
	domains := make([]string, 0, len(byDomain))
	for d := range byDomain {
		domains = append(domains, d)
	}
	sort.Strings(domains)

	f, ferr := w.o.Blobs.Open(m.Blob)
	if ferr != nil {
		log.Error("queue: message body unavailable", "blob", string(m.Blob), "err", ferr)
	} else {
		defer f.Close()
	}
	// RFC 8689 4.1: "TLS-Required: No" tags the message, unless it came
	// with REQUIRETLS.
	optional := ferr == nil && !m.RequireTLS && tlsOptional(io.NewSectionReader(f, m.BodyOffset, m.Size))
	var hdr []byte
	if ferr == nil && w.o.Sign != nil {
		if d := domainOf(m.MailFrom); d != "" {
			var err error
			if hdr, err = w.o.Sign(ctx, d, io.NewSectionReader(f, m.BodyOffset, m.Size)); err != nil {
				log.Error("queue: signing failed, sending unsigned", "domain", d, "err", err)
				hdr = nil
			}
		}
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		tried bool
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil || errors.Is(err, errLost) {
			first = err
		}
		mu.Unlock()
	}
	for _, d := range domains {
		acquired := false
		select {
		case w.sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if acquired && ctx.Err() != nil {
			<-w.sem
		}
		if ctx.Err() != nil {
			break // shutting down: the other domains wait for the next start
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-w.sem }()
			rcpts := byDomain[d]
			var results []Result
			switch {
			case d == "":
				results = synthesize(rcpts, Result{Code: 0, Enhanced: "5.1.3", Text: "address has no domain", Permanent: true})
			case ferr != nil:
				results = synthesize(rcpts, Result{Text: "message body unavailable (local error)"})
			default:
				if err := w.renew(dbctx, j); err != nil {
					fail(err)
					return
				}
				env := Envelope{ID: m.ID, MailFrom: m.MailFrom, Domain: d, Size: int64(len(hdr)) + m.Size,
					SMTPUTF8: m.SMTPUTF8, BodyType: m.BodyType, RequireTLS: m.RequireTLS, TLSOptional: optional,
					EnvID: m.EnvID, Ret: m.Ret}
				for _, r := range rcpts {
					env.Recipients = append(env.Recipients, r.Recipient)
				}
				body := func() (io.Reader, error) {
					return io.MultiReader(bytes.NewReader(hdr), io.NewSectionReader(f, m.BodyOffset, m.Size)), nil
				}
				sctx, cancel := context.WithTimeout(ctx, w.o.SendTimeout)
				results = w.o.Transport.Send(sctx, env, body)
				cancel()
			}
			counted, err := w.record(dbctx, j, m, rcpts, results, ctx.Err() != nil, log)
			if err != nil {
				fail(err)
				return
			}
			if counted {
				mu.Lock()
				tried = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return tried, first
}

func synthesize(rs []RecipientStatus, r Result) []Result {
	out := make([]Result, len(rs))
	for i, rc := range rs {
		out[i] = r
		out[i].Recipient = rc.Address
	}
	return out
}

// permanent: RFC 5321 4.2.1: a 5yz reply is a permanent failure, whatever
// the transport says; the transport also marks failures without a reply
// that cannot get better (null MX, RFC 7505 4.1).
func permanent(r Result) bool { return r.Permanent || r.Code >= 500 && r.Code <= 599 }

// record commits what one Send did to one domain's recipients. With
// cancelled (shutdown cut the send short), only real outcomes count: a 2xx
// (the remote took the message: forgetting it would send it twice) and a
// 5xx; other failures are not counted as an attempt.
func (w *worker) record(ctx context.Context, j *job, m Message, rcpts []RecipientStatus, results []Result, cancelled bool, log *slog.Logger) (bool, error) {
	byAddr := map[string]Result{}
	for _, r := range results {
		if _, dup := byAddr[r.Recipient]; !dup {
			byAddr[r.Recipient] = r
		}
		if k := strings.ToLower(r.Recipient); byAddr[k].Recipient == "" {
			byAddr[k] = r
		}
	}
	now := w.o.Clock.Now()
	counted := false
	err := w.owned(ctx, j, func(tx *sql.Tx) error {
		for _, rc := range rcpts {
			res, ok := byAddr[rc.Address]
			if !ok {
				res, ok = byAddr[strings.ToLower(rc.Address)]
			}
			if !ok {
				res = Result{Recipient: rc.Address, Text: "no result from the transport (local error)"}
			}
			state, final, dsn := StateQueued, int64(0), false
			switch {
			case res.Delivered():
				// RFC 3461 5.2.2 (b), (e): a "relayed" DSN only when SUCCESS
				// was asked for and the remote will not send one itself
				// (it takes DSN requests, RFC 3461 5.2.1 (c)).
				state, final, dsn = StateSent, now.Unix(), m.MailFrom != "" && wantsSuccess(rc.Notify) && !res.RemoteDSN
			case permanent(res) && (!cancelled || res.Code >= 500):
				// RFC 3461 5.2.6: a failed DSN unless NOTIFY excludes
				// FAILURE; RFC 5321 6.1: never to the null reverse-path.
				state, final, dsn = StateBounced, now.Unix(), m.MailFrom != "" && wantsFailure(rc.Notify)
			case cancelled:
				continue
			}
			counted = true
			if _, err := w.q.st.Tx(tx).ExecContext(ctx, `UPDATE queue_recipients SET status = ?, code = ?, enhanced = ?, last_error = ?,
				remote_mta = ?, last_attempt = ?, final_at = ?, dsn_pending = ? WHERE queue_id = ? AND address = ?`,
				state, res.Code, res.Enhanced, res.Text, res.RemoteMTA, now.Unix(), final, dsn, j.id, rc.Address); err != nil {
				return fmt.Errorf("queue: record: %w", err)
			}
			args := []any{"to", rc.Address, "code", res.Code, "enhanced", res.Enhanced, "remote", res.RemoteMTA}
			if res.Err != nil {
				args = append(args, "err", res.Err)
			}
			switch state {
			case StateSent:
				log.Info("queue: sent", args...)
			case StateBounced:
				log.Info("queue: bounced", args...)
			default:
				log.Info("queue: deferred", append(args, "text", res.Text)...)
			}
		}
		// The usual end, in the same commit: every recipient final and no
		// DSN owed, so the message goes (its body through queue_trash).
		var left int
		if err := w.q.st.Tx(tx).QueryRowContext(ctx, `SELECT COUNT(*) FROM queue_recipients WHERE queue_id = ? AND (status = ? OR dsn_pending)`,
			j.id, StateQueued).Scan(&left); err != nil {
			return fmt.Errorf("queue: record: %w", err)
		}
		if left == 0 {
			if _, err := deleteMessage(ctx, w.q.st.Tx(tx), j.id); err != nil {
				return err
			}
			j.removed = true
		}
		return nil
	})
	return counted, err
}

// notifyHas reports whether NOTIFY lists kw (RFC 3461 4.1 b: any case).
func notifyHas(notify []string, kw string) bool {
	for _, n := range notify {
		if strings.EqualFold(strings.TrimSpace(n), kw) {
			return true
		}
	}
	return false
}

// wantsFailure: RFC 3461 5.2.6 (a), (c): a failed DSN when NOTIFY has
// FAILURE or is absent; NEVER or a list without FAILURE: none.
func wantsFailure(notify []string) bool { return len(notify) == 0 || notifyHas(notify, "FAILURE") }

// wantsDelay: RFC 3461 5.2.5 (a)-(c), 4.1: absent NOTIFY may be read as
// FAILURE,DELAY; we read it so and send delay notices; a NOTIFY list
// without DELAY forbids them.
func wantsDelay(notify []string) bool { return len(notify) == 0 || notifyHas(notify, "DELAY") }

// wantsSuccess: RFC 3461 5.2.2 (b), (e): only on explicit SUCCESS.
func wantsSuccess(notify []string) bool { return notifyHas(notify, "SUCCESS") }

// tlsOptional reports one "TLS-Required: No" header field in the message
// header (RFC 8689 3: a single instance; ABNF strings match in any case).
// A header that does not parse gets no exemption.
func tlsOptional(r io.Reader) bool {
	h, err := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 256<<10))).ReadMIMEHeader()
	if err != nil {
		return false
	}
	v := h.Values("Tls-Required")
	return len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "No")
}
