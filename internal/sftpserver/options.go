package sftpserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/files"
	"posta/internal/guard"
)

// Directory is what the server needs of internal/directory (declared here,
// on the consumer side; *directory.Directory implements it).
type Directory interface {
	// VerifyPassword returns the canonical account address, or an error
	// wrapping sasl.ErrInvalidCredentials for a bad login; any other error
	// is our failure.
	VerifyPassword(ctx context.Context, username, password string) (string, error)
	// Account gives the quota and the read-only flag of the file tree.
	Account(ctx context.Context, address string) (directory.Account, error)
}

// Limits bound every SSH connection and SFTP session. Zero never means
// unlimited: New refuses a zero or negative value. They become config keys
// under [sftp.limits] (see DefaultLimits for the defaults).
type Limits struct {
	// LoginTimeout bounds the SSH handshake and authentication (OpenSSH's
	// LoginGraceTime).
	LoginTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing for this long, and
	// one whose peer does not read what it is sent for this long.
	IdleTimeout time.Duration
	// MaxAuthTries: authentication attempts per connection (RFC 4252 4:
	// the server SHOULD limit them).
	MaxAuthTries int
	// MaxSessions: session channels open at once on one connection.
	MaxSessions int
	// MaxHandles: files and directories open at once in one SFTP session.
	MaxHandles int
	// MaxReorderBytes: per SFTP session, how many bytes of writes that
	// arrive ahead of a gap (random-access writes) are held in memory until
	// the gap is filled.
	MaxReorderBytes int64
}

// DefaultLimits are the limits used when Options.Limits is zero.
func DefaultLimits() Limits {
	return Limits{
		LoginTimeout:    time.Minute,
		IdleTimeout:     15 * time.Minute,
		MaxAuthTries:    6,
		MaxSessions:     10,
		MaxHandles:      256,
		MaxReorderBytes: 32 << 20,
	}
}

func (l Limits) validate() error {
	if l.LoginTimeout <= 0 || l.IdleTimeout <= 0 || l.MaxAuthTries <= 0 || l.MaxSessions <= 0 ||
		l.MaxHandles <= 0 || l.MaxReorderBytes <= 0 {
		return fmt.Errorf("sftpserver: every limit must be positive: %+v", l)
	}
	return nil
}

// Options are what New needs. Config, Directory, Guard, Files and DB are
// required.
type Options struct {
	Config    *config.Config // DataDir: host keys live in <DataDir>/ssh
	Listener  config.Listener
	Directory Directory
	Guard     *guard.Guard
	// Files must be the process's one store (it holds the quota counters
	// FTP shares).
	Files *files.Store
	// DB is posta.db: the authorized keys table lives there.
	DB *sql.DB
	// Logger gets one line per session event; nil discards.
	Logger *slog.Logger
	// Limits; the zero value means DefaultLimits.
	Limits Limits
}

func (o *Options) check() error {
	if o.Config == nil || o.Directory == nil || o.Guard == nil || o.Files == nil || o.DB == nil {
		return errors.New("sftpserver: Config, Directory, Guard, Files and DB are required")
	}
	if o.Config.DataDir == "" {
		return errors.New("sftpserver: Config.DataDir is empty")
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o.Limits.validate()
}
