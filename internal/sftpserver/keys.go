package sftpserver

import (
	"bytes"
	"context"
	"crypto/rsa"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"posta/internal/database"
	"posta/internal/directory"
)

// Errors of the key functions; their text is fit for a CLI user. An unknown
// account is directory.ErrNoSuchAccount, a bad address directory.ErrBadAddress.
var (
	ErrBadKey    = errors.New("not a usable public key")
	ErrKeyExists = errors.New("key already authorized for this account")
	ErrNoSuchKey = errors.New("no such key")
)

// maxKeyLine bounds an authorized_keys line (an RSA 16384 key is ~2.8 KB).
const maxKeyLine = 16 << 10

// maxComment bounds the stored comment.
const maxComment = 200

// keysMigrations are the "sshkeys" component's steps (database.Migrate):
// append-only. A key row goes with its account (ON DELETE CASCADE), so an
// address deleted and later given to someone else never inherits keys.
var keysMigrations = []string{
	`CREATE TABLE ssh_keys (
		id          INTEGER PRIMARY KEY,
		address     TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
		fingerprint TEXT NOT NULL,
		type        TEXT NOT NULL,
		key         BLOB NOT NULL,
		comment     TEXT NOT NULL,
		created_at  INTEGER NOT NULL,
		UNIQUE (address, fingerprint)
	);`,
}

func migrateKeys(ctx context.Context, db *sql.DB) error {
	return database.Migrate(ctx, db, "sshkeys", keysMigrations)
}

// Key is one authorized public key of an account.
type Key struct {
	Address     string
	Type        string // "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ...
	Fingerprint string // "SHA256:..."
	Comment     string
	Added       time.Time
	// Line is the key in authorized_keys form ("type base64 comment").
	Line string
}

// allowedOptions are authorized_keys options (sshd(8) AUTHORIZED_KEYS FILE
// FORMAT) that only forbid what Posta never offers; any other option
// (from=, command=, expiry-time=, cert-authority, no-touch-required, ...)
// would be a promise Posta cannot keep, so such a line is refused.
var allowedOptions = map[string]bool{
	"restrict": true, "no-pty": true, "no-port-forwarding": true, "no-agent-forwarding": true,
	"no-x11-forwarding": true, "no-user-rc": true,
}

// ParseKeyLine parses one authorized_keys line (as ssh-keygen writes it in
// a .pub file, optionally with the harmless options above) and returns the
// key and its cleaned comment. Certificates, DSA keys and RSA keys under
// 2048 bits are refused.
func ParseKeyLine(line string) (ssh.PublicKey, string, error) {
	line = strings.TrimSpace(line)
	if line == "" || len(line) > maxKeyLine || strings.ContainsAny(line, "\r\n\x00") {
		return nil, "", fmt.Errorf("%w: give one authorized_keys line (the contents of a .pub file)", ErrBadKey)
	}
	key, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, "", fmt.Errorf("%w: more than one key", ErrBadKey)
	}
	for _, o := range options {
		name, _, _ := strings.Cut(o, "=")
		if !allowedOptions[strings.ToLower(name)] {
			return nil, "", fmt.Errorf("%w: option %q is not supported", ErrBadKey, name)
		}
	}
	switch key.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKECDSA256:
	case ssh.KeyAlgoRSA:
		cp, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return nil, "", fmt.Errorf("%w: unreadable RSA key", ErrBadKey)
		}
		if rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("%w: RSA keys need at least 2048 bits", ErrBadKey)
		}
	default:
		return nil, "", fmt.Errorf("%w: key type %s is not supported (use ed25519, ecdsa or rsa)", ErrBadKey, key.Type())
	}
	return key, cleanComment(comment), nil
}

// cleanComment keeps a comment printable and short: it is shown by
// `posta user key list` and logged.
func cleanComment(c string) string {
	c = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(c))
	if len(c) > maxComment {
		c = strings.ToValidUTF8(c[:maxComment], "")
	}
	return c
}

