package database

import (
	"context"
	"testing"
)

// TestStmts: cached statements give the plain calls' results, inside a
// transaction they see and undo its writes, and a statement that cannot
// be prepared reports the same error as the plain call.
func TestStmts(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	s := NewStmts(db)
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	const ins = `INSERT INTO t (k, v) VALUES (?, ?)`
	const count = `SELECT COUNT(*) FROM t`
	for k := range 3 {
		if _, err := s.DB().ExecContext(ctx, ins, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	n := func(q Querier) int {
		var n int
		if err := q.QueryRowContext(ctx, count).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := n(s.DB()); got != 3 {
		t.Fatalf("count %d, want 3", got)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tx(tx).ExecContext(ctx, ins, 10, "y"); err != nil {
		t.Fatal(err)
	}
	if got := n(s.Tx(tx)); got != 4 {
		t.Fatalf("count inside the transaction %d, want 4", got)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := n(s.DB()); got != 3 {
		t.Fatalf("count after rollback %d, want 3", got)
	}
	rows, err := s.DB().QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	var ks []int
	for rows.Next() {
		var k int
		rows.Scan(&k)
		ks = append(ks, k)
	}
	rows.Close()
	if len(ks) != 3 || ks[2] != 2 {
		t.Fatalf("keys %v", ks)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO nosuch VALUES (1)`); err == nil {
		t.Fatal("a statement on a missing table ran")
	}
	if len(s.m) != 4 {
		t.Fatalf("%d statements cached, want 4 (the failing one is not)", len(s.m))
	}
}
