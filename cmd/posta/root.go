package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/directory"
)

// globals are the flags every subcommand takes, before or after its arguments.
type globals struct {
	configFile string
	dataDir    string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "posta",
		Short: "Mail (SMTP, POP3, IMAP) and files (FTP, FTPS, SFTP) for one directory of users",
		Long: `Posta is one server for mail (SMTP, POP3, IMAP) and files (FTP, FTPS, SFTP).

Start it with "posta serve" (no configuration needed), then add a domain and a user:
  posta domain add example.test
  posta user add alice@example.test`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "configuration file (TOML); without it the built-in defaults apply")
	pf.StringVar(&g.dataDir, "data", "", "data directory (overrides data_dir in the configuration; default ./posta-data)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(newServeCmd(g), newInitCmd(g), newCheckCmd(g), newDomainCmd(g), newUserCmd(g), newAliasCmd(g), newQueueCmd(g), newMailCmd(g), newVersionCmd(g))
	cobra.EnableCommandSorting = false
	markArgErrors(root)
	return root
}

// markArgErrors makes a wrong number of arguments a usage error (exit 2)
// that shows the command's usage line.
func markArgErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markArgErrors(sub)
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())}
			}
			return nil
		}
	}
}

// execute runs the CLI and prints a failure as one "posta: ..." line on
// stderr; it returns the exit status: 0, 1 for a failure, 2 for a usage error.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "posta: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

// loadConfig reads --config (or the defaults) and applies --data.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.configFile)
	if err != nil {
		return nil, err
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	return cfg, nil
}

// openDirectory opens the directory in the configured data directory, for
// the CLI commands that work on a stopped or running server alike.
func (g *globals) openDirectory(ctx context.Context) (*directory.Directory, func(), error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	db, err := database.Open(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	d, err := directory.Open(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return d, func() { db.Close() }, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, "posta", version)
			return nil
		},
	}
}

const version = "0.1.0-dev"

// withDirectory adapts a command body that needs the directory: it opens
// the configured data directory's database, runs fn, and closes it.
func (g *globals) withDirectory(fn func(cmd *cobra.Command, args []string, d *directory.Directory) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		d, done, err := g.openDirectory(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, args, d)
	}
}