func canonicalAddress(address string) (string, error) {
	a, err := directory.ParseAddress(address)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// AddKey authorizes the public key in line (one authorized_keys line) to
// log in as the account address over SFTP: `posta user key add ADDRESS`.
func AddKey(ctx context.Context, db *sql.DB, address, line string) (Key, error) {
	addr, err := canonicalAddress(address)
	if err != nil {
		return Key{}, err
	}
	key, comment, err := ParseKeyLine(line)
	if err != nil {
		return Key{}, err
	}
	if err := migrateKeys(ctx, db); err != nil {
		return Key{}, err
	}
	k := Key{Address: addr, Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), Comment: comment,
		Added: time.Now().Truncate(time.Second), Line: keyLine(key, comment)}
	_, err = db.ExecContext(ctx, `INSERT INTO ssh_keys (address, fingerprint, type, key, comment, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, k.Address, k.Fingerprint, k.Type, key.Marshal(), k.Comment, k.Added.Unix())
	switch {
	case err == nil:
		return k, nil
	case strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return Key{}, fmt.Errorf("%w: %s", ErrKeyExists, k.Fingerprint)
	case strings.Contains(err.Error(), "FOREIGN KEY constraint failed"):
		return Key{}, fmt.Errorf("%w: %s", directory.ErrNoSuchAccount, addr)
	}
	return Key{}, fmt.Errorf("sftpserver: add key: %w", err)
}

// ListKeys returns an account's authorized keys, oldest first:
// `posta user key list ADDRESS`.
func ListKeys(ctx context.Context, db *sql.DB, address string) ([]Key, error) {
	addr, err := canonicalAddress(address)
	if err != nil {
		return nil, err
	}
	if err := migrateKeys(ctx, db); err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT fingerprint, type, key, comment, created_at FROM ssh_keys
		WHERE address = ? ORDER BY id`, addr)
	if err != nil {
		return nil, fmt.Errorf("sftpserver: list keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k := Key{Address: addr}
		var blob []byte
		var created int64
		if err := rows.Scan(&k.Fingerprint, &k.Type, &blob, &k.Comment, &created); err != nil {
			return nil, fmt.Errorf("sftpserver: list keys: %w", err)
		}
		k.Added = time.Unix(created, 0)
		if pub, err := ssh.ParsePublicKey(blob); err == nil {
			k.Line = keyLine(pub, k.Comment)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sftpserver: list keys: %w", err)
	}
	return out, nil
}

// DeleteKey removes one of an account's keys, named by its fingerprint
// ("SHA256:...", as list shows) or by its authorized_keys line:
// `posta user key del ADDRESS KEY`.
func DeleteKey(ctx context.Context, db *sql.DB, address, which string) error {
	addr, err := canonicalAddress(address)
	if err != nil {
		return err
	}
	fp := strings.TrimSpace(which)
	if !strings.HasPrefix(fp, "SHA256:") {
		key, _, err := ParseKeyLine(which)
		if err != nil {
			return fmt.Errorf("%w: name the key by its SHA256: fingerprint or its line", ErrBadKey)
		}
		fp = ssh.FingerprintSHA256(key)
	}
	if err := migrateKeys(ctx, db); err != nil {
		return err
	}
	res, err := db.ExecContext(ctx, `DELETE FROM ssh_keys WHERE address = ? AND fingerprint = ?`, addr, fp)
	if err != nil {
		return fmt.Errorf("sftpserver: delete key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sftpserver: delete key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s for %s", ErrNoSuchKey, fp, addr)
	}
	return nil
}

// keyAuthorized reports whether key may log in as the canonical address.
func keyAuthorized(ctx context.Context, db *sql.DB, address string, key ssh.PublicKey) (bool, error) {
	var blob []byte
	err := db.QueryRowContext(ctx, `SELECT key FROM ssh_keys WHERE address = ? AND fingerprint = ?`,
		address, ssh.FingerprintSHA256(key)).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sftpserver: key lookup: %w", err)
	}
	// The fingerprint is a SHA-256 of the same bytes; comparing them too
	// costs nothing and makes the answer not rest on the hash alone.
	return bytes.Equal(blob, key.Marshal()), nil
}

func keyLine(k ssh.PublicKey, comment string) string {
	s := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
	if comment != "" {
		s += " " + comment
	}
	return s
}
