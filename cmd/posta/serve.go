package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/server"
	"posta/internal/sftpserver"
)

func newServeCmd(g *globals) *cobra.Command {
	var offset int
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (works with no configuration)",
		Long: `Run every enabled protocol on its port until SIGINT or SIGTERM.

Without --config the built-in defaults apply: data in ./posta-data (created on
first run, with a self-signed certificate), standard ports. Ports below 1024
need root; --port-offset 10000 moves every port up (SMTP on 10025, IMAP on
10143, ...).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("port-offset") {
				cfg.PortOffset = offset
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("--port-offset: %w", err)
				}
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			return serve(cmd.Context(), g, cfg)
		},
	}
	cmd.Flags().IntVar(&offset, "port-offset", 0, "add N to every port (10000: SMTP on 10025, IMAP on 10143, ...)")
	// For the bench scripts: where the time goes under their load.
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile to FILE until shutdown")
	cmd.Flags().MarkHidden("cpuprofile")
	return cmd
}

func serve(ctx context.Context, g *globals, cfg *config.Config) error {
	log := newLogger(cfg, g.stderr)
	s, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	printBanner(g, s)
	<-ctx.Done()
	log.Info("shutting down", "grace", cfg.Shutdown.Grace.D().String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace.D())
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// printBanner says what runs where and how to add a user.
func printBanner(g *globals, s *server.Server) {
	w := g.stdout
	cfg := s.Config
	fmt.Fprintf(w, "Posta %s\n", version)
	fmt.Fprintf(w, "  data:       %s (database %s)\n", cfg.DataDir, database.FileName)
	if s.TLS.Generated() {
		fmt.Fprintf(w, "  tls:        self-signed certificate %s\n", filepath.Join(cfg.DataDir, "tls", "cert.pem"))
	} else {
		fmt.Fprintf(w, "  tls:        %s\n", cfg.TLS.CertFile)
	}
	fmt.Fprintf(w, "              SHA-256 %s\n", s.TLS.Fingerprint())
	bound := s.Listening()
	if len(bound) == 0 {
		fmt.Fprintf(w, "  listening:  nothing: no protocol server is built in yet\n")
	}
	for _, b := range bound {
		mode := "STARTTLS"
		switch {
		case b.ImplicitTLS:
			mode = "implicit TLS"
		case b.Protocol == "sftp":
			mode = "SSH"
		case b.Protocol == "ftp":
			mode = "AUTH TLS"
		case b.Protocol == "pop3":
			mode = "STLS"
		}
		fmt.Fprintf(w, "  listening:  %-12s %-22s %s\n", b.Name, b.Addr, mode)
		if b.Protocol == "sftp" {
			fps, err := sftpserver.Fingerprints(cfg.DataDir)
			for _, fp := range fps {
				fmt.Fprintf(w, "              host key %s\n", fp)
			}
			if err != nil {
				fmt.Fprintf(w, "              host keys: %v\n", err)
			}
		}
	}
	flags := cliFlags(g, cfg)
	fmt.Fprintf(w, "Add a domain and a user (while this runs, from another terminal):\n")
	fmt.Fprintf(w, "  posta domain add example.test%s\n", flags)
	fmt.Fprintf(w, "  posta user add alice@example.test%s\n", flags)
	fmt.Fprintf(w, "Stop with Ctrl-C.\n")
}

// cliFlags are the flags a user repeats so CLI commands reach this data dir.
func cliFlags(g *globals, cfg *config.Config) string {
	var b strings.Builder
	if g.configFile != "" {
		fmt.Fprintf(&b, " --config %s", shellQuote(g.configFile))
	}
	if g.dataDir != "" || g.configFile == "" && cfg.DataDir != mustAbs(config.DefaultDataDir) {
		fmt.Fprintf(&b, " --data %s", shellQuote(cfg.DataDir))
	}
	return b.String()
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func shellQuote(s string) string {
	if strings.ContainsAny(s, " '\"$\\\t") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
