package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"posta/internal/database"
)

// Errors callers tell apart with errors.Is; their text is fit for a CLI user.
var (
	ErrBadAddress     = errors.New("bad address")
	ErrBadDomain      = errors.New("bad domain")
	ErrUnknownDomain  = errors.New("unknown domain")
	ErrDomainExists   = errors.New("domain already exists")
	ErrDomainNotEmpty = errors.New("domain still has accounts or aliases")
	ErrAccountExists  = errors.New("account already exists")
	ErrNoSuchAccount  = errors.New("no such account")
	ErrAliasExists    = errors.New("alias already exists")
	ErrNoSuchAlias    = errors.New("no such alias")
	ErrAddressTaken   = errors.New("address is already an account or alias")
	ErrUnknownTarget  = errors.New("unknown local target")
	ErrWeakPassword   = errors.New("password too short")
	// ErrNotLocal: the address's domain is not one of ours (Resolve).
	ErrNotLocal = errors.New("domain is not local")
	// ErrNoSuchUser: a local domain, but nothing receives at the address (Resolve).
	ErrNoSuchUser = errors.New("no such user")
)

// MinPasswordLen is the shortest password accepted when one is set.
const MinPasswordLen = 8

// Directory reads and writes the directory tables of posta.db.
type Directory struct {
	db *sql.DB
	// hot runs the read queries of every login, RCPT and APPEND through
	// statements prepared once (database.Stmts).
	hot database.Querier
	// hashSlots bounds concurrent argon2id computations: each takes 19 MiB,
	// and a burst of logins must not take the machine's memory.
	hashSlots chan struct{}
	now       func() time.Time
}

var migrations = []string{
	`CREATE TABLE domains (
		id         INTEGER PRIMARY KEY,
		name       TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE accounts (
		id              INTEGER PRIMARY KEY,
		domain_id       INTEGER NOT NULL REFERENCES domains(id),
		address         TEXT NOT NULL UNIQUE,
		password_hash   TEXT NOT NULL,
		scram_salt      BLOB NOT NULL,
		scram_iter      INTEGER NOT NULL,
		scram_stored    BLOB NOT NULL,
		scram_server    BLOB NOT NULL,
		quota_bytes     INTEGER NOT NULL DEFAULT 0,
		files_read_only INTEGER NOT NULL DEFAULT 0,
		created_at      INTEGER NOT NULL
	);
	CREATE INDEX accounts_domain ON accounts(domain_id);
	CREATE TABLE aliases (
		id        INTEGER PRIMARY KEY,
		domain_id INTEGER NOT NULL REFERENCES domains(id),
		address   TEXT NOT NULL,
		target    TEXT NOT NULL,
		UNIQUE (address, target)
	);
	CREATE INDEX aliases_domain ON aliases(domain_id);`,
}

// Open prepares the directory tables in db.
func Open(ctx context.Context, db *sql.DB) (*Directory, error) {
	if err := database.Migrate(ctx, db, "directory", migrations); err != nil {
		return nil, err
	}
	return &Directory{db: db, hot: database.NewStmts(db).DB(), hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), now: time.Now}, nil
}

// Domain is one local domain.
type Domain struct {
	Name     string
	Accounts int
	Aliases  int
	Created  time.Time
}

// AddDomain makes name a local domain.
func (d *Directory) AddDomain(ctx context.Context, name string) error {
	n, err := ParseDomain(name)
	if err != nil {
		return err
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO domains (name, created_at) VALUES (?, ?)`, n, d.now().Unix())
	if isUnique(err) {
		return fmt.Errorf("%w: %s", ErrDomainExists, n)
	}
	if err != nil {
		return fmt.Errorf("directory: add domain %s: %w", n, err)
	}
	return nil
}

// Domains lists every local domain with its counts, sorted by name.
func (d *Directory) Domains(ctx context.Context) ([]Domain, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, created_at,
		(SELECT COUNT(*) FROM accounts a WHERE a.domain_id = d.id),
		(SELECT COUNT(DISTINCT address) FROM aliases l WHERE l.domain_id = d.id)
		FROM domains d ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("directory: list domains: %w", err)
	}
	defer rows.Close()
	var out []Domain
	for rows.Next() {
		var dom Domain
		var created int64
		if err := rows.Scan(&dom.Name, &created, &dom.Accounts, &dom.Aliases); err != nil {
			return nil, fmt.Errorf("directory: list domains: %w", err)
		}
		dom.Created = time.Unix(created, 0)
		out = append(out, dom)
	}
	return out, rows.Err()
}

// DeleteDomain removes a domain that has no accounts and no aliases left;
// removing mailboxes is never a side effect of removing a domain.
func (d *Directory) DeleteDomain(ctx context.Context, name string) error {
	n, err := ParseDomain(name)
	if err != nil {
		return err
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		id, err := domainID(ctx, tx, n)
		if err != nil {
			return err
		}
		var accounts, aliases int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM accounts WHERE domain_id = ?),
			(SELECT COUNT(DISTINCT address) FROM aliases WHERE domain_id = ?)`, id, id).Scan(&accounts, &aliases); err != nil {
			return fmt.Errorf("directory: delete domain %s: %w", n, err)
		}
		if accounts+aliases > 0 {
			return fmt.Errorf("%w: %s has %d accounts and %d aliases; delete them first", ErrDomainNotEmpty, n, accounts, aliases)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM domains WHERE id = ?`, id)
		return err
	})
}

// IsLocalDomain reports whether domain is one of ours.
func (d *Directory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	n, err := ParseDomain(domain)
	if err != nil {
		return false, nil
	}
	_, err = domainID(ctx, d.db, n)
	if errors.Is(err, ErrUnknownDomain) {
		return false, nil
	}
	return err == nil, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func domainID(ctx context.Context, q querier, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s (add it with: posta domain add %s)", ErrUnknownDomain, name, name)
	}
	if err != nil {
		return 0, fmt.Errorf("directory: domain %s: %w", name, err)
	}
	return id, nil
}

// tx runs fn in a write transaction.
func (d *Directory) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("directory: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("directory: commit: %w", err)
	}
	return nil
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
