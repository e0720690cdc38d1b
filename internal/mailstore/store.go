package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"posta/internal/blob"
	"posta/internal/database"
)

// Errors callers map to protocol replies with errors.Is.
var (
	ErrNoMailbox     = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrHasChildren   = errors.New("mailbox has inferior mailboxes")
	ErrInbox         = errors.New("INBOX cannot be deleted")
	ErrBadName       = errors.New("bad mailbox name")
	ErrNoAccount     = errors.New("no such mail account")
	ErrClosed        = errors.New("mail store closed")
	ErrNoMessage     = errors.New("no such message")
)

// Store is the mail store of one data directory.
type Store struct {
	db    *sql.DB
	blobs *blob.Store
	log   *slog.Logger
	feed  *feed
	index *index // also the feed's: changes reach it first
	now   func() time.Time

	// commits counts transactions (metrics; tests check group commit).
	commits atomic.Int64
	// beforeCommit, when set by a test, runs on the writer before each batch.
	beforeCommit func()

	stmts *database.Stmts

	// The writer's own connection, whose synchronous mode it switches
	// (flagsync.go), and the WAL file it syncs after deferred commits.
	wconn     *sql.Conn
	wal       *os.File
	full      bool         // wconn's mode is synchronous=FULL (writer only)
	flagDelay atomic.Int64 // DeferFlagSync; 0: every commit synced
	syncs     atomic.Int64 // WAL syncs of deferred commits (tests)

	ops      chan *op
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// maxBatch bounds how many waiting changes one transaction takes; the
// channel's capacity bounds how many wait (callers block beyond it, which is
// back-pressure, not loss).
const (
	maxBatch = 256
	opQueue  = 1024
)

// Open prepares the mail tables in db and the bodies under dataDir/blobs,
// and starts the writer.
func Open(ctx context.Context, db *sql.DB, dataDir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := database.Migrate(ctx, db, "mailstore", migrations); err != nil {
		return nil, err
	}
	bs, err := blob.Open(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, blobs: bs, log: log, feed: newFeed(),
		index: newIndex(defaultIndexMax), now: time.Now, stmts: database.NewStmts(db),
		ops: make(chan *op, opQueue), stop: make(chan struct{}), done: make(chan struct{})}
	s.feed.index = s.index
	s.flagDelay.Store(int64(DefaultFlagSyncDelay))
	if err := s.openWriter(ctx); err != nil {
		return nil, err
	}
	go s.writer()
	return s, nil
}

// Close lets the writer finish the changes already queued, then stops it.
// The database is the caller's to close, after this.
func (s *Store) Close() error {
	var err error
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		err = s.closeWriter()
	})
	<-s.done
	s.stmts.Close()
	return err
}

// Blobs is the body store; delivery writes bodies into it before Deliver.
func (s *Store) Blobs() *blob.Store { return s.blobs }

// op is one change for the writer: fn runs inside the shared transaction
// (under its own savepoint, so one failing change does not fail the others);
// after runs once the transaction is durable.
type op struct {
	ctx   context.Context
	fn    func(tx *wtx) error
	after []func()
	dirs  []string
	lazy  bool // flags only: may commit without a sync (flagsync.go)
	err   error
	done  chan struct{}
}

// write queues fn and waits until it is committed (or failed). dirs are
// blob directories whose renames must be synced before the commit.
func (s *Store) write(ctx context.Context, dirs []string, fn func(tx *wtx, o *op) error) error {
	return s.submit(ctx, &op{dirs: dirs}, fn)
}

// writeFlags is write for a change of flags only, which may be committed
// with its sync deferred (see DeferFlagSync).
func (s *Store) writeFlags(ctx context.Context, fn func(tx *wtx, o *op) error) error {
	return s.submit(ctx, &op{lazy: true}, fn)
}

func (s *Store) submit(ctx context.Context, o *op, fn func(tx *wtx, o *op) error) error {
	o.ctx, o.done = ctx, make(chan struct{})
	o.fn = func(tx *wtx) error { return fn(tx, o) }
	select {
	case s.ops <- o:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the change is committed or failed whatever the caller's
	// context does: waiting for the outcome is the only way to report it.
	<-o.done
	return o.err
}

// writer is the single goroutine that commits changes: it takes what is
// waiting (up to maxBatch), syncs the blob directories once, runs every
// change in one transaction, commits once, then answers each. After a
// commit whose sync was deferred it syncs the WAL within the delay.
func (s *Store) writer() {
	defer close(s.done)
	syncTimer := time.NewTimer(time.Hour)
	syncTimer.Stop()
	pending := false // a deferred commit waits for its sync
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-syncTimer.C:
			s.syncWAL()
			pending = false
			continue
		case <-s.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					s.syncWAL()
					return
				}
			}
		}
		batch := []*op{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		// Changes waiting together were made concurrently, so any order
		// of them is one their callers could have seen. Flag changes go
		// first, in a commit of their own when their sync may wait: a STORE
		// then does not wait for the fsync of a delivery that came in
		// beside it.
		for _, b := range s.split(batch) {
			if s.commit(b) && !pending {
				pending = true
				syncTimer.Reset(time.Duration(s.flagDelay.Load()))
			}
		}
	}
}

