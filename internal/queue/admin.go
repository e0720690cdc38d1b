package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"posta/internal/blob"
	"posta/internal/database"
)

// ErrNoSuchMessage: no queued message has that id (it was sent, bounced
// or dropped, or never existed).
var ErrNoSuchMessage = errors.New("no such queued message")

// State is where one recipient of a queued message stands.
type State string

const (
	StateQueued  State = "queued"  // not delivered yet: will be tried (again)
	StateSent    State = "sent"    // the remote server answered 2xx
	StateBounced State = "bounced" // failed for good (5xx, or expired)
)

// RecipientStatus is one recipient with what became of it so far.
type RecipientStatus struct {
	Recipient
	State State
	// The last reply (Code 0: none, e.g. no MX answered; Text says why).
	Code        int
	Enhanced    string
	Text        string
	RemoteMTA   string
	LastAttempt time.Time // zero: never tried
	Final       time.Time // when it became sent or bounced
	Expired     bool      // bounced because the message reached its expiry
	DSNPending  bool      // a DSN about its final state is still to be sent
}

// Detail is one queued message as Show returns it.
type Detail struct {
	Message    Message
	Recipients []RecipientStatus
}

// queryer is *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// recipients reads a message's recipients, ordered by address.
func (q *Queue) recipients(ctx context.Context, db queryer, id int64) ([]RecipientStatus, error) {
	rows, err := db.QueryContext(ctx, `SELECT address, notify, orcpt, status, code, enhanced, last_error, remote_mta,
		last_attempt, final_at, expired, dsn_pending FROM queue_recipients WHERE queue_id = ? ORDER BY address`, id)
	if err != nil {
		return nil, fmt.Errorf("queue: recipients: %w", err)
	}
	defer rows.Close()
	var out []RecipientStatus
	for rows.Next() {
		var r RecipientStatus
		var notify, state string
		var last, final int64
		if err := rows.Scan(&r.Address, &notify, &r.ORCPT, &state, &r.Code, &r.Enhanced, &r.Text, &r.RemoteMTA,
			&last, &final, &r.Expired, &r.DSNPending); err != nil {
			return nil, fmt.Errorf("queue: recipients: %w", err)
		}
		if notify != "" {
			r.Notify = strings.Split(notify, ",")
		}
		r.State, r.LastAttempt, r.Final = State(state), unixOrZero(last), unixOrZero(final)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: recipients: %w", err)
	}
	return out, nil
}

// Show returns one message with each recipient's state and last reply.
func (q *Queue) Show(ctx context.Context, id int64) (*Detail, error) {
	ms, err := q.messages(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: %d", ErrNoSuchMessage, id)
	}
	rs, err := q.recipients(ctx, q.db, id)
	if err != nil {
		return nil, err
	}
	return &Detail{Message: ms[0], Recipients: rs}, nil
}

// Retry makes a message due at once (next_attempt 0 is due whatever the
// worker's clock says) and kicks the worker. A held message stays held. A
// message being sent now is tried again as soon as that attempt ends.
func (q *Queue) Retry(ctx context.Context, id int64) error {
	return q.update(ctx, id, `UPDATE queue SET next_attempt = 0 WHERE id = ?`, true)
}

// RetryAll makes every message that is not held due at once; it returns
// how many.
func (q *Queue) RetryAll(ctx context.Context) (int64, error) {
	res, err := q.db.ExecContext(ctx, `UPDATE queue SET next_attempt = 0 WHERE held = 0`)
	if err != nil {
		return 0, fmt.Errorf("queue: retry: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("queue: retry: %w", err)
	}
	q.Kick()
	return n, nil
}

// Hold keeps a message from being sent until Release. An attempt already
// in flight finishes.
func (q *Queue) Hold(ctx context.Context, id int64) error {
	return q.update(ctx, id, `UPDATE queue SET held = 1 WHERE id = ?`, false)
}

// Release undoes Hold: the message is sent at its next attempt time (at
// once if that has passed).
func (q *Queue) Release(ctx context.Context, id int64) error {
	return q.update(ctx, id, `UPDATE queue SET held = 0 WHERE id = ?`, true)
}

func (q *Queue) update(ctx context.Context, id int64, stmt string, kick bool) error {
	res, err := q.db.ExecContext(ctx, stmt, id)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("queue: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %d", ErrNoSuchMessage, id)
	}
	if kick {
		q.Kick()
	}
	return nil
}

// Drop removes a message without sending it or any DSN, and returns its
// body's id. The body is also listed in queue_trash, in the same
// transaction, so the worker removes the file at its next wake-up even if
// the caller cannot (the CLI has no blob store of its own); removing it
// twice is harmless. A send already in flight cannot be recalled: its
// worker notices the message is gone when it records the result.
func (q *Queue) Drop(ctx context.Context, id int64) (blob.ID, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("queue: drop: %w", err)
	}
	defer tx.Rollback()
	b, err := deleteMessage(ctx, q.st.Tx(tx), id)
	if err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("queue: drop: %w", err)
	}
	q.Kick() // the worker empties the trash
	return b, nil
}

// deleteMessage removes a message's rows and puts its body in the trash.
func deleteMessage(ctx context.Context, tx database.Querier, id int64) (blob.ID, error) {
	var b string
	err := tx.QueryRowContext(ctx, `SELECT blob FROM queue WHERE id = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %d", ErrNoSuchMessage, id)
	}
	if err != nil {
		return "", fmt.Errorf("queue: delete: %w", err)
	}
	for _, stmt := range []string{
		`DELETE FROM queue_recipients WHERE queue_id = ?`,
		`DELETE FROM queue WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, stmt, id); err != nil {
			return "", fmt.Errorf("queue: delete: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO queue_trash (blob) VALUES (?) ON CONFLICT (blob) DO NOTHING`, b); err != nil {
		return "", fmt.Errorf("queue: delete: %w", err)
	}
	return blob.ID(b), nil
}

// emptyTrash removes the files of bodies whose messages are gone, then
// their trash rows (a crash in between only repeats a harmless removal).
func (q *Queue) emptyTrash(ctx context.Context, bs *blob.Store) error {
	rows, err := q.st.DB().QueryContext(ctx, `SELECT blob FROM queue_trash LIMIT 1000`)
	if err != nil {
		return fmt.Errorf("queue: trash: %w", err)
	}
	var ids []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return fmt.Errorf("queue: trash: %w", err)
		}
		ids = append(ids, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("queue: trash: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, b := range ids {
		// An id that is not a blob id cannot name a file: forget it.
		if err := bs.Remove(blob.ID(b)); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return err
		}
		args[i] = b
	}
	// One commit for the batch: the rows of files already removed.
	marks := strings.Repeat(",?", len(ids))[1:]
	if _, err := q.db.ExecContext(ctx, `DELETE FROM queue_trash WHERE blob IN (`+marks+`)`, args...); err != nil {
		return fmt.Errorf("queue: trash: %w", err)
	}
	return nil
}
