package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"posta/internal/blob"
)

// Clock is the worker's time source; tests use a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults for RunOptions' zero values.
const (
	DefaultConcurrency = 4
	DefaultMaxAge      = 5 * 24 * time.Hour
	DefaultDelayNotice = 4 * time.Hour
	DefaultPoll        = 30 * time.Second
	DefaultSendTimeout = 20 * time.Minute
)

// DefaultBackoff is the wait after the 1st, 2nd, ... failed attempt; the
// last one repeats. RFC 5321 4.5.4.1 suggests at least 30 minutes between
// retries but welcomes "more sophisticated strategies": the short first
// steps get through greylisting (which typically asks for a few minutes)
// without a long wait, and the schedule reaches the RFC's "two or three
// hours" pace within four hours.
var DefaultBackoff = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour,
}

// RunOptions configure the worker. RFC 5321 4.5.4.1: the retry parameters
// MUST be configurable; they are MaxAge, DelayNotice and Backoff.
type RunOptions struct {
	// Transport sends a message to one destination domain (required).
	Transport Transport
	// Bounce delivers a DSN (a complete message, CRLF line ends) to the
	// sender `to` with the null reverse-path MAIL FROM:<> (RFC 5321 4.5.5):
	// into the local mailbox, or through Enqueue when the sender is remote.
	// requireTLS: the DSN is about a REQUIRETLS message and must go with
	// REQUIRETLS too (RFC 8689 5). Required; an error is retried later, the
	// DSN stays owed.
	Bounce func(ctx context.Context, dsn []byte, to string, requireTLS bool) error
	// Sign, optional, returns header fields to prepend to the message
	// (DKIM-Signature) for the sending domain: the MAIL FROM address's
	// domain. It is called once per message per attempt; an error is
	// logged and the message goes out unsigned (a signing fault of ours
	// must not bounce mail).
	Sign func(ctx context.Context, domain string, body io.Reader) ([]byte, error)
	// Blobs holds the bodies (the mail store's, mailstore.Store.Blobs());
	// the queue removes a body once its message has left the queue.
	Blobs *blob.Store
	// Clock: time.Now and time.After when nil.
	Clock Clock
	// Concurrency bounds the Send calls in flight (destinations at once),
	// and so the messages being worked on. Default 4.
	Concurrency int
	Logger      *slog.Logger
	// Hostname names this MTA in DSNs (Reporting-MTA, From
	// MAILER-DAEMON@Hostname). Default os.Hostname().
	Hostname string
	// MaxAge: a message still undelivered this long after it was queued is
	// bounced. Default 5 days (RFC 5321 4.5.4.1: give-up time "at least
	// 4-5 days"). It applies to messages from the time the worker first
	// picks them up; a message keeps the expiry it got then.
	MaxAge time.Duration
	// DelayNotice: after this long in the queue, one "delayed" DSN goes to
	// the sender. Default 4 hours; negative: never.
	DelayNotice time.Duration
	// Backoff: default DefaultBackoff.
	Backoff []time.Duration
	// Poll: the worker looks at the database at least this often, so
	// changes made by another process (posta queue retry/release) take
	// effect without a kick. Default 30 seconds.
	Poll time.Duration
	// SendTimeout bounds one Send (its context's deadline). A message is
	// leased for SendTimeout plus a margin before each Send, so no other
	// worker takes it while a send may still be running. Default 20 min.
	SendTimeout time.Duration
}

