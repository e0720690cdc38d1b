package sftpload

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"posta/internal/config"
	"posta/internal/files"
	"posta/internal/postatest"
	"posta/internal/server"
	"posta/internal/sftpserver"
)

// sftpBuilder serves the "sftp" listener until internal/server registers
// sftpserver itself (then this and WithProtocol below can go).
func sftpBuilder(s *server.Server, l config.Listener) (server.Protocol, error) {
	fs, err := files.Open(files.Options{Dir: filepath.Join(s.Config.DataDir, "files"), Logger: s.Log})
	if err != nil {
		return nil, err
	}
	return sftpserver.New(sftpserver.Options{Config: s.Config, Listener: l, Directory: s.Directory, Guard: s.Guard,
		Files: fs, DB: s.DB, Logger: s.Log.With("listener", l.Name)})
}

// TestSFTPServe runs a whole Posta with SFTP for bench/sftp-vs-openssh.sh,
// which cannot use the posta binary until sftp is registered and
// `posta user key add` exists. It does nothing unless POSTA_SFTP_SERVE
// names a directory holding id.pub: then it authorizes that key for
// alice@example.test, writes "port" and "known_hosts" there, and serves
// until SIGINT or SIGTERM.
func TestSFTPServe(t *testing.T) {
	dir := os.Getenv("POSTA_SFTP_SERVE")
	if dir == "" {
		t.Skip("POSTA_SFTP_SERVE not set (bench/sftp-vs-openssh.sh sets it)")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	in := postatest.Start(t, postatest.WithServerOption(server.WithProtocol("sftp", sftpBuilder)),
		postatest.WithConfig(func(c *config.Config) {
			c.SMTP.Enabled, c.POP3.Enabled, c.IMAP.Enabled, c.FTP.Enabled = false, false, false, false
		}))
	pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sftpserver.AddKey(context.Background(), in.DB, "alice@example.test", string(pub)); err != nil {
		t.Fatal(err)
	}
	keys, err := sftpserver.HostKeys(in.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	port := in.Port(t, "sftp")
	var kh string
	for _, k := range keys {
		kh += fmt.Sprintf("[127.0.0.1]:%d %s\n", port, k.AuthorizedKey())
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "port"), []byte(fmt.Sprint(port)), 0o600); err != nil {
		t.Fatal(err)
	}
	<-stop
}
