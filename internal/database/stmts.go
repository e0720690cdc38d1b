package database

import (
	"context"
	"database/sql"
	"sync"
)

// Stmts runs queries through statements prepared once and kept. SQLite's
// parse and plan of a short statement costs about as much as running it,
// and database/sql prepares an unprepared query again at every call; a
// *sql.Stmt is prepared on each connection the first time it runs there and
// reused after. Use it for the queries of a hot path, whose text is fixed.
type Stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// NewStmts returns an empty cache over db. Its statements live as long as
// db (closing db closes them).
func NewStmts(db *sql.DB) *Stmts { return &Stmts{db: db, m: map[string]*sql.Stmt{}} }

// Querier is what *sql.DB and *sql.Tx have in common for running queries.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.m[query] = st
	return st, nil
}

// Close closes the statements; later calls prepare them again.
func (s *Stmts) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.m {
		st.Close()
	}
	s.m = map[string]*sql.Stmt{}
}

// DB runs queries on the database, outside any transaction.
func (s *Stmts) DB() Querier { return cached{s: s} }

// Tx runs queries inside tx.
func (s *Stmts) Tx(tx *sql.Tx) Querier { return cached{s: s, tx: tx} }

type cached struct {
	s  *Stmts
	tx *sql.Tx
}

// stmt returns the statement for query, bound to the transaction if any;
// nil when it cannot be prepared (the plain call then reports why).
func (c cached) stmt(ctx context.Context, query string) *sql.Stmt {
	st, err := c.s.get(ctx, query)
	if err != nil {
		return nil
	}
	if c.tx != nil {
		return c.tx.StmtContext(ctx, st)
	}
	return st
}

func (c cached) plain() Querier {
	if c.tx != nil {
		return c.tx
	}
	return c.s.db
}

func (c cached) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.plain().ExecContext(ctx, query, args...)
}

func (c cached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.plain().QueryContext(ctx, query, args...)
}

func (c cached) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.plain().QueryRowContext(ctx, query, args...)
}
