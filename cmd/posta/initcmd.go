package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"posta/internal/config"
)

func newInitCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented configuration file showing every default (- for standard output)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "posta.toml"
			if len(args) == 1 {
				file = args[0]
			}
			b, err := config.Default().Marshal()
			if err != nil {
				return err
			}
			if file == "-" {
				_, err := g.stdout.Write(b)
				return err
			}
			flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(file, flag, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists (use --force to overwrite)", file)
			}
			if err != nil {
				return err
			}
			if _, err := f.Write(b); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s; run: posta serve --config %s\n", file, shellQuote(file))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print the listeners it gives",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			src := "built-in defaults"
			if cfg.File() != "" {
				src = cfg.File()
			}
			fmt.Fprintf(g.stdout, "configuration OK (%s)\ndata: %s\n", src, cfg.DataDir)
			for _, l := range cfg.Listeners() {
				fmt.Fprintf(g.stdout, "%-12s %s\n", l.Name, cfg.Addr(l))
			}
			return nil
		},
	}
}
