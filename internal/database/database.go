// Package database opens Posta's SQLite database (posta.db) with the settings
// every component relies on, and applies each component's schema migrations.
//
// SQLite runs through modernc.org/sqlite, a pure Go driver, so the binary
// builds with CGO_ENABLED=0. The directory and the mail store share one file;
// each owns its tables and its migration list, keyed by component name.
//
// It imports nothing of Posta's own.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// idleConns is the least number of idle connections kept for reuse.
const idleConns = 16

// FileName is the database's name inside the data directory.
const FileName = "posta.db"

// LockName is the lock file inside the data directory (see Lock).
const LockName = "posta.lock"

// ErrLocked: another process (a running server) holds the data directory.
var ErrLocked = errors.New("the data directory is in use by a running posta serve")

// Open opens (creating if needed) the database in dataDir.
//
// WAL lets readers (IMAP FETCH, CLI listings) proceed during a write;
// synchronous=FULL makes a commit durable before it returns, which is what
// lets a server acknowledge a message after its commit; busy_timeout lets the
// CLI write while a server runs; _txlock=immediate takes the write lock at
// BEGIN so two writers queue instead of failing with SQLITE_BUSY on upgrade.
func Open(dataDir string) (*sql.DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("database: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	// database/sql keeps 2 idle connections unless told otherwise: with more
	// sessions reading at once, each query beyond those opened a new SQLite
	// connection (pragmas, schema) and prepared its statements again, then
	// closed it; under POP3 load that was a fifth of the server's CPU. Keep
	// enough for the concurrency the cores can serve; idle ones go after a
	// while, so a burst does not hold their page caches for ever.
	db.SetMaxIdleConns(max(idleConns, 4*runtime.GOMAXPROCS(0)))
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// Migrate brings component's tables up to date by running the statements in
// steps that have not run yet, each step in its own transaction. Steps are
// append-only: released steps are never edited, new ones are added at the end.
func Migrate(ctx context.Context, db *sql.DB, component string, steps []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("database: schema_version: %w", err)
	}
	for {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("database: migrate %s: %w", component, err)
		}
		var v int
		err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE component = ?`, component).Scan(&v)
		if err != nil && err != sql.ErrNoRows {
			tx.Rollback()
			return fmt.Errorf("database: migrate %s: %w", component, err)
		}
		if v > len(steps) {
			tx.Rollback()
			return fmt.Errorf("database: %s schema version %d is newer than this program knows (%d): upgrade posta", component, v, len(steps))
		}
		if v == len(steps) {
			return tx.Rollback()
		}
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("database: migrate %s to version %d: %w", component, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (component, version) VALUES (?, ?)
			ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, v+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("database: migrate %s: %w", component, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("database: migrate %s: %w", component, err)
		}
	}
}
