package mailstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmts caches prepared statements by query text. SQLite spends most of a
// small statement's time parsing it; database/sql keeps a prepared
// statement per connection, so after the first use on a connection a query
// costs only its execution. The set of queries is fixed (they are constants
// in this package), so the cache is bounded.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmts) get(q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st, nil
	}
	st, err := c.db.Prepare(q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// wtx is the writer's transaction; its methods run cached prepared
// statements inside it.
type wtx struct {
	tx  *sql.Tx
	c   *stmts
	ctx context.Context
}

func (w *wtx) Exec(q string, args ...any) (sql.Result, error) {
	st, err := w.c.get(q)
	if err != nil {
		return nil, err
	}
	return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
}

func (w *wtx) QueryRow(q string, args ...any) *sql.Row {
	st, err := w.c.get(q)
	if err != nil {
		// Let the error surface at Scan, as database/sql does.
		return w.tx.QueryRowContext(w.ctx, q, args...)
	}
	return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
}

func (w *wtx) Query(q string, args ...any) (*sql.Rows, error) {
	st, err := w.c.get(q)
	if err != nil {
		return nil, err
	}
	return w.tx.StmtContext(w.ctx, st).QueryContext(w.ctx, args...)
}

// dbQuerier runs cached prepared statements outside a transaction (readers).
type dbQuerier struct {
	ctx context.Context
	c   *stmts
}

func (q dbQuerier) QueryRow(query string, args ...any) *sql.Row {
	st, err := q.c.get(query)
	if err != nil {
		return q.c.db.QueryRowContext(q.ctx, query, args...)
	}
	return st.QueryRowContext(q.ctx, args...)
}

func (q dbQuerier) Query(query string, args ...any) (*sql.Rows, error) {
	st, err := q.c.get(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(q.ctx, args...)
}
