package files

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Options configure a Store.
type Options struct {
	// Dir holds one directory per account (<data>/files); created 0700.
	Dir string
	// AnonymousDir, when set, is served read-only to anonymous logins.
	AnonymousDir string
	// Logger receives first-use and sweep events; nil discards them.
	Logger *slog.Logger
}

// Account says whose tree to open and what it may do; protocols fill it
// from internal/directory at login.
type Account struct {
	// Address is the account's canonical address; it names the directory.
	Address string
	// QuotaBytes caps the bytes of regular files in the tree; 0 means none.
	QuotaBytes int64
	// ReadOnly refuses every change with ErrReadOnly.
	ReadOnly bool
}

// Store hands out trees. It is safe for concurrent use; one Store must serve
// every protocol of a process, because it holds the usage counters.
type Store struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	accounts map[string]*usage
}

// usage is one account's byte counter, shared by all its sessions.
type usage struct {
	init    sync.Once
	initErr error

	mu   sync.Mutex // also serialises the stat-then-rename of commits
	used int64
}

// Open prepares the store; it touches no account's tree.
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("files: Dir is required")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	if o.AnonymousDir != "" {
		st, err := os.Stat(o.AnonymousDir)
		if err != nil {
			return nil, fmt.Errorf("files: anonymous area: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("files: anonymous area %s is not a directory", o.AnonymousDir)
		}
	}
	s := &Store{o: o, log: o.Logger, accounts: map[string]*usage{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// validAddress: the address becomes one directory name under Dir.
func validAddress(a string) bool {
	return a != "" && len(a) <= 320 && a[0] != '.' && !strings.ContainsAny(a, "/\\\x00") && a != ".." &&
		!strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// Tree opens an account's tree, creating it on first use. At the account's
// first use in this process, leftover uploads are swept and the usage is
// counted. The caller closes the tree.
func (s *Store) Tree(ctx context.Context, a Account) (*Tree, error) {
	if !validAddress(a.Address) {
		return nil, newErr("open", a.Address, ErrInvalidName)
	}
	if a.QuotaBytes < 0 {
		return nil, fmt.Errorf("files: negative quota for %s", a.Address)
	}
	dir := filepath.Join(s.o.Dir, a.Address)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("files: create tree of %s: %w", a.Address, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("files: open tree of %s: %w", a.Address, err)
	}
	u := s.usageOf(a.Address)
	u.init.Do(func() { u.initErr = s.firstUse(ctx, a.Address, root, u) })
	if u.initErr != nil {
		root.Close()
		// Let a later login try again rather than caching a transient error.
		s.forget(a.Address, u)
		return nil, u.initErr
	}
	return &Tree{root: root, u: u, quota: a.QuotaBytes, readOnly: a.ReadOnly, owner: a.Address}, nil
}

// AnonymousTree opens the anonymous area, read-only; ErrNoAnonymous when
// none is configured.
func (s *Store) AnonymousTree() (*Tree, error) {
	if s.o.AnonymousDir == "" {
		return nil, ErrNoAnonymous
	}
	root, err := os.OpenRoot(s.o.AnonymousDir)
	if err != nil {
		return nil, fmt.Errorf("files: open anonymous area: %w", err)
	}
	return &Tree{root: root, readOnly: true, owner: "anonymous"}, nil
}

// Usage returns the bytes counted for an account, computing them if no tree
// of it was opened yet.
func (s *Store) Usage(ctx context.Context, address string) (int64, error) {
	t, err := s.Tree(ctx, Account{Address: address})
	if err != nil {
		return 0, err
	}
	defer t.Close()
	return t.u.get(), nil
}

func (s *Store) usageOf(address string) *usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.accounts[address]
	if u == nil {
		u = &usage{}
		s.accounts[address] = u
	}
	return u
}

func (s *Store) forget(address string, u *usage) {
	s.mu.Lock()
	if s.accounts[address] == u {
		delete(s.accounts, address)
	}
	s.mu.Unlock()
}

// firstUse sweeps uploads a crash left behind (no session of this process
// can have one in flight yet: this runs before the first tree is handed out)
// and counts the bytes of regular files.
func (s *Store) firstUse(ctx context.Context, address string, root *os.Root, u *usage) error {
	if err := root.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("files: sweep uploads of %s: %w", address, err)
	}
	var total int64
	var files int
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while walking
				}
				return err
			}
			total += info.Size()
			files++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("files: count usage of %s: %w", address, err)
	}
	u.mu.Lock()
	u.used = total
	u.mu.Unlock()
	s.log.Debug("files: tree opened", "account", address, "bytes", total, "files", files)
	return nil
}

func (u *usage) get() int64 {
	if u == nil {
		return 0
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used
}

// reserve adds up to want bytes to the counter, as many as quota allows
// (all of them when quota is 0), and returns how many it added.
func (u *usage) reserve(want, quota int64) int64 {
	if want <= 0 {
		return 0
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if quota > 0 {
		want = max(0, min(want, quota-u.used))
	}
	u.used += want
	return want
}

// add changes the counter by n (negative to give back), never below zero.
func (u *usage) add(n int64) {
	if u == nil || n == 0 {
		return
	}
	u.mu.Lock()
	u.used = max(0, u.used+n)
	u.mu.Unlock()
}