func (o *RunOptions) setDefaults() error {
	if o.Transport == nil || o.Bounce == nil || o.Blobs == nil {
		return errors.New("queue: RunOptions need Transport, Bounce and Blobs")
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.DelayNotice == 0 {
		o.DelayNotice = DefaultDelayNotice
	}
	if len(o.Backoff) == 0 {
		o.Backoff = DefaultBackoff
	}
	for _, d := range o.Backoff {
		if d < time.Second {
			return fmt.Errorf("queue: backoff step %v is under a second", d)
		}
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	return nil
}

// backoff is the wait after the n-th failed attempt (n >= 1).
func (o *RunOptions) backoff(n int) time.Duration {
	i := min(max(n-1, 0), len(o.Backoff)-1)
	return o.Backoff[i]
}

// lease is how long a claim keeps a message from other workers: longer
// than any Send may run, so the lease holder is the only sender.
func (o *RunOptions) lease() time.Duration { return o.SendTimeout + 5*time.Minute }

// Run is the delivery worker; it returns when ctx is done, after the
// attempts in flight have ended (their sends are cancelled) and their
// results are committed. Its error is only for bad options.
//
// One owner goroutine (this one) keeps the set of messages in flight. It
// sleeps until the earliest next attempt, a Kick (Enqueue, Retry, Release
// kick), a finished job, or the Poll interval, whichever comes first; then
// it claims due messages that are not held, up to Concurrency, and starts a
// job for each. A claim is a conditional UPDATE that sets a lease
// (lease_until), so two workers, in one process or two, never work on one
// message at once; the lease is renewed before each Send and checked at
// each commit, and Send's context ends before the lease does.
//
// Durability: a result is committed before anything acts on it (the next
// send, a DSN, the body's removal). A crash after the remote server
// accepted the message and before that commit leaves the recipient queued:
// it is sent again after the lease runs out, a duplicate, never a loss.
// A DSN is sent before its "owed" flag is cleared: a crash in between may
// send it twice, never zero times.
//
// Run once per Queue (the kick channel is the Queue's).
func (q *Queue) Run(ctx context.Context, o RunOptions) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	w := &worker{q: q, o: o, log: o.Logger, sem: make(chan struct{}, o.Concurrency)}
	busy := map[int64]bool{}
	// done has room for every job that can be in flight (at most
	// Concurrency), so a job's last send never blocks.
	done := make(chan int64, o.Concurrency)
	// trash: bodies may wait for removal (at start, after a crash; after a
	// job or a Drop; after a poll, for what another process dropped).
	trash := true
	for {
		if ctx.Err() != nil {
			for len(busy) > 0 {
				delete(busy, <-done)
			}
			return nil
		}
		now := o.Clock.Now()
		if trash {
			if err := q.emptyTrash(ctx, o.Blobs); err != nil && ctx.Err() == nil {
				w.log.Error("queue: removing bodies", "err", err)
			} else {
				trash = false
			}
		}
		if free := o.Concurrency - len(busy); free > 0 {
			ids, err := q.due(ctx, now, free+len(busy))
			if err != nil && ctx.Err() == nil {
				w.log.Error("queue: looking for due messages", "err", err)
			}
			var want []int64
			for _, id := range ids {
				if !busy[id] && len(want) < free {
					want = append(want, id)
				}
			}
			claimed, err := q.claim(ctx, want, now, &o)
			if err != nil && ctx.Err() == nil {
				w.log.Error("queue: claiming messages", "err", err)
			}
			for _, id := range claimed {
				busy[id] = true
				go func() {
					w.process(ctx, &job{id: id, lease: now.Add(o.lease()).Unix()})
					done <- id
				}()
			}
		}
		wait := o.Poll
		if len(busy) < o.Concurrency {
			// With every slot busy, a job's end wakes us first.
			next, ok, err := q.nextWake(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("queue: next attempt", "err", err)
			}
			if ok {
				if d := next.Sub(now); d < wait {
					wait = d
				}
			}
			if wait <= 0 {
				wait = time.Second // due but not claimable this instant
			}
		}
		// A kick that came during the scan means another look now.
		select {
		case <-q.kick:
			trash = true
			continue
		default:
		}
		timer := o.Clock.After(wait)
		if len(busy) == 0 && q.idle != nil {
			q.idle(now.Add(wait))
		}
		select {
		case <-ctx.Done():
		case id := <-done:
			delete(busy, id)
			trash = true
		case <-q.kick:
			trash = true // Drop kicks
		case <-timer:
			trash = true
		}
	}
}

// due lists messages whose next attempt has come, that are not held and
// not leased, earliest first.
func (q *Queue) due(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	rows, err := q.st.DB().QueryContext(ctx, `SELECT id FROM queue WHERE held = 0 AND next_attempt <= ? AND lease_until <= ?
		ORDER BY next_attempt, id LIMIT ?`, now.Unix(), now.Unix(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// claim takes due messages for this worker, in one commit: the lease
// keeps other workers off them, next_attempt moves to the lease's end
// (where a crashed worker's message becomes due again), and a message seen
// for the first time gets its expiry. It returns the ids it got; the others
// someone else was faster to.
func (q *Queue) claim(ctx context.Context, ids []int64, now time.Time, o *RunOptions) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lease := now.Add(o.lease()).Unix()
	args := []any{lease, lease, int64(o.MaxAge / time.Second), now.Unix(), now.Unix()}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = "?"
		args = append(args, id)
	}
	rows, err := q.db.QueryContext(ctx, `UPDATE queue SET lease_until = ?, next_attempt = ?,
		expires_at = CASE WHEN expires_at = 0 THEN created_at + ? ELSE expires_at END
		WHERE held = 0 AND next_attempt <= ? AND lease_until <= ? AND id IN (`+strings.Join(marks, ",")+`)
		RETURNING id`, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: claim: %w", err)
	}
	defer rows.Close()
	var got []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("queue: claim: %w", err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: claim: %w", err)
	}
	return got, nil
}

// nextWake is the earliest time a message not held becomes claimable.
func (q *Queue) nextWake(ctx context.Context) (time.Time, bool, error) {
	var t sql.NullInt64
	err := q.st.DB().QueryRowContext(ctx, `SELECT MIN(CASE WHEN lease_until > next_attempt THEN lease_until ELSE next_attempt END)
		FROM queue WHERE held = 0`).Scan(&t)
	if err != nil || !t.Valid {
		return time.Time{}, false, err
	}
	return time.Unix(t.Int64, 0), true, nil
}
