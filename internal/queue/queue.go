// Package queue holds outbound mail: messages from authenticated users to
// other domains wait here, durably, until they are delivered to the remote
// MX, retried, or bounced. This version stores and lists them; the delivery
// workers (MX lookup, TLS, retries, DSN) build on the same tables.
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
}

// Queue is the outbound queue in posta.db.
type Queue struct {
	db *sql.DB
}

// Open prepares the queue tables.
func Open(ctx context.Context, db *sql.DB) (*Queue, error) {
	if err := database.Migrate(ctx, db, "queue", migrations); err != nil {
		return nil, err
	}
	return &Queue{db: db}, nil
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
	Recipients []Recipient
	Created    time.Time
	Attempts   int
	Held       bool
}

// Enqueue stores m durably (the commit is synchronous) and returns its id.
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
	res, err := tx.ExecContext(ctx, `INSERT INTO queue (blob, body_offset, size, mail_from, account, envid, ret, smtputf8,
		body_type, created_at, next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		string(m.Blob), m.BodyOffset, m.Size, m.MailFrom, m.Account, m.EnvID, m.Ret, m.SMTPUTF8, m.BodyType, now.Unix(), now.Unix())
	if err != nil {
		return 0, fmt.Errorf("queue: insert: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("queue: insert: %w", err)
	}
	for _, r := range m.Recipients {
		if _, err := tx.ExecContext(ctx, `INSERT INTO queue_recipients (queue_id, address, notify, orcpt) VALUES (?, ?, ?, ?)
			ON CONFLICT (queue_id, address) DO NOTHING`, id, r.Address, strings.Join(r.Notify, ","), r.ORCPT); err != nil {
			return 0, fmt.Errorf("queue: recipient: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("queue: commit: %w", err)
	}
	return id, nil
}

// List returns the queued messages, oldest first.
func (q *Queue) List(ctx context.Context) ([]Message, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT id, blob, body_offset, size, mail_from, account, envid, ret, smtputf8, body_type,
		created_at, attempts, held FROM queue ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	var out []Message
	for rows.Next() {
		var m Message
		var b string
		var created int64
		if err := rows.Scan(&m.ID, &b, &m.BodyOffset, &m.Size, &m.MailFrom, &m.Account, &m.EnvID, &m.Ret, &m.SMTPUTF8,
			&m.BodyType, &created, &m.Attempts, &m.Held); err != nil {
			rows.Close()
			return nil, fmt.Errorf("queue: list: %w", err)
		}
		m.Blob, m.Created = blob.ID(b), time.Unix(created, 0)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	for i := range out {
		rs, err := q.db.QueryContext(ctx, `SELECT address, notify, orcpt FROM queue_recipients WHERE queue_id = ? ORDER BY address`, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("queue: recipients: %w", err)
		}
		for rs.Next() {
			var r Recipient
			var notify string
			if err := rs.Scan(&r.Address, &notify, &r.ORCPT); err != nil {
				rs.Close()
				return nil, fmt.Errorf("queue: recipients: %w", err)
			}
			if notify != "" {
				r.Notify = strings.Split(notify, ",")
			}
			out[i].Recipients = append(out[i].Recipients, r)
		}
		rs.Close()
	}
	return out, nil
}
