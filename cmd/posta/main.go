// Command posta runs Posta, one server for mail (SMTP, POP3, IMAP) and files
// (FTP, FTPS, SFTP), and manages its directory of users.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks a mistake in the command line, for exit status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