// split orders a batch for commit: the flag changes whose sync may wait,
// then the rest, each part in the order it came.
func (s *Store) split(batch []*op) [][]*op {
	if s.flagDelay.Load() <= 0 || len(batch) == 1 {
		return [][]*op{batch}
	}
	var lazy, rest []*op
	for _, o := range batch {
		if o.lazy {
			lazy = append(lazy, o)
		} else {
			rest = append(rest, o)
		}
	}
	if len(lazy) == 0 || len(rest) == 0 {
		return [][]*op{batch}
	}
	return [][]*op{lazy, rest}
}

// commit runs and commits one batch; true when its sync was deferred.
func (s *Store) commit(batch []*op) (deferred bool) {
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	s.commits.Add(1)
	finish := func(err error) {
		for _, o := range batch {
			if err != nil && o.err == nil {
				o.err = err
			}
			close(o.done)
		}
	}
	// The bodies' directory entries must be durable before the commit that
	// refers to them; sync each directory once for the batch, in parallel
	// with running the statements, and wait before committing.
	dirSync := make(chan error, 1)
	go func() {
		synced := map[string]bool{}
		var errs []error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, o := range batch {
			for _, d := range o.dirs {
				if synced[d] {
					continue
				}
				synced[d] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := blob.SyncDir(d); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		dirSync <- errors.Join(errs...)
	}()
	// The shared transaction must not die with one caller's context.
	ctx := context.Background()
	deferred = s.deferrable(batch)
	if err := s.setSync(ctx, !deferred); err != nil {
		<-dirSync
		finish(err)
		return false
	}
	sqltx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		<-dirSync
		finish(fmt.Errorf("mailstore: begin: %w", err))
		return false
	}
	tx := &wtx{q: s.stmts.Tx(sqltx), ctx: ctx}
	// A batch of one needs no savepoint: its failure is the batch's.
	single := len(batch) == 1
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if single {
			if err := o.fn(tx); err != nil {
				o.err = err
				sqltx.Rollback()
				<-dirSync
				finish(nil)
				return false
			}
			break
		}
		if _, err := tx.Exec("SAVEPOINT op"); err != nil {
			o.err = fmt.Errorf("mailstore: savepoint: %w", err)
			continue
		}
		if err := o.fn(tx); err != nil {
			o.err = err
			o.after = nil
			if _, rerr := tx.Exec("ROLLBACK TO SAVEPOINT op"); rerr != nil {
				sqltx.Rollback()
				<-dirSync
				finish(fmt.Errorf("mailstore: rollback to savepoint: %w", rerr))
				return false
			}
		}
		if _, err := tx.Exec("RELEASE SAVEPOINT op"); err != nil {
			sqltx.Rollback()
			<-dirSync
			finish(fmt.Errorf("mailstore: release savepoint: %w", err))
			return false
		}
	}
	if err := <-dirSync; err != nil {
		sqltx.Rollback()
		finish(err)
		return false
	}
	if err := sqltx.Commit(); err != nil {
		for _, o := range batch {
			o.after = nil
		}
		finish(fmt.Errorf("mailstore: commit: %w", err))
		return false
	}
	// After the commit, in batch order: change-feed publication (so sessions
	// see changes in commit order) and blob removal.
	for _, o := range batch {
		if o.err == nil {
			for _, f := range o.after {
				f()
			}
		}
	}
	finish(nil)
	return deferred
}

// nextModSeq takes the account's next MODSEQ (RFC 7162 3.1: strictly
// increasing per change).
func nextModSeq(tx *wtx, account string) (uint64, error) {
	var m uint64
	err := tx.QueryRow(`UPDATE mail_accounts SET modseq = modseq + 1 WHERE account = ? RETURNING modseq`, account).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", ErrNoAccount, account)
	}
	if err != nil {
		return 0, fmt.Errorf("mailstore: modseq: %w", err)
	}
	return m, nil
}

type originKey struct{}

// WithOrigin tags the changes made with ctx by a session id, so the change
// feed can tell a session which changes were its own.
func WithOrigin(ctx context.Context, id uint64) context.Context {
	return context.WithValue(ctx, originKey{}, id)
}

func origin(ctx context.Context) uint64 {
	id, _ := ctx.Value(originKey{}).(uint64)
	return id
}

// reader runs cached prepared statements for read-only queries.
func (s *Store) reader(ctx context.Context) dbQuerier { return dbQuerier{ctx: ctx, q: s.stmts.DB()} }
