package mailauth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"posta/internal/database"
)

// ErrNoKeys: the domain has no DKIM keys (`posta domain add` makes them).
var ErrNoKeys = errors.New("mailauth: no DKIM keys for this domain")

// rsaBits: RFC 8301 3.2, signers MUST use at least 1024 bits and SHOULD use
// at least 2048. Not more: a longer key's TXT record is refused by some DNS
// hosting panels, and the RSA signature is only the fallback for verifiers
// without ed25519.
const rsaBits = 2048

// Keys are a domain's DKIM signing keys: an ed25519 key (RFC 8463 5:
// signers SHOULD implement Ed25519-SHA256) and an RSA key for verifiers that
// do not know ed25519 yet (RFC 8463 6: sign with both, under two selectors).
type Keys struct {
	Ed25519         ed25519.PrivateKey
	Ed25519Selector string
	RSA             *rsa.PrivateKey
	RSASelector     string
	Created         time.Time
}

// GenerateKeys makes a fresh ed25519 key and an RSA-2048 key.
//
// Selectors are "p" (Posta), the UTC creation date as YYYYMMDD and "e"
// (ed25519) or "r" (RSA): "p20260715e", "p20260715r". The date lets a later
// rotation publish new selectors beside the old ones (mail in transit still
// verifies with the old record); the day rather than the year keeps a key
// deleted and regenerated in the same year from reusing a published name.
func GenerateKeys() (Keys, error) {
	return generateKeys(time.Now())
}

func generateKeys(now time.Time) (Keys, error) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Keys{}, fmt.Errorf("mailauth: generate ed25519 key: %w", err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return Keys{}, fmt.Errorf("mailauth: generate RSA key: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	day := now.Format("20060102")
	return Keys{
		Ed25519: ed, Ed25519Selector: "p" + day + "e",
		RSA: rk, RSASelector: "p" + day + "r",
		Created: now,
	}, nil
}

// migrations are the "mailauth" component's steps (database.Migrate),
// append-only. One row per key, not per domain, so that rotation can later
// keep an old selector beside a new one without a schema change.
//
// The private keys are stored in clear, PKCS#8 PEM, in posta.db: the same
// data directory already holds every account's password verifiers and the
// TLS and SSH private keys, so it is the secret to protect (mode 0700), and
// encrypting these under a key kept beside them would add nothing.
var migrations = []string{
	`CREATE TABLE dkim_keys (
		domain      TEXT NOT NULL,
		selector    TEXT NOT NULL,
		algorithm   TEXT NOT NULL,
		private_key TEXT NOT NULL,
		created_at  INTEGER NOT NULL,
		PRIMARY KEY (domain, selector)
	);`,
}

// KeyStore keeps each domain's DKIM keys in posta.db.
type KeyStore struct {
	db *sql.DB
}

// KeySource is what a Signer needs of a KeyStore.
type KeySource interface {
	Get(ctx context.Context, domain string) (Keys, error)
}

// Open prepares the key table.
func Open(ctx context.Context, db *sql.DB) (*KeyStore, error) {
	if err := database.Migrate(ctx, db, "mailauth", migrations); err != nil {
		return nil, err
	}
	return &KeyStore{db: db}, nil
}

// normalizeDomain lowercases and drops a final dot: domain names compare
// case-insensitively (RFC 4343), and one spelling keeps one row.
func normalizeDomain(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if d == "" || len(d) > 253 || strings.ContainsAny(d, " \t\r\n;\"\\@") || strings.Contains(d, "..") ||
		strings.HasPrefix(d, ".") {
		return "", fmt.Errorf("mailauth: bad domain %q", domain)
	}
	return d, nil
}

// Ensure returns the domain's keys, generating and storing them the first
// time: calling it again (from another process too) returns the same keys.
func (ks *KeyStore) Ensure(ctx context.Context, domain string) (Keys, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return Keys{}, err
	}
	if k, err := ks.Get(ctx, d); !errors.Is(err, ErrNoKeys) {
		return k, err
	}
	// Generate outside the transaction: RSA generation takes a while and
	// the database's write lock should not.
	k, err := GenerateKeys()
	if err != nil {
		return Keys{}, err
	}
	edPEM, err := marshalKey(k.Ed25519)
	if err != nil {
		return Keys{}, err
	}
	rsaPEM, err := marshalKey(k.RSA)
	if err != nil {
		return Keys{}, err
	}
	if err := ks.storeIfAbsent(ctx, d, k, edPEM, rsaPEM); err != nil {
		return Keys{}, fmt.Errorf("mailauth: store keys for %s: %w", d, err)
	}
	return ks.Get(ctx, d)
}

