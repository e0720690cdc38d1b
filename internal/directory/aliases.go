package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Alias maps an address (or "@domain", the domain's catch-all) to one or more
// targets: local accounts, other local aliases, or outside addresses.
type Alias struct {
	Address string
	Targets []string
}

// parseAliasAddress accepts a normal address or "@domain" for a catch-all.
func parseAliasAddress(s string) (addr, domain string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		d, err := ParseDomain(s[1:])
		if err != nil {
			return "", "", err
		}
		return "@" + d, d, nil
	}
	a, err := ParseAddress(s)
	if err != nil {
		return "", "", err
	}
	return a.String(), a.Domain, nil
}

// AddAlias adds targets to the alias at address, creating it if needed. The
// alias must be in a local domain and must not be an account; a local
// target must already be an account or alias, so a typo is caught now rather
// than as a bounce later.
func (d *Directory) AddAlias(ctx context.Context, address string, targets []string) error {
	addr, domain, err := parseAliasAddress(address)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: alias %s needs at least one target", ErrBadAddress, addr)
	}
	var norm []string
	for _, t := range targets {
		ta, err := ParseAddress(t)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if ta.String() == addr {
			return fmt.Errorf("%w: alias %s points to itself", ErrBadAddress, addr)
		}
		norm = append(norm, ta.String())
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		did, err := domainID(ctx, tx, domain)
		if err != nil {
			return err
		}
		if isAccount, err := accountExists(ctx, tx, addr); err != nil {
			return err
		} else if isAccount {
			return fmt.Errorf("%w: %s is an account", ErrAddressTaken, addr)
		}
		added := 0
		for _, t := range norm {
			ta, _ := ParseAddress(t)
			if _, err := domainID(ctx, tx, ta.Domain); err == nil {
				acc, err := accountExists(ctx, tx, t)
				if err != nil {
					return err
				}
				ali, err := aliasExists(ctx, tx, t)
				if err != nil {
					return err
				}
				if !acc && !ali {
					return fmt.Errorf("%w: %s is in a local domain but is no account or alias", ErrUnknownTarget, t)
				}
			} else if !errors.Is(err, ErrUnknownDomain) {
				return err
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO aliases (domain_id, address, target) VALUES (?, ?, ?)
				ON CONFLICT (address, target) DO NOTHING`, did, addr, t)
			if err != nil {
				return fmt.Errorf("directory: add alias %s: %w", addr, err)
			}
			n, _ := res.RowsAffected()
			added += int(n)
		}
		if added == 0 {
			return fmt.Errorf("%w: %s already points to %s", ErrAliasExists, addr, strings.Join(norm, ", "))
		}
		return nil
	})
}

// Aliases lists aliases sorted by address, all or one domain's.
func (d *Directory) Aliases(ctx context.Context, domain string) ([]Alias, error) {
	q := `SELECT l.address, l.target FROM aliases l JOIN domains d ON d.id = l.domain_id`
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
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY l.address, l.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("directory: list aliases: %w", err)
	}
	defer rows.Close()
	var out []Alias
	for rows.Next() {
		var addr, target string
		if err := rows.Scan(&addr, &target); err != nil {
			return nil, fmt.Errorf("directory: list aliases: %w", err)
		}
		if len(out) > 0 && out[len(out)-1].Address == addr {
			out[len(out)-1].Targets = append(out[len(out)-1].Targets, target)
		} else {
			out = append(out, Alias{Address: addr, Targets: []string{target}})
		}
	}
	return out, rows.Err()
}

// DeleteAlias removes the given targets from an alias, or the whole alias
// when none are given.
func (d *Directory) DeleteAlias(ctx context.Context, address string, targets ...string) error {
	addr, _, err := parseAliasAddress(address)
	if err != nil {
		return err
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int64
		if len(targets) == 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE address = ?`, addr)
			if err != nil {
				return fmt.Errorf("directory: delete alias %s: %w", addr, err)
			}
			n, _ = res.RowsAffected()
		}
		for _, t := range targets {
			ta, err := ParseAddress(t)
			if err != nil {
				return fmt.Errorf("target: %w", err)
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE address = ? AND target = ?`, addr, ta.String())
			if err != nil {
				return fmt.Errorf("directory: delete alias %s: %w", addr, err)
			}
			m, _ := res.RowsAffected()
			if m == 0 {
				return fmt.Errorf("%w: %s -> %s", ErrNoSuchAlias, addr, ta)
			}
			n += m
		}
		if n == 0 {
			return fmt.Errorf("%w: %s", ErrNoSuchAlias, addr)
		}
		return nil
	})
}

func accountExists(ctx context.Context, q querier, addr string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE address = ?`, addr).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("directory: lookup %s: %w", addr, err)
	}
	return true, nil
}

func aliasExists(ctx context.Context, q querier, addr string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM aliases WHERE address = ? LIMIT 1`, addr).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("directory: lookup %s: %w", addr, err)
	}
	return true, nil
}
