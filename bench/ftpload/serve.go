package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/ftpserver"
	"posta/internal/server"
)

// serve runs a whole Posta (server.New: database, directory, guard, TLS)
// with only FTP enabled, on 127.0.0.1:port, with one account, until SIGINT
// or SIGTERM. It plugs the FTP protocol in itself, with the same wiring as
// the builder internal/server registers, so the benchmark runs before (and
// after) that registration. Limits are the defaults; the guard is relaxed
// for loopback so that hundreds of idle sessions and fast logins are allowed.
func serve(dataDir string, port int, user, pass string) error {
	if dataDir == "" {
		return errors.New("-data is required")
	}
	cfg := config.Default()
	cfg.DataDir, cfg.BindAddress, cfg.Hostname = dataDir, "127.0.0.1", "localhost"
	cfg.SMTP.Enabled, cfg.POP3.Enabled, cfg.IMAP.Enabled, cfg.SFTP.Enabled = false, false, false, false
	cfg.FTP.Port, cfg.FTP.TLSPort = port, 0
	cfg.Guard.MaxConnsPerIP, cfg.Guard.MaxConns, cfg.Guard.ExemptLoopback = 5000, 10000, true
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	builder := func(s *server.Server, l config.Listener) (server.Protocol, error) {
		return ftpserver.New(ftpserver.Options{
			Listener: l, Hostname: s.Config.Hostname, Directory: s.Directory, Files: s.Files, Guard: s.Guard,
			TLS: s.TLS, Logger: s.Log.With("listener", l.Name), Limits: ftpserver.DefaultLimits(),
			AllowPlaintextAuth: s.Config.AllowPlaintextAuth,
		})
	}
	s, err := server.New(ctx, cfg, log, server.WithProtocol("ftp", builder))
	if err != nil {
		return err
	}
	if _, err := s.Directory.Account(ctx, user); err != nil {
		a, perr := directory.ParseAddress(user)
		if perr != nil {
			s.Close()
			return perr
		}
		if err := s.Directory.AddDomain(ctx, a.Domain); err != nil && !errors.Is(err, directory.ErrDomainExists) {
			s.Close()
			return err
		}
		if err := s.Directory.AddAccount(ctx, user, pass, directory.AccountOptions{}); err != nil {
			s.Close()
			return err
		}
	}
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	fmt.Printf("ftpload: Posta FTP on %s, files in %s, pid %d\n", s.Addr("ftp"), filepath.Join(dataDir, "files", user), os.Getpid())
	// SIGUSR1 collects garbage and returns it to the OS, then says so: the
	// benchmark samples memory after it, so that what it measures is live
	// memory, not the heap a password hash left behind (argon2id allocates
	// 19 MiB per login, which Go frees lazily).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for n := 1; ; n++ {
			select {
			case <-usr1:
				runtime.GC()
				debug.FreeOSMemory()
				fmt.Printf("ftpload: gc %d done\n", n)
			case <-ctx.Done():
				return
			}
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}
