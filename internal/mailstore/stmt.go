package mailstore

import (
	"context"
	"database/sql"

	"posta/internal/database"
)

// The store's queries run through database.Stmts, prepared once per
// connection: SQLite spends most of a small statement's time parsing it.
// The set of queries is fixed (they are constants in this package), so the
// cache is bounded.

// wtx is the writer's transaction; its methods run cached prepared
// statements inside it.
type wtx struct {
	q   database.Querier
	ctx context.Context
}

func (w *wtx) Exec(q string, args ...any) (sql.Result, error) {
	return w.q.ExecContext(w.ctx, q, args...)
}

func (w *wtx) QueryRow(q string, args ...any) *sql.Row {
	return w.q.QueryRowContext(w.ctx, q, args...)
}

func (w *wtx) Query(q string, args ...any) (*sql.Rows, error) {
	return w.q.QueryContext(w.ctx, q, args...)
}

// dbQuerier runs cached prepared statements outside a transaction (readers).
type dbQuerier struct {
	ctx context.Context
	q   database.Querier
}

func (q dbQuerier) QueryRow(query string, args ...any) *sql.Row {
	return q.q.QueryRowContext(q.ctx, query, args...)
}

func (q dbQuerier) Query(query string, args ...any) (*sql.Rows, error) {
	return q.q.QueryContext(q.ctx, query, args...)
}
