package sftpserver

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/directory"
	"posta/internal/files"
	"posta/internal/guard"
)

func TestMain(m *testing.M) {
	// Host keys are made once for the whole run (an RSA 3072 key takes up
	// to a second) and copied into each test's data directory.
	dir, err := os.MkdirTemp("", "sftpserver-keys-")
	if err != nil {
		panic(err)
	}
	if _, err := HostKeys(dir); err != nil {
		panic(err)
	}
	keyTemplate = filepath.Join(dir, HostKeyDir)
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

var keyTemplate string

func copyHostKeys(t testing.TB, dataDir string) {
	t.Helper()
	ents, err := os.ReadDir(keyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, HostKeyDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(keyTemplate, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, HostKeyDir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	alice   = "alice@example.test"
	bob     = "bob@example.test"
	alicePW = "alice-password"
	bobPW   = "bob-password"
)

// env is a running Server over real components: SQLite, the directory, the
// guard, the file store, on a loopback listener.
type env struct {
	s       *Server
	addr    string
	dataDir string
	db      *sql.DB
	dir     *directory.Directory
	guard   *guard.Guard
	files   *files.Store
}

type envOption func(*Options)

func startEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	copyHostKeys(t, dataDir)
	db, err := database.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir, err := directory.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	for u, pw := range map[string]string{alice: alicePW, bob: bobPW} {
		if err := dir.AddAccount(ctx, u, pw, directory.AccountOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	g := guard.New(guard.Limits{FailDelay: time.Millisecond, MaxFailDelay: 2 * time.Millisecond, BanAfter: 5})
	fs, err := files.Open(files.Options{Dir: filepath.Join(dataDir, "files")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dataDir
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("POSTA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o := Options{Config: cfg, Listener: config.Listener{Name: "sftp", Protocol: "sftp"}, Directory: dir, Guard: g,
		Files: fs, DB: db, Logger: log}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if n := s.Panics(); n != 0 {
			t.Errorf("%d handler panics", n)
		}
	})
	return &env{s: s, addr: ln.Addr().String(), dataDir: dataDir, db: db, dir: dir, guard: g, files: fs}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// hostKeyCallback trusts exactly the server's keys.
func (e *env) hostKeyCallback() ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range e.s.HostKeys() {
			if string(k.PublicKey.Marshal()) == string(key.Marshal()) {
				return nil
			}
		}
		return errors.New("unknown host key")
	}
}

func (e *env) dialSSH(t testing.TB, user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: e.hostKeyCallback(), Timeout: 10 * time.Second}
	return ssh.Dial("tcp", e.addr, cfg)
}

// login opens an SFTP client with a password; both close at test end.
func (e *env) login(t testing.TB, user, pw string) *sftp.Client {
	t.Helper()
	c, err := e.dialSSH(t, user, ssh.Password(pw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// treeFile is the path on disk of a file in an account's tree.
func (e *env) treeFile(account, p string) string {
	return filepath.Join(e.dataDir, "files", account, filepath.FromSlash(p))
}

func put(t testing.TB, c *sftp.Client, p string, data []byte) {
	t.Helper()
	f, err := c.Create(p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func get(t testing.TB, c *sftp.Client, p string) []byte {
	t.Helper()
	f, err := c.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// statusCode extracts the SSH_FX code of an SFTP error.
func statusCode(err error) uint32 {
	var se *sftp.StatusError
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, os.ErrNotExist): // pkg/sftp's client turns these codes into os errors
		return fxNoSuchFile
	case errors.Is(err, os.ErrPermission):
		return fxPermission
	case errors.Is(err, io.EOF):
		return fxEOF
	}
	return 0xffffffff
}

const (
	fxEOF         = 1
	fxNoSuchFile  = 2
	fxPermission  = 3
	fxFailure     = 4
	fxBadMessage  = 5
	fxUnsupported = 8
)
