package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/mailauth"
	"posta/internal/sasl"
)

func newDomainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "domain", Short: "Manage the domains Posta receives mail for"}
	cmd.AddCommand(&cobra.Command{
		Use:   "add DOMAIN",
		Short: "Add a local domain (and generate its DKIM keys)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDB(func(ctx context.Context, args []string, db *sql.DB) error {
			d, err := directory.Open(ctx, db)
			if err != nil {
				return err
			}
			if err := d.AddDomain(ctx, args[0]); err != nil {
				return err
			}
			name := strings.ToLower(args[0])
			ks, err := mailauth.Open(ctx, db)
			if err != nil {
				return err
			}
			// RFC 8463: an ed25519 and an RSA key, generated once.
			if _, err := ks.Ensure(ctx, name); err != nil {
				return fmt.Errorf("domain %s added, but its DKIM keys were not: %w", name, err)
			}
			fmt.Fprintf(g.stdout, "added domain %s (DNS records to publish: posta domain dns %s)\n", name, name)
			return nil
		}),
	}, &cobra.Command{
		Use:   "dns DOMAIN",
		Short: "Print the DNS records to publish for a domain: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDB(func(ctx context.Context, args []string, db *sql.DB) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			name := strings.ToLower(args[0])
			d, err := directory.Open(ctx, db)
			if err != nil {
				return err
			}
			if ok, err := d.IsLocalDomain(ctx, name); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%w: %s (add it with: posta domain add %s)", directory.ErrUnknownDomain, name, name)
			}
			ks, err := mailauth.Open(ctx, db)
			if err != nil {
				return err
			}
			keys, err := ks.Ensure(ctx, name) // domains added before DKIM existed get keys now
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "; DNS records for %s (mail host %s)\n", name, cfg.Hostname)
			fmt.Fprint(g.stdout, mailauth.FormatZone(mailauth.Records(name, cfg.Hostname, keys)))
			fmt.Fprintf(g.stdout, "\n; MTA-STS policy, to serve as https://mta-sts.%s/.well-known/mta-sts.txt\n", name)
			for _, line := range strings.Split(strings.TrimRight(mailauth.MTASTSPolicy(cfg.Hostname), "\r\n"), "\n") {
				fmt.Fprintf(g.stdout, ";   %s\n", strings.TrimRight(line, "\r"))
			}
			return nil
		}),
	}, &cobra.Command{
		Use:   "list",
		Short: "List local domains",
		Args:  cobra.NoArgs,
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			doms, err := d.Domains(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tACCOUNTS\tALIASES")
			for _, dom := range doms {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", dom.Name, dom.Accounts, dom.Aliases)
			}
			return tw.Flush()
		}),
	}, &cobra.Command{
		Use:   "del DOMAIN",
		Short: "Delete a domain that has no accounts or aliases left",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			if err := d.DeleteDomain(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted domain %s\n", strings.ToLower(args[0]))
			return nil
		}),
	})
	return cmd
}

// accountFlags are the settings shared by user add and user set.
type accountFlags struct {
	quota    string
	readOnly bool
}

func (f *accountFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.quota, "quota", "", "quota for the mail, and separately for the file tree, e.g. 2GiB (0 or none: no quota)")
	cmd.Flags().BoolVar(&f.readOnly, "files-read-only", false, "the account may download files but not change them")
}

