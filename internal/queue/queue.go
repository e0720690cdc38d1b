// Package queue holds outbound mail: messages from authenticated users to
// other domains wait here, durably, until they are delivered to the remote
// MX, retried, or bounced. Enqueue stores a message; Run is the worker that
// sends it through a Transport (internal/queue/mx speaks SMTP), retries with
// backoff and returns delivery status notifications (RFC 3464); Show, Retry,
// Hold, Release and Drop are the operator's handles (posta queue).
//
// It imports no protocol server.
package queue

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"posta/internal/blob"
	"posta/internal/database"
)

var migrations = []string{
	`CREATE TABLE queue (
		id           INTEGER PRIMARY KEY,
		blob         TEXT NOT NULL,
		body_offset  INTEGER NOT NULL DEFAULT 0,
		size         INTEGER NOT NULL,
		mail_from    TEXT NOT NULL,
		account      TEXT NOT NULL,
		envid        TEXT NOT NULL DEFAULT '',
		ret          TEXT NOT NULL DEFAULT '',
		smtputf8     INTEGER NOT NULL DEFAULT 0,
		body_type    TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL,
		next_attempt INTEGER NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		held         INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE queue_recipients (
		queue_id   INTEGER NOT NULL REFERENCES queue(id),
		address    TEXT NOT NULL,
		notify     TEXT NOT NULL DEFAULT '',
		orcpt      TEXT NOT NULL DEFAULT '',
		status     TEXT NOT NULL DEFAULT 'queued',
		last_error TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (queue_id, address)
	);
	CREATE INDEX queue_next ON queue (next_attempt);`,

	// 2: the worker's state. Per message: when it expires (0 until the
	// worker first picks it up: then created_at + MaxAge), the last attempt
	// and its error, whether the delay notice went out, and the lease that
	// keeps it with one worker while it is being sent. Per recipient: the
	// last reply (code, enhanced code, text in last_error, remote MTA),
	// when it was last tried and became final, whether it expired, and
	// whether a DSN about its final state is still owed. queue_trash lists
	// bodies whose rows are gone and whose files still have to be removed.
	`ALTER TABLE queue ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue ADD COLUMN last_attempt INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
	ALTER TABLE queue ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue_recipients ADD COLUMN code INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue_recipients ADD COLUMN enhanced TEXT NOT NULL DEFAULT '';
	ALTER TABLE queue_recipients ADD COLUMN remote_mta TEXT NOT NULL DEFAULT '';
	ALTER TABLE queue_recipients ADD COLUMN last_attempt INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue_recipients ADD COLUMN final_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue_recipients ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE queue_recipients ADD COLUMN dsn_pending INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE queue_trash (blob TEXT PRIMARY KEY);`,

	// 3: REQUIRETLS (RFC 8689): the message goes out only over verified
	// TLS to servers that offer REQUIRETLS.
	`ALTER TABLE queue ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;`,
}

// Queue is the outbound queue in posta.db.
type Queue struct {
	db *sql.DB
	st *database.Stmts // the worker's hot queries, prepared once
	// kick wakes Run: capacity 1, sent to without blocking, so wake-ups
	// coalesce and Enqueue never waits for the worker.
	kick chan struct{}
	// idle, set by tests before Run, is called by the owner goroutine when
	// it is about to sleep with nothing in flight, with the wake-up time.
	idle func(next time.Time)
}

// Open prepares the queue tables.
func Open(ctx context.Context, db *sql.DB) (*Queue, error) {
	if err := database.Migrate(ctx, db, "queue", migrations); err != nil {
		return nil, err
	}
	return &Queue{db: db, st: database.NewStmts(db), kick: make(chan struct{}, 1)}, nil
}

// Kick wakes the worker to look for due messages now. It never blocks;
// kicks that arrive while one is pending are one kick. Another process (the
// CLI) cannot kick: the worker sees its changes at its next poll.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Recipient is one remote forward-path with its DSN parameters.
type Recipient struct {
	Address string
	Notify  []string
	ORCPT   string
}

