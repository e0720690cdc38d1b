package directory

import (
	"context"
	"errors"
	"fmt"
)

// Recipient is where mail for an address ends up: a local account or an
// outside address the mail is forwarded to.
type Recipient struct {
	// Account is the local account's address; empty for an outside address.
	Account string
	// Detail is the subaddress tag of alice+tag@ when it reached Account directly.
	Detail string
	// External is an outside address to forward to; empty for a local account.
	External string
}

// maxAliasDepth bounds alias chains; a loop or a longer chain is a
// configuration error and the address is refused rather than looping.
const maxAliasDepth = 10

// ErrAliasLoop: expanding the address went deeper than maxAliasDepth.
var ErrAliasLoop = errors.New("alias chain too deep or looping")

// Resolve says who receives mail sent to address. For a local domain the
// order is the one Postfix users know: an account of that exact name; an
// alias of that exact name; the same two for the address without its
// +detail; the domain's catch-all (@domain). Targets that are local are
// expanded in turn; duplicates are dropped. Errors: ErrBadAddress,
// ErrNotLocal (not one of our domains), ErrNoSuchUser, ErrAliasLoop.
func (d *Directory) Resolve(ctx context.Context, address string) ([]Recipient, error) {
	a, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	if _, err := domainID(ctx, d.hot, a.Domain); errors.Is(err, ErrUnknownDomain) {
		return nil, fmt.Errorf("%w: %s", ErrNotLocal, a.Domain)
	} else if err != nil {
		return nil, err
	}
	r := resolver{d: d, ctx: ctx, seen: map[Recipient]bool{}}
	if err := r.expand(a, 0); err != nil {
		return nil, err
	}
	if len(r.out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchUser, a)
	}
	return r.out, nil
}

type resolver struct {
	d    *Directory
	ctx  context.Context
	seen map[Recipient]bool
	out  []Recipient
}

func (r *resolver) add(rc Recipient) {
	if !r.seen[rc] {
		r.seen[rc] = true
		r.out = append(r.out, rc)
	}
}

func (r *resolver) expand(a Address, depth int) error {
	if depth > maxAliasDepth {
		return fmt.Errorf("%w: %s", ErrAliasLoop, a)
	}
	found, err := r.exact(a.String(), "", depth)
	if err != nil || found {
		return err
	}
	if base, detail, ok := splitDetail(a.Local); ok {
		found, err := r.exact(base+"@"+a.Domain, detail, depth)
		if err != nil || found {
			return err
		}
	}
	targets, err := r.d.aliasTargets(r.ctx, "@"+a.Domain)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
	}
	return r.targets(targets, depth)
}

// exact handles an address that is an account or an alias as written.
func (r *resolver) exact(addr, detail string, depth int) (bool, error) {
	acc, err := accountExists(r.ctx, r.d.hot, addr)
	if err != nil {
		return false, err
	}
	if acc {
		r.add(Recipient{Account: addr, Detail: detail})
		return true, nil
	}
	targets, err := r.d.aliasTargets(r.ctx, addr)
	if err != nil || len(targets) == 0 {
		return false, err
	}
	return true, r.targets(targets, depth)
}

func (r *resolver) targets(targets []string, depth int) error {
	for _, t := range targets {
		ta, err := ParseAddress(t)
		if err != nil {
			return err
		}
		local, err := r.d.IsLocalDomain(r.ctx, ta.Domain)
		if err != nil {
			return err
		}
		if !local {
			r.add(Recipient{External: ta.String()})
			continue
		}
		// A local target that no longer receives (its account was
		// deleted) is skipped; the others still get the mail.
		if err := r.expand(ta, depth+1); err != nil && !errors.Is(err, ErrNoSuchUser) {
			return err
		}
	}
	return nil
}

func (d *Directory) aliasTargets(ctx context.Context, addr string) ([]string, error) {
	rows, err := d.hot.QueryContext(ctx, `SELECT target FROM aliases WHERE address = ? ORDER BY id`, addr)
	if err != nil {
		return nil, fmt.Errorf("directory: alias %s: %w", addr, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("directory: alias %s: %w", addr, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