// storeIfAbsent inserts both keys unless the domain has keys already:
// another process may have won the race since Get, and then its keys stand
// and these are dropped.
func (ks *KeyStore) storeIfAbsent(ctx context.Context, d string, k Keys, edPEM, rsaPEM string) error {
	tx, err := ks.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM dkim_keys WHERE domain = ?`, d).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, row := range []struct{ sel, alg, pem string }{
		{k.Ed25519Selector, "ed25519", edPEM}, {k.RSASelector, "rsa", rsaPEM},
	} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created_at)
			VALUES (?, ?, ?, ?, ?)`, d, row.sel, row.alg, row.pem, k.Created.Unix()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Get returns the domain's newest ed25519 and RSA keys, or ErrNoKeys.
func (ks *KeyStore) Get(ctx context.Context, domain string) (Keys, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return Keys{}, err
	}
	rows, err := ks.db.QueryContext(ctx, `SELECT selector, algorithm, private_key, created_at FROM dkim_keys
		WHERE domain = ? ORDER BY created_at, selector`, d)
	if err != nil {
		return Keys{}, fmt.Errorf("mailauth: keys of %s: %w", d, err)
	}
	defer rows.Close()
	var k Keys
	for rows.Next() {
		var sel, alg, text string
		var created int64
		if err := rows.Scan(&sel, &alg, &text, &created); err != nil {
			return Keys{}, fmt.Errorf("mailauth: keys of %s: %w", d, err)
		}
		key, err := parseKey(text)
		if err != nil {
			return Keys{}, fmt.Errorf("mailauth: key %s of %s: %w", sel, d, err)
		}
		// Rows come oldest first, so the newest of each algorithm wins.
		switch key := key.(type) {
		case ed25519.PrivateKey:
			k.Ed25519, k.Ed25519Selector = key, sel
		case *rsa.PrivateKey:
			k.RSA, k.RSASelector = key, sel
		default:
			return Keys{}, fmt.Errorf("mailauth: key %s of %s: unsupported %s key", sel, d, alg)
		}
		if t := time.Unix(created, 0).UTC(); t.After(k.Created) {
			k.Created = t
		}
	}
	if err := rows.Err(); err != nil {
		return Keys{}, fmt.Errorf("mailauth: keys of %s: %w", d, err)
	}
	if k.Ed25519 == nil && k.RSA == nil {
		return Keys{}, fmt.Errorf("%w: %s", ErrNoKeys, d)
	}
	return k, nil
}

// Delete removes every key of the domain (`posta domain del`; or, followed
// by Ensure, a rotation: publish the new records before signing with them).
func (ks *KeyStore) Delete(ctx context.Context, domain string) error {
	d, err := normalizeDomain(domain)
	if err != nil {
		return err
	}
	res, err := ks.db.ExecContext(ctx, `DELETE FROM dkim_keys WHERE domain = ?`, d)
	if err != nil {
		return fmt.Errorf("mailauth: delete keys of %s: %w", d, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("%w: %s", ErrNoKeys, d)
	}
	return nil
}

func marshalKey(k crypto.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("mailauth: encode key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func parseKey(text string) (crypto.PrivateKey, error) {
	b, _ := pem.Decode([]byte(text))
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PKCS#8 PEM private key")
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}