func (f *accountFlags) quotaBytes() (int64, error) {
	q := strings.TrimSpace(strings.ToLower(f.quota))
	if q == "" || q == "none" || q == "unlimited" {
		return 0, nil
	}
	s, err := config.ParseSize(q)
	if err != nil {
		return 0, usageError{fmt.Errorf("--quota: %w", err)}
	}
	return int64(s), nil
}

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage accounts (the login name is the full address)"}
	var stdinPass bool
	var af accountFlags
	add := &cobra.Command{
		Use:   "add ADDRESS",
		Short: "Add an account; asks for the password (or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := af.quotaBytes()
			if err != nil {
				return err
			}
			d, done, err := g.openDirectory(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			// Fail on the address before asking for a password.
			a, err := directory.ParseAddress(args[0])
			if err != nil {
				return err
			}
			if ok, err := d.IsLocalDomain(cmd.Context(), a.Domain); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%w: %s (add it with: posta domain add %s)", directory.ErrUnknownDomain, a.Domain, a.Domain)
			}
			pw, err := readPassword(g, stdinPass, "Password for "+a.String())
			if err != nil {
				return err
			}
			if err := d.AddAccount(cmd.Context(), a.String(), pw, directory.AccountOptions{QuotaBytes: q, FilesReadOnly: af.readOnly}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "added account %s\n", a)
			return nil
		},
	}
	add.Flags().BoolVar(&stdinPass, "password-stdin", false, "read the password from the first line of standard input")
	af.register(add)

	var stdinPass2 bool
	passwd := &cobra.Command{
		Use:   "passwd ADDRESS",
		Short: "Change an account's password",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			acc, err := d.Account(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			pw, err := readPassword(g, stdinPass2, "New password for "+acc.Address)
			if err != nil {
				return err
			}
			if err := d.SetPassword(cmd.Context(), acc.Address, pw); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "changed password of %s\n", acc.Address)
			return nil
		}),
	}
	passwd.Flags().BoolVar(&stdinPass2, "password-stdin", false, "read the password from the first line of standard input")

	var sf accountFlags
	set := &cobra.Command{
		Use:   "set ADDRESS",
		Short: "Change an account's quota or read-only flag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u directory.AccountUpdate
			if cmd.Flags().Changed("quota") {
				q, err := sf.quotaBytes()
				if err != nil {
					return err
				}
				u.QuotaBytes = &q
			}
			if cmd.Flags().Changed("files-read-only") {
				u.FilesReadOnly = &sf.readOnly
			}
			if u.QuotaBytes == nil && u.FilesReadOnly == nil {
				return usageError{errors.New("user set: nothing to change (give --quota or --files-read-only)")}
			}
			d, done, err := g.openDirectory(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := d.UpdateAccount(cmd.Context(), args[0], u); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "updated account %s\n", strings.ToLower(args[0]))
			return nil
		},
	}
	sf.register(set)

	list := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List accounts, all or one domain's",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			dom := ""
			if len(args) == 1 {
				dom = args[0]
			}
			accs, err := d.Accounts(cmd.Context(), dom)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tQUOTA\tFILES")
			for _, a := range accs {
				quota := "none"
				if a.QuotaBytes > 0 {
					quota = config.Size(a.QuotaBytes).String()
				}
				files := "read-write"
				if a.FilesReadOnly {
					files = "read-only"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Address, quota, files)
			}
			return tw.Flush()
		}),
	}
	del := &cobra.Command{
		Use:   "del ADDRESS",
		Short: "Delete an account (and drop it from aliases)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			if err := d.DeleteAccount(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted account %s\n", strings.ToLower(args[0]))
			return nil
		}),
	}
	var stdinPass3 bool
	test := &cobra.Command{
		Use:   "test ADDRESS",
		Short: "Check a password as a login would (exit status 1 if refused)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			pw, err := readPassword(g, stdinPass3, "Password for "+args[0])
			if err != nil {
				return err
			}
			acc, err := d.VerifyPassword(cmd.Context(), args[0], pw)
			if errors.Is(err, sasl.ErrInvalidCredentials) {
				return fmt.Errorf("login refused for %s: unknown account or wrong password", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "password OK for %s\n", acc)
			return nil
		}),
	}
	test.Flags().BoolVar(&stdinPass3, "password-stdin", false, "read the password from the first line of standard input")
	cmd.AddCommand(add, passwd, set, list, del, test, newKeyCmd(g))
	return cmd
}

func newAliasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "Manage aliases (@domain as the address is the domain's catch-all)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "add ADDRESS TARGET...",
		Short: "Deliver mail for ADDRESS to one or more accounts or outside addresses",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			if err := d.AddAlias(cmd.Context(), args[0], args[1:]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "alias %s -> %s\n", strings.ToLower(args[0]), strings.ToLower(strings.Join(args[1:], ", ")))
			return nil
		}),
	}, &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List aliases, all or one domain's",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			dom := ""
			if len(args) == 1 {
				dom = args[0]
			}
			als, err := d.Aliases(cmd.Context(), dom)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ALIAS\tTARGETS")
			for _, a := range als {
				fmt.Fprintf(tw, "%s\t%s\n", a.Address, strings.Join(a.Targets, ", "))
			}
			return tw.Flush()
		}),
	}, &cobra.Command{
		Use:   "del ADDRESS [TARGET...]",
		Short: "Delete an alias, or only some of its targets",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withDirectory(func(cmd *cobra.Command, args []string, d *directory.Directory) error {
			if err := d.DeleteAlias(cmd.Context(), args[0], args[1:]...); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted alias %s\n", strings.ToLower(strings.Join(args, " ")))
			return nil
		}),
	})
	return cmd
}

// readPassword reads a password from the first line of stdin, or prompts on
// the terminal twice without echo.
func readPassword(g *globals, fromStdin bool, prompt string) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(g.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("--password-stdin: no password on standard input")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError{errors.New("standard input is not a terminal: pipe the password with --password-stdin")}
	}
	fmt.Fprintf(g.stderr, "%s: ", prompt)
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprintf(g.stderr, "Repeat: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(p1) != string(p2) {
		return "", errors.New("the passwords differ")
	}
	return string(p1), nil
}
