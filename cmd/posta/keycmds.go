package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"posta/internal/database"
	"posta/internal/sftpserver"
)

// withDB adapts a command body that needs the database itself.
func (g *globals) withDB(fn func(ctx context.Context, args []string, db *sql.DB) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		db, err := database.Open(cfg.DataDir)
		if err != nil {
			return err
		}
		defer db.Close()
		return fn(cmd.Context(), args, db)
	}
}

// newKeyCmd: posta user key add|list|del, the SSH public keys an account
// may log in with over SFTP (authorized_keys lines).
func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage an account's SSH public keys for SFTP"}
	cmd.AddCommand(&cobra.Command{
		Use:   "add ADDRESS [FILE|-]",
		Short: "Authorize a public key (one authorized_keys line, e.g. ~/.ssh/id_ed25519.pub; - or none: standard input)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withDB(func(ctx context.Context, args []string, db *sql.DB) error {
			var r io.Reader = g.stdin
			if len(args) == 2 && args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			line, err := bufio.NewReader(r).ReadString('\n')
			if err != nil && strings.TrimSpace(line) == "" {
				return fmt.Errorf("no public key given")
			}
			k, err := sftpserver.AddKey(ctx, db, args[0], strings.TrimSpace(line))
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "added %s key %s for %s\n", k.Type, k.Fingerprint, k.Address)
			return nil
		}),
	}, &cobra.Command{
		Use:   "list ADDRESS",
		Short: "List an account's public keys",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDB(func(ctx context.Context, args []string, db *sql.DB) error {
			keys, err := sftpserver.ListKeys(ctx, db, args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tTYPE\tCOMMENT\tADDED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Fingerprint, k.Type, k.Comment, k.Added.Format("2006-01-02"))
			}
			return tw.Flush()
		}),
	}, &cobra.Command{
		Use:   "del ADDRESS SHA256:FINGERPRINT|KEY",
		Short: "Remove a public key",
		Args:  cobra.ExactArgs(2),
		RunE: g.withDB(func(ctx context.Context, args []string, db *sql.DB) error {
			if err := sftpserver.DeleteKey(ctx, db, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed key %s from %s\n", args[1], args[0])
			return nil
		}),
	})
	return cmd
}
