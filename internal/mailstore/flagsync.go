package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// Deferred sync of flag changes.
//
// Every commit is durable before it is acknowledged (synchronous=FULL: the
// WAL is fsynced at each commit), except one kind: a batch that only
// changes flags (IMAP STORE, the \Seen a FETCH sets, POP3's marks) may
// commit without the fsync, and the writer syncs the WAL within
// DeferFlagSync's delay, or sooner when any other change commits (SQLite
// appends to one WAL, so the sync of a later commit covers every earlier
// one). What a power failure (not a crash of the process: the data is in
// the kernel then) can lose is the last flag changes of that window, never
// a message, an expunge or a mailbox; the database stays consistent
// (SQLite WAL with synchronous=NORMAL). Dovecot's default (mail_fsync =
// optimized) makes the same trade without bounding the window.
//
// MODSEQ must never be handed out twice (RFC 7162 3.1): changes lost that
// way took MODSEQs clients may have seen, so after an unclean stop every
// account's counter moves past them (lostModSeqGap).

// DefaultFlagSyncDelay is how long a flag change may wait for its sync.
const DefaultFlagSyncDelay = 200 * time.Millisecond

// lostModSeqGap is added to every account's MODSEQ counter after an unclean
// stop: more than a delay's worth of changes could ever take.
const lostModSeqGap = 1 << 24

// DeferFlagSync sets how long a commit that only changes flags may wait for
// its sync; 0 syncs every commit before it is acknowledged.
func (s *Store) DeferFlagSync(d time.Duration) {
	if s.wal == nil {
		d = 0
	}
	s.flagDelay.Store(int64(max(d, 0)))
}

// deferrable: a batch of flag changes only, while deferring is on.
func (s *Store) deferrable(batch []*op) bool {
	if s.flagDelay.Load() <= 0 {
		return false
	}
	for _, o := range batch {
		if !o.lazy {
			return false
		}
	}
	return true
}

// setSync switches the writer connection between synchronous=FULL (the
// commit syncs the WAL) and NORMAL (it does not), when it is not already.
func (s *Store) setSync(ctx context.Context, full bool) error {
	if s.full == full {
		return nil
	}
	mode := "NORMAL"
	if full {
		mode = "FULL"
	}
	if _, err := s.wconn.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
		return fmt.Errorf("mailstore: synchronous %s: %w", mode, err)
	}
	s.full = full
	return nil
}

// syncWAL makes the deferred commits durable: an fsync of the WAL file
// (through a descriptor of our own: fsync applies to the file, whichever
// descriptor asks).
func (s *Store) syncWAL() {
	if s.wal == nil {
		return
	}
	if err := s.wal.Sync(); err != nil {
		// The changes are committed and acknowledged; a later sync may
		// still succeed. Say so loudly: the disk is failing.
		s.log.Error("mailstore: sync of deferred flag changes failed", "err", err)
		return
	}
	s.syncs.Add(1)
}

// openWriter takes the writer's own connection, opens the WAL for syncs,
// and, when the last run did not stop cleanly, moves every MODSEQ counter
// past what the lost deferred commits may have handed out.
func (s *Store) openWriter(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mailstore: writer connection: %w", err)
	}
	s.wconn, s.full = conn, true
	var file string
	if err := conn.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
		conn.Close()
		return fmt.Errorf("mailstore: database file: %w", err)
	}
	// Without a WAL file to sync (an in-memory database), every commit
	// syncs itself.
	if file != "" {
		if f, err := os.Open(file + "-wal"); err == nil {
			s.wal = f
		} else if !errors.Is(err, os.ErrNotExist) {
			conn.Close()
			return fmt.Errorf("mailstore: WAL: %w", err)
		}
	}
	if s.wal == nil {
		s.flagDelay.Store(0)
	}
	if err := s.markRunning(ctx); err != nil {
		s.releaseWriter()
		return err
	}
	return nil
}

// markRunning records that a store runs, first moving every MODSEQ
// counter past what deferred commits lost by an unclean stop may have
// handed out.
func (s *Store) markRunning(ctx context.Context) error {
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mailstore: begin: %w", err)
	}
	defer tx.Rollback()
	var running int
	err = tx.QueryRowContext(ctx, `SELECT value FROM mailstore_state WHERE name = 'running'`).Scan(&running)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mailstore: state: %w", err)
	}
	if running != 0 {
		res, err := tx.ExecContext(ctx, `UPDATE mail_accounts SET modseq = modseq + ?`, lostModSeqGap)
		if err != nil {
			return fmt.Errorf("mailstore: move MODSEQ counters: %w", err)
		}
		n, _ := res.RowsAffected()
		s.log.Warn("mail store was not closed cleanly; MODSEQ counters moved past any deferred flag change it may have lost",
			"accounts", n, "gap", lostModSeqGap)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO mailstore_state (name, value) VALUES ('running', 1)
		ON CONFLICT (name) DO UPDATE SET value = 1`); err != nil {
		return fmt.Errorf("mailstore: state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mailstore: state: %w", err)
	}
	return nil
}

// closeWriter records a clean stop (the writer has returned, so every
// deferred commit is synced) and releases the writer's connection.
func (s *Store) closeWriter() error {
	var err error
	if serr := s.setSync(context.Background(), true); serr != nil {
		err = serr
	} else if _, e := s.wconn.ExecContext(context.Background(), `UPDATE mailstore_state SET value = 0 WHERE name = 'running'`); e != nil {
		err = fmt.Errorf("mailstore: record clean stop: %w", e)
	}
	s.releaseWriter()
	return err
}

func (s *Store) releaseWriter() {
	s.wconn.Close()
	if s.wal != nil {
		s.wal.Close()
	}
}
