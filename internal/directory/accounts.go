package directory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"posta/internal/sasl"
)

// Account is one mailbox owner and file-tree owner; its login name is its address.
type Account struct {
	Address string
	Domain  string
	// QuotaBytes caps the account's mail, and separately its file tree
	// (each may use up to it, as Dovecot and SFTPGo users expect of their
	// own quota); 0 means no quota.
	QuotaBytes int64
	// FilesReadOnly refuses every change to the account's file tree (FTP, SFTP).
	FilesReadOnly bool
	Created       time.Time
}

// AccountOptions are the settings of a new account.
type AccountOptions struct {
	QuotaBytes    int64
	FilesReadOnly bool
}

// secret is what the accounts table stores for a password.
type secret struct {
	hash string
	keys sasl.SCRAMKeys
}

func makeSecret(password string) (secret, error) {
	if len([]rune(password)) < MinPasswordLen {
		return secret{}, fmt.Errorf("%w: use at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	// One preparation for every mechanism (sasl.PreparePassword), so PLAIN,
	// SCRAM, FTP and SFTP agree on what the password is.
	prepared := sasl.PreparePassword(password)
	h, err := hashPassword(prepared)
	if err != nil {
		return secret{}, err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return secret{}, fmt.Errorf("directory: salt: %w", err)
	}
	keys, err := sasl.SCRAMSHA256Keys(password, salt, scramIterations)
	if err != nil {
		return secret{}, fmt.Errorf("directory: scram keys: %w", err)
	}
	return secret{hash: h, keys: keys}, nil
}

// AddAccount creates an account in an existing local domain.
func (d *Directory) AddAccount(ctx context.Context, address, password string, o AccountOptions) error {
	a, err := ParseAddress(address)
	if err != nil {
		return err
	}
	if o.QuotaBytes < 0 {
		return fmt.Errorf("directory: negative quota")
	}
	sec, err := makeSecret(password)
	if err != nil {
		return err
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		did, err := domainID(ctx, tx, a.Domain)
		if err != nil {
			return err
		}
		if taken, err := aliasExists(ctx, tx, a.String()); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("%w: %s is an alias", ErrAddressTaken, a)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO accounts (domain_id, address, password_hash, scram_salt, scram_iter,
			scram_stored, scram_server, quota_bytes, files_read_only, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			did, a.String(), sec.hash, sec.keys.Salt, sec.keys.Iterations, sec.keys.StoredKey, sec.keys.ServerKey,
			o.QuotaBytes, o.FilesReadOnly, d.now().Unix())
		if isUnique(err) {
			return fmt.Errorf("%w: %s", ErrAccountExists, a)
		}
		if err != nil {
			return fmt.Errorf("directory: add account %s: %w", a, err)
		}
		return nil
	})
}

// SetPassword replaces an account's password (both verifiers at once).
func (d *Directory) SetPassword(ctx context.Context, address, password string) error {
	a, err := ParseAddress(address)
	if err != nil {
		return err
	}
	sec, err := makeSecret(password)
	if err != nil {
		return err
	}
	res, err := d.db.ExecContext(ctx, `UPDATE accounts SET password_hash = ?, scram_salt = ?, scram_iter = ?,
		scram_stored = ?, scram_server = ? WHERE address = ?`,
		sec.hash, sec.keys.Salt, sec.keys.Iterations, sec.keys.StoredKey, sec.keys.ServerKey, a.String())
	return oneRow(res, err, a.String())
}

// AccountUpdate changes the fields that are set.
type AccountUpdate struct {
	QuotaBytes    *int64
	FilesReadOnly *bool
}

// UpdateAccount changes an account's quota or read-only flag.
func (d *Directory) UpdateAccount(ctx context.Context, address string, u AccountUpdate) error {
	a, err := ParseAddress(address)
	if err != nil {
		return err
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		if u.QuotaBytes != nil {
			if *u.QuotaBytes < 0 {
				return fmt.Errorf("directory: negative quota")
			}
			res, err := tx.ExecContext(ctx, `UPDATE accounts SET quota_bytes = ? WHERE address = ?`, *u.QuotaBytes, a.String())
			if err := oneRow(res, err, a.String()); err != nil {
				return err
			}
		}
		if u.FilesReadOnly != nil {
			res, err := tx.ExecContext(ctx, `UPDATE accounts SET files_read_only = ? WHERE address = ?`, *u.FilesReadOnly, a.String())
			if err := oneRow(res, err, a.String()); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteAccount removes an account and drops it from every alias that
// pointed to it (an alias left with no target goes too), so mail for those
// aliases is refused instead of bouncing later.
func (d *Directory) DeleteAccount(ctx context.Context, address string) error {
	a, err := ParseAddress(address)
	if err != nil {
		return err
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE address = ?`, a.String())
		if err := oneRow(res, err, a.String()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE target = ?`, a.String()); err != nil {
			return fmt.Errorf("directory: delete account %s: %w", a, err)
		}
		return nil
	})
}

const accountColumns = `a.address, d.name, a.quota_bytes, a.files_read_only, a.created_at`

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var acc Account
	var created int64
	err := sc.Scan(&acc.Address, &acc.Domain, &acc.QuotaBytes, &acc.FilesReadOnly, &created)
	acc.Created = time.Unix(created, 0)
	return acc, err
}

// Account returns one account.
func (d *Directory) Account(ctx context.Context, address string) (Account, error) {
	a, err := ParseAddress(address)
	if err != nil {
		return Account{}, err
	}
	acc, err := scanAccount(d.hot.QueryRowContext(ctx, `SELECT `+accountColumns+`
		FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.address = ?`, a.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: %s", ErrNoSuchAccount, a)
	}
	if err != nil {
		return Account{}, fmt.Errorf("directory: account %s: %w", a, err)
	}
	return acc, nil
}

// Accounts lists accounts sorted by address, all of them or one domain's.
func (d *Directory) Accounts(ctx context.Context, domain string) ([]Account, error) {
	q := `SELECT ` + accountColumns + ` FROM accounts a JOIN domains d ON d.id = a.domain_id`
	var args []any
	if domain != "" {
		n, err := ParseDomain(domain)
		if err != nil {
			return nil, err
		}
		if _, err := domainID(ctx, d.db, n); err != nil {
			return nil, err
		}
		q += ` WHERE d.name = ?`
		args = append(args, n)
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY a.address`, args...)
	if err != nil {
		return nil, fmt.Errorf("directory: list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		acc, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("directory: list accounts: %w", err)
		}
		out = append(out, acc)
	}
	return out, rows.Err()
}

// VerifyPassword implements sasl.Credentials: it checks a login name and
// password and returns the canonical account address. Every failure (bad
// syntax, unknown account, wrong password) wraps sasl.ErrInvalidCredentials
// and costs one argon2id computation, so neither the answer nor its timing
// tells an unknown account from a wrong password.
func (d *Directory) VerifyPassword(ctx context.Context, username, password string) (string, error) {
	hash := ""
	a, perr := ParseAddress(username)
	if perr == nil {
		err := d.hot.QueryRowContext(ctx, `SELECT password_hash FROM accounts WHERE address = ?`, a.String()).Scan(&hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("directory: verify: %w", err)
		}
	}
	known := hash != ""
	if !known {
		hash = dummyHash()
	}
	select {
	case d.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ok, err := checkPassword(hash, sasl.PreparePassword(password))
	<-d.hashSlots
	if err != nil {
		return "", err
	}
	if !ok || !known {
		return "", fmt.Errorf("directory: %w", sasl.ErrInvalidCredentials)
	}
	return a.String(), nil
}

// SCRAMSHA256 implements sasl.Credentials.
func (d *Directory) SCRAMSHA256(ctx context.Context, username string) (string, sasl.SCRAMKeys, error) {
	var k sasl.SCRAMKeys
	a, err := ParseAddress(username)
	if err != nil {
		return "", k, fmt.Errorf("directory: %w", sasl.ErrInvalidCredentials)
	}
	err = d.hot.QueryRowContext(ctx, `SELECT scram_salt, scram_iter, scram_stored, scram_server FROM accounts
		WHERE address = ?`, a.String()).Scan(&k.Salt, &k.Iterations, &k.StoredKey, &k.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return "", k, fmt.Errorf("directory: %w", sasl.ErrInvalidCredentials)
	}
	if err != nil {
		return "", k, fmt.Errorf("directory: scram keys: %w", err)
	}
	return a.String(), k, nil
}

// SCRAMIterations is the iteration count of new SCRAM keys; protocol servers
// pass it as sasl.Options.UnknownUserIterations so unknown users look alike.
const SCRAMIterations = scramIterations

func oneRow(res sql.Result, err error, address string) error {
	if err != nil {
		return fmt.Errorf("directory: %s: %w", address, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("directory: %s: %w", address, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNoSuchAccount, address)
	}
	return nil
}