// Message is one outbound message. Its body (Blob, already durable) belongs
// to the queue from Enqueue on; BodyOffset skips bytes meant only for local
// copies (the Return-Path line).
type Message struct {
	ID         int64
	Blob       blob.ID
	BodyOffset int64
	Size       int64
	MailFrom   string
	Account    string
	EnvID      string
	Ret        string
	SMTPUTF8   bool
	BodyType   string
	// RequireTLS: REQUIRETLS (RFC 8689 4.2.1), the message is relayed only
	// over verified TLS to a server offering REQUIRETLS, else it bounces.
	RequireTLS bool
	Recipients []Recipient
	Created    time.Time
	Attempts   int
	Held       bool
	// Expires is when the queue gives up on the recipients still pending
	// and bounces them. Zero at Enqueue means Created + the worker's
	// MaxAge, fixed when the worker first picks the message up.
	Expires time.Time

	// Filled by List and Show; Enqueue ignores them.
	NextAttempt   time.Time // zero: due at once (after Retry)
	LastAttempt   time.Time // zero before the first attempt
	LastError     string    // the last temporary failure, for the operator
	Pending       int       // recipients not final yet
	DelayNotified bool      // the delay DSN went out (or none was wanted)
	Sending       bool      // a worker holds the message now
}

// Enqueue stores m durably (the commit is synchronous), wakes the worker
// and returns the message's id.
func (q *Queue) Enqueue(ctx context.Context, m Message) (int64, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("queue: begin: %w", err)
	}
	defer tx.Rollback()
	now := m.Created
	if now.IsZero() {
		now = time.Now()
	}
	var expires int64
	if !m.Expires.IsZero() {
		expires = m.Expires.Unix()
	}
	res, err := q.st.Tx(tx).ExecContext(ctx, `INSERT INTO queue (blob, body_offset, size, mail_from, account, envid, ret, smtputf8,
		body_type, require_tls, created_at, next_attempt, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		string(m.Blob), m.BodyOffset, m.Size, m.MailFrom, m.Account, m.EnvID, m.Ret, m.SMTPUTF8, m.BodyType, m.RequireTLS,
		now.Unix(), now.Unix(), expires)
	if err != nil {
		return 0, fmt.Errorf("queue: insert: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("queue: insert: %w", err)
	}
	for _, r := range m.Recipients {
		if _, err := q.st.Tx(tx).ExecContext(ctx, `INSERT INTO queue_recipients (queue_id, address, notify, orcpt) VALUES (?, ?, ?, ?)
			ON CONFLICT (queue_id, address) DO NOTHING`, id, r.Address, strings.Join(r.Notify, ","), r.ORCPT); err != nil {
			return 0, fmt.Errorf("queue: recipient: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("queue: commit: %w", err)
	}
	q.Kick()
	return id, nil
}

// List returns the queued messages, oldest first, with their recipients.
func (q *Queue) List(ctx context.Context) ([]Message, error) {
	return q.messages(ctx, 0)
}

// messageColumns are scanned by scanMessage, in this order.
const messageColumns = `id, blob, body_offset, size, mail_from, account, envid, ret, smtputf8, body_type,
	created_at, attempts, held, expires_at, next_attempt, last_attempt, last_error, delay_notified, lease_until,
	require_tls`

func scanMessage(sc interface{ Scan(...any) error }, now time.Time) (Message, error) {
	var m Message
	var b string
	var created, expires, next, last, lease int64
	err := sc.Scan(&m.ID, &b, &m.BodyOffset, &m.Size, &m.MailFrom, &m.Account, &m.EnvID, &m.Ret, &m.SMTPUTF8,
		&m.BodyType, &created, &m.Attempts, &m.Held, &expires, &next, &last, &m.LastError, &m.DelayNotified, &lease,
		&m.RequireTLS)
	m.Blob, m.Created = blob.ID(b), time.Unix(created, 0)
	m.Expires, m.NextAttempt, m.LastAttempt = unixOrZero(expires), unixOrZero(next), unixOrZero(last)
	m.Sending = lease > now.Unix()
	return m, err
}

func unixOrZero(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(t, 0)
}

// messages reads one message (id != 0) or all, with their recipients.
func (q *Queue) messages(ctx context.Context, id int64) ([]Message, error) {
	query := `SELECT ` + messageColumns + ` FROM queue ORDER BY id`
	var args []any
	if id != 0 {
		query = `SELECT ` + messageColumns + ` FROM queue WHERE id = ?`
		args = append(args, id)
	}
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	now := time.Now()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows, now)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("queue: list: %w", err)
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	for i := range out {
		rs, err := q.recipients(ctx, q.db, out[i].ID)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out[i].Recipients = append(out[i].Recipients, r.Recipient)
			if r.State == StateQueued {
				out[i].Pending++
			}
		}
	}
	return out, nil
}
