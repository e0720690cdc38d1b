package database

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMigrateIsIncrementalAndPersistent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []string{`CREATE TABLE t (a INTEGER)`, `ALTER TABLE t ADD COLUMN b TEXT`}
	if err := Migrate(ctx, db, "test", steps[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t (a) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Running step 1 again would fail (table exists): Migrate must skip it.
	if err := Migrate(ctx, db, "test", steps); err != nil {
		t.Fatal(err)
	}
	var a int
	var b *string
	if err := db.QueryRow(`SELECT a, b FROM t`).Scan(&a, &b); err != nil || a != 1 || b != nil {
		t.Fatalf("row after migration = %d %v %v", a, b, err)
	}
	if err := Migrate(ctx, db, "test", steps[:1]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("downgrade not refused: %v", err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var sync int
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (want 2, FULL), %v", sync, err)
	}
}

// TestIdleConnectionsKept: readers running side by side find idle
// connections to reuse instead of each query opening a SQLite connection
// (pragmas, schema, statements) that is then closed: database/sql's
// default keeps only two.
func TestIdleConnectionsKept(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const readers = 8
	for round := range 20 {
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rows, err := db.Query(`SELECT 1`)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // hold the connection, so the readers overlap
				rows.Close()
			}()
		}
		wg.Wait()
		if s := db.Stats(); s.MaxIdleClosed > 0 {
			t.Fatalf("round %d: %d connections closed for want of idle room (open %d)", round, s.MaxIdleClosed, s.OpenConnections)
		}
	}
}
