package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"posta/internal/config"
	"posta/internal/directory"
	"posta/internal/ftpserver"
	"posta/internal/postatest"
	"posta/internal/server"
)

// ftpBuilder is the "ftp" protocol builder internal/server will register
// (see the ftpserver hand-over note), with test adjustments. It uses the
// server's one file store, which SFTP shares (its quota counters).
func ftpBuilder(adjust ...func(*ftpserver.Options)) server.Builder {
	return func(s *server.Server, l config.Listener) (server.Protocol, error) {
		o := ftpserver.Options{
			Listener: l, Hostname: s.Config.Hostname, Directory: s.Directory, Files: s.Files, Guard: s.Guard,
			TLS: s.TLS, Logger: s.Log.With("listener", l.Name), Limits: ftpserver.DefaultLimits(),
			AllowPlaintextAuth: s.Config.AllowPlaintextAuth,
		}
		for _, f := range adjust {
			f(&o)
		}
		return ftpserver.New(o)
	}
}

func startFTP(t *testing.T, adjust ...func(*ftpserver.Options)) *postatest.Instance {
	t.Helper()
	return postatest.Start(t, postatest.WithServerOption(server.WithProtocol("ftp", ftpBuilder(adjust...))))
}

const (
	aliceFTP = "alice@example.test"
	bobFTP   = "bob@example.test"
)

func userArg(addr string) string { return addr + ":" + postatest.Users[addr] }

// homeOf is an account's tree on disk.
func homeOf(in *postatest.Instance, addr string) string {
	return filepath.Join(in.DataDir, "files", addr)
}

var (
	bigOnce sync.Once
	bigData []byte
)

// big is 64 MiB of random bytes, made once per test binary.
func big(t *testing.T) []byte {
	bigOnce.Do(func() {
		bigData = make([]byte, 64<<20)
		rand.Read(bigData)
	})
	return bigData
}

type curl struct {
	t    *testing.T
	bin  string
	in   *postatest.Instance
	user string
}

func newCurl(t *testing.T, in *postatest.Instance, user string) *curl {
	return &curl{t: t, bin: requireTool(t, "curl"), in: in, user: user}
}

// url names a listener as localhost (the certificate's name), pinned to
// 127.0.0.1 with --resolve.
func (c *curl) url(listener, path string) (string, []string) {
	port := c.in.Port(c.t, listener)
	scheme := "ftp"
	if listener == "ftps" {
		scheme = "ftps"
	}
	return fmt.Sprintf("%s://localhost:%d/%s", scheme, port, path),
		[]string{"--resolve", fmt.Sprintf("localhost:%d:127.0.0.1", port)}
}

// run calls curl; it returns the output and curl's exit code.
func (c *curl) run(listener, path string, args ...string) (string, int) {
	c.t.Helper()
	u, resolve := c.url(listener, path)
	all := append([]string{"-sS", "--max-time", "60", "--cacert", c.in.CertFile(), "--user", userArg(c.user)}, resolve...)
	all = append(all, args...)
	all = append(all, u)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, all...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatalf("curl: %v", err)
	}
	return string(out), 0
}

func (c *curl) ok(listener, path string, args ...string) string {
	c.t.Helper()
	out, code := c.run(listener, path, args...)
	if code != 0 {
		c.t.Fatalf("curl %v %s: exit %d\n%s", args, path, code, out)
	}
	return out
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFTPCurlBigFile moves a 64 MiB random file both ways byte-exact, in
// passive (PASV) and active (PORT) mode in plaintext, and passive with TLS.
func TestFTPCurlBigFile(t *testing.T) {
	in := startFTP(t)
	data := big(t)
	local := writeTemp(t, "big.bin", data)
	for _, tc := range []struct {
		name     string
		listener string
		args     []string
	}{
		{"pasv-plain", "ftp", []string{"--ftp-pasv", "--disable-epsv"}},
		{"port-plain", "ftp", []string{"--ftp-port", "127.0.0.1", "--disable-eprt"}},
		{"pasv-tls", "ftp", []string{"--ssl-reqd", "--ftp-pasv", "--disable-epsv"}},
		// curl 7.88.1 does not start TLS on an active data connection it
		// accepted (it sends the data in the clear, and the server refuses
		// it): active mode with TLS is TestFTPPythonActiveTLSBigFile.
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCurl(t, in, aliceFTP)
			name := tc.name + ".bin"
			c.ok(tc.listener, name, append([]string{"-T", local}, tc.args...)...)
			if !bytes.Equal(mustRead(t, filepath.Join(homeOf(in, aliceFTP), name)), data) {
				t.Fatal("upload not byte-exact")
			}
			dl := filepath.Join(t.TempDir(), "dl.bin")
			c.ok(tc.listener, name, append([]string{"-o", dl}, tc.args...)...)
			if !bytes.Equal(mustRead(t, dl), data) {
				t.Fatal("download not byte-exact")
			}
		})
	}
}

func TestFTPCurlCommands(t *testing.T) {
	in := startFTP(t)
	c := newCurl(t, in, aliceFTP)
	// Upload into a new directory, plain, EPSV (curl's default).
	c.ok("ftp", "docs/a.txt", "-T", writeTemp(t, "a.txt", []byte("alpha\n")), "--ftp-create-dirs")
	// Quote commands: MKD, RNFR/RNTO, DELE, SITE, with the listing after.
	c.ok("ftp", "docs/", "-T", writeTemp(t, "b.txt", []byte("bravo\n")))
	// curl sends -Q commands right after login, before it changes directory.
	out := c.ok("ftp", "docs/", "-Q", "MKD /docs/sub", "-Q", "RNFR /docs/b.txt", "-Q", "RNTO /docs/sub/renamed.txt",
		"-Q", "DELE /docs/a.txt", "-Q", "SITE CHMOD 600 /docs/sub/renamed.txt", "--list-only")
	if strings.TrimSpace(out) != "sub" {
		t.Fatalf("NLST after quote commands: %q", out)
	}
	home := homeOf(in, aliceFTP)
	if got := string(mustRead(t, filepath.Join(home, "docs", "sub", "renamed.txt"))); got != "bravo\n" {
		t.Fatalf("renamed file %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(home, "docs", "sub", "renamed.txt")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("SITE CHMOD: %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(home, "docs", "a.txt")); err == nil {
		t.Fatal("DELE did not delete")
	}
	// A quote command the server refuses fails curl (exit 21, quote error).
	if _, code := c.run("ftp", "", "-Q", "DELE nothing.txt", "--list-only"); code != 21 {
		t.Fatalf("DELE of a missing file: curl exit %d, want 21", code)
	}
	// LIST in ls -l form.
	if out := c.ok("ftp", "docs/sub/"); !strings.HasPrefix(out, "-rw-------") || !strings.Contains(out, "renamed.txt") {
		t.Fatalf("LIST: %q", out)
	}
	// Explicit TLS required, then implicit TLS.
	if out := c.ok("ftp", "docs/sub/renamed.txt", "--ssl-reqd"); out != "bravo\n" {
		t.Fatalf("explicit FTPS download %q", out)
	}
	c.ok("ftps", "docs/implicit.txt", "-T", writeTemp(t, "i.txt", []byte("implicit\n")))
	if out := c.ok("ftps", "docs/implicit.txt"); out != "implicit\n" {
		t.Fatalf("implicit FTPS download %q", out)
	}
	// Wrong password: curl's login error (67).
	bad := &curl{t: t, bin: c.bin, in: in, user: aliceFTP}
	u, resolve := bad.url("ftp", "")
	args := append([]string{"-sS", "--user", aliceFTP + ":wrong-password"}, resolve...)
	err := exec.Command(c.bin, append(args, u)...).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 67 {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestFTPCurlASCII: TYPE A converts line ends both ways (--use-ascii), and
// SIZE in TYPE A reports the wire size, which curl accepts.
func TestFTPCurlASCII(t *testing.T) {
	in := startFTP(t)
	c := newCurl(t, in, aliceFTP)
	c.ok("ftp", "unix.txt", "-T", writeTemp(t, "unix.txt", []byte("one\ntwo\nthree\n")))
	dl := filepath.Join(t.TempDir(), "dl.txt")
	c.ok("ftp", "unix.txt", "--use-ascii", "-o", dl)
	// The wire carries CRLF (SIZE in TYPE A says 17, not 14); curl turns it
	// back into LF on Unix.
	if got := string(mustRead(t, dl)); got != "one\ntwo\nthree\n" {
		t.Fatalf("ASCII download %q", got)
	}
	if out := c.ok("ftp", "", "-Q", "TYPE A", "-Q", "SIZE unix.txt", "--list-only", "-v"); !strings.Contains(out, "< 213 17") {
		t.Fatalf("SIZE in TYPE A:\n%s", out)
	}
	// curl turns LF into CRLF on an ASCII upload; the server turns CRLF
	// back into LF.
	c.ok("ftp", "dos.txt", "--use-ascii", "-T", writeTemp(t, "lf.txt", []byte("a\nb\n")))
	if got := string(mustRead(t, filepath.Join(homeOf(in, aliceFTP), "dos.txt"))); got != "a\nb\n" {
		t.Fatalf("ASCII upload stored %q", got)
	}
	// Binary download of the same file is byte-exact.
	if out := c.ok("ftp", "dos.txt"); out != "a\nb\n" {
		t.Fatalf("binary %q", out)
	}
}

// TestFTPCurlResume continues an interrupted download and an interrupted
// upload with -C - (SIZE, then REST+RETR, and APPE or REST+STOR).
func TestFTPCurlResume(t *testing.T) {
	in := startFTP(t)
	c := newCurl(t, in, aliceFTP)
	data := make([]byte, 3<<20)
	rand.Read(data)
	home := homeOf(in, aliceFTP)
	c.ok("ftp", "whole.bin", "-T", writeTemp(t, "whole.bin", data))
	// Download: the first MiB is already here.
	dl := writeTemp(t, "partial.bin", data[:1<<20])
	c.ok("ftp", "whole.bin", "-C", "-", "-o", dl)
	if !bytes.Equal(mustRead(t, dl), data) {
		t.Fatal("resumed download differs")
	}
	// Upload: the server holds the first 1.5 MiB of it.
	c.ok("ftp", "up.bin", "-T", writeTemp(t, "half.bin", data[:3<<19]))
	c.ok("ftp", "up.bin", "-C", "-", "-T", writeTemp(t, "full.bin", data))
	if !bytes.Equal(mustRead(t, filepath.Join(home, "up.bin")), data) {
		t.Fatal("resumed upload differs")
	}
}

// TestFTPQuotaAndReadOnly: limits set with the directory reach FTP at the
// next login.
func TestFTPQuotaAndReadOnly(t *testing.T) {
	in := startFTP(t)
	ctx := context.Background()
	quota := int64(1 << 20)
	if err := in.Directory.UpdateAccount(ctx, aliceFTP, directory.AccountUpdate{QuotaBytes: &quota}); err != nil {
		t.Fatal(err)
	}
	c := newCurl(t, in, aliceFTP)
	c.ok("ftp", "small.bin", "-T", writeTemp(t, "small.bin", make([]byte, 600<<10)))
	// 552 is curl's "remote disk full" (70).
	out, code := c.run("ftp", "toobig.bin", "-T", writeTemp(t, "toobig.bin", make([]byte, 600<<10)))
	if code != 70 {
		t.Fatalf("over-quota upload: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(homeOf(in, aliceFTP), "toobig.bin")); err == nil {
		t.Fatal("over-quota upload stored")
	}
	ro := true
	if err := in.Directory.UpdateAccount(ctx, bobFTP, directory.AccountUpdate{FilesReadOnly: &ro}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(homeOf(in, bobFTP), 0o700)
	os.WriteFile(filepath.Join(homeOf(in, bobFTP), "keep.txt"), []byte("keep\n"), 0o644)
	b := newCurl(t, in, bobFTP)
	if out := b.ok("ftp", "keep.txt"); out != "keep\n" {
		t.Fatalf("read-only account cannot read: %q", out)
	}
	for _, args := range [][]string{
		{"-T", writeTemp(t, "x.txt", []byte("x"))},
		{"-Q", "MKD newdir", "--list-only"},
		{"-Q", "DELE keep.txt", "--list-only"},
		{"-Q", "RNFR keep.txt", "-Q", "RNTO moved.txt", "--list-only"},
	} {
		path := ""
		if args[0] == "-T" {
			path = "x.txt"
		}
		if out, code := b.run("ftp", path, args...); code == 0 || !strings.Contains(out, "550") {
			t.Fatalf("read-only %v: exit %d\n%s", args, code, out)
		}
	}
	ents, _ := os.ReadDir(homeOf(in, bobFTP))
	if len(ents) != 1 || ents[0].Name() != "keep.txt" {
		t.Fatalf("read-only tree changed: %v", ents)
	}
}

// ftpPy runs a Python script with the control port, the TLS port, the CA
// file and alice's password as arguments; the script prints "ok".
func ftpPy(t *testing.T, in *postatest.Instance, script string) {
	t.Helper()
	py := requireTool(t, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script, fmt.Sprint(in.Port(t, "ftp")), fmt.Sprint(in.Port(t, "ftps")),
		in.CertFile(), postatest.Users[aliceFTP], homeOf(in, aliceFTP))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

const pyPrelude = `
import ftplib, io, os, ssl, sys
port, tls_port, cafile, password, home = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
user = "alice@example.test"
def expect(code, f, *a):
    try:
        r = f(*a)
    except ftplib.all_errors as e:
        r = str(e)
    assert r.startswith(str(code)), (code, r)
    return r
`

func TestFTPPythonFTPLib(t *testing.T) {
	in := startFTP(t)
	ftpPy(t, in, pyPrelude+`
ftp = ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", port)
assert ftp.getwelcome().startswith("220")
ftp.login(user, password)
assert "MLST" in ftp.sendcmd("FEAT")
ftp.mkd("py")
ftp.cwd("py")
assert ftp.pwd() == "/py"
data = os.urandom(300000)
ftp.storbinary("STOR bin.dat", io.BytesIO(data))
buf = io.BytesIO(); ftp.retrbinary("RETR bin.dat", buf.write)
assert buf.getvalue() == data
assert ftp.size("bin.dat") == len(data)
# ASCII both ways: storlines sends CRLF, the server stores LF.
ftp.storlines("STOR text.txt", io.BytesIO(b"l1\nl2\n"))
assert open(os.path.join(home, "py", "text.txt"), "rb").read() == b"l1\nl2\n"
lines = []; ftp.retrlines("RETR text.txt", lines.append)
assert lines == ["l1", "l2"], lines
# REST + STOR resumes an interrupted upload; REST + RETR a download.
ftp.storbinary("STOR part.dat", io.BytesIO(data[:100000]))
ftp.storbinary("STOR part.dat", io.BytesIO(data[100000:]), rest=100000)
buf = io.BytesIO(); ftp.retrbinary("RETR part.dat", buf.write, rest=250000)
assert buf.getvalue() == data[250000:]
assert open(os.path.join(home, "py", "part.dat"), "rb").read() == data
# Listings.
assert sorted(ftp.nlst()) == ["bin.dat", "part.dat", "text.txt"], ftp.nlst()
facts = dict(ftp.mlsd(facts=["type", "size", "perm"]))
assert facts["bin.dat"]["size"] == str(len(data)) and facts["bin.dat"]["type"] == "file", facts
listing = []; ftp.dir(listing.append)
assert len(listing) == 3 and listing[0].startswith("-rw"), listing
# Active mode (PORT) both ways.
ftp.set_pasv(False)
ftp.storbinary("STOR active.dat", io.BytesIO(data))
buf = io.BytesIO(); ftp.retrbinary("RETR active.dat", buf.write)
assert buf.getvalue() == data
ftp.set_pasv(True)
# Rename, delete, rmd.
ftp.rename("active.dat", "renamed.dat")
expect(550, ftp.delete, "active.dat")
ftp.delete("renamed.dat")
expect(550, ftp.rmd, "/py")
expect(504, ftp.sendcmd, "STRU R")
expect(502, ftp.sendcmd, "SMNT /")
expect(500, ftp.sendcmd, "FROB")
assert ftp.sendcmd("NOOP").startswith("200")
assert ftp.sendcmd("STAT").startswith("211")
assert ftp.sendcmd("MDTM bin.dat").startswith("213 ")
assert ftp.sendcmd("HASH bin.dat").startswith("213 SHA-256 0-300000 ")
# ABOR during a download: ftplib sends it as TCP urgent data.
big = os.urandom(1) * (48 << 20)
ftp.storbinary("STOR big.dat", io.BytesIO(big), blocksize=1 << 20)
conn = ftp.transfercmd("RETR big.dat")
got = conn.recv(65536)
assert got
resp = ftp.abort()
assert resp.startswith("426"), resp
assert ftp.voidresp().startswith("226")
conn.close()
assert ftp.sendcmd("NOOP").startswith("200")
ftp.quit()
print("ok")
`)
}

// TestFTPPythonActiveTLSBigFile: the 64 MiB file both ways in active mode
// (PORT) over TLS, with ftplib.
func TestFTPPythonActiveTLSBigFile(t *testing.T) {
	in := startFTP(t)
	data := big(t)
	src := writeTemp(t, "big.bin", data)
	dst := filepath.Join(t.TempDir(), "back.bin")
	ftpPy(t, in, pyPrelude+pyReusingTLS+`
ftp = ReusingFTP_TLS(context=ssl.create_default_context(cafile=cafile), timeout=60)
ftp.connect("localhost", port)
ftp.auth()
ftp.login(user, password)
ftp.prot_p()
ftp.set_pasv(False)
with open(`+fmt.Sprintf("%q", src)+`, "rb") as f:
    ftp.storbinary("STOR active-tls.bin", f, blocksize=1 << 20)
with open(`+fmt.Sprintf("%q", dst)+`, "wb") as f:
    ftp.retrbinary("RETR active-tls.bin", f.write, blocksize=1 << 20)
ftp.quit()
print("ok")
`)
	if !bytes.Equal(mustRead(t, filepath.Join(homeOf(in, aliceFTP), "active-tls.bin")), data) {
		t.Fatal("upload differs")
	}
	if !bytes.Equal(mustRead(t, dst), data) {
		t.Fatal("download differs")
	}
}

// pyReusingTLS is the usual fix for servers that insist on TLS session
// reuse (vsftpd's require_ssl_reuse, RFC 4217 10.2): Python 3.11's ftplib
// does not pass the control connection's session to the data connection.
const pyReusingTLS = `
class ReusingFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
`

func TestFTPPythonTLS(t *testing.T) {
	in := startFTP(t)
	ftpPy(t, in, pyPrelude+pyReusingTLS+`
ctx = ssl.create_default_context(cafile=cafile)

data = os.urandom(500000)
ftp = ReusingFTP_TLS(context=ctx, timeout=30)
ftp.connect("localhost", port)
ftp.auth()
ftp.login(user, password)
ftp.prot_p()
ftp.storbinary("STOR tls.dat", io.BytesIO(data))
buf = io.BytesIO(); ftp.retrbinary("RETR tls.dat", buf.write)
assert buf.getvalue() == data
assert ftp.nlst() == ["tls.dat"]
expect(534, ftp.ccc)
ftp.quit()

# Implicit TLS on the ftps port.
class Implicit(ReusingFTP_TLS):
    def connect(self, host, port):
        self.host, self.port = host, port
        import socket
        self.sock = self.context.wrap_socket(socket.create_connection((host, port), 30), server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome
ftp = Implicit(context=ctx)
ftp.connect("localhost", tls_port)
ftp.login(user, password)
ftp.prot_p()
buf = io.BytesIO(); ftp.retrbinary("RETR tls.dat", buf.write)
assert buf.getvalue() == data
ftp.quit()

# Stock ftplib does not resume the session on the data connection: refused
# with 522 (RFC 4217 10.2), as vsftpd does by default.
ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
ftp.connect("localhost", port)
ftp.login(user, password)
ftp.prot_p()
try:
    ftp.retrbinary("RETR tls.dat", lambda b: None)
    raise SystemExit("a data connection without session reuse was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("522"), e
except (ssl.SSLError, OSError) as e:
    assert ftp.getresp().startswith("522")
ftp.quit()
print("ok")
`)
}

func TestFTPJlaffaye(t *testing.T) {
	in := startFTP(t)
	home := homeOf(in, aliceFTP)
	cfg := in.ClientTLS()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for _, mode := range []struct {
		name string
		opts []ftp.DialOption
		addr string
	}{
		{"plain", nil, in.Addr(t, "ftp")},
		{"explicit-tls", []ftp.DialOption{ftp.DialWithExplicitTLS(cfg)}, in.Addr(t, "ftp")},
		{"implicit-tls", []ftp.DialOption{ftp.DialWithTLS(cfg)}, in.Addr(t, "ftps")},
		{"pasv", []ftp.DialOption{ftp.DialWithDisabledEPSV(true)}, in.Addr(t, "ftp")},
	} {
		t.Run(mode.name, func(t *testing.T) {
			c, err := ftp.Dial(mode.addr, append(mode.opts, ftp.DialWithTimeout(30*time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Quit()
			if err := c.Login(aliceFTP, postatest.Users[aliceFTP]); err != nil {
				t.Fatal(err)
			}
			dir := "/" + mode.name
			must(t, c.MakeDir(dir))
			must(t, c.ChangeDir(dir))
			if cur, err := c.CurrentDir(); err != nil || cur != dir {
				t.Fatalf("CurrentDir = %q, %v", cur, err)
			}
			data := make([]byte, 2<<20+123)
			rand.Read(data)
			must(t, c.Stor("f.bin", bytes.NewReader(data)))
			if got := retr(t, c, "f.bin", 0); !bytes.Equal(got, data) {
				t.Fatal("Retr differs")
			}
			if got := retr(t, c, "f.bin", 1<<20); !bytes.Equal(got, data[1<<20:]) {
				t.Fatal("RetrFrom differs")
			}
			must(t, c.StorFrom("f.bin", bytes.NewReader([]byte("TAIL")), 100))
			if got := mustRead(t, filepath.Join(home, mode.name, "f.bin")); string(got) != string(data[:100])+"TAIL" {
				t.Fatalf("StorFrom: %d bytes", len(got))
			}
			must(t, c.Append("f.bin", strings.NewReader("+APP")))
			if n, err := c.FileSize("f.bin"); err != nil || n != 108 {
				t.Fatalf("FileSize = %d, %v", n, err)
			}
			when := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
			must(t, c.SetTime("f.bin", when))
			if got, err := c.GetTime("f.bin"); err != nil || !got.Equal(when) {
				t.Fatalf("GetTime = %v, %v", got, err)
			}
			ents, err := c.List("")
			if err != nil || len(ents) != 1 || ents[0].Name != "f.bin" || ents[0].Size != 108 || ents[0].Type != ftp.EntryTypeFile {
				t.Fatalf("List = %+v, %v", ents, err)
			}
			if e, err := c.GetEntry("f.bin"); err != nil || e.Size != 108 || !e.Time.Equal(when) {
				t.Fatalf("GetEntry (MLST) = %+v, %v", e, err)
			}
			names, err := c.NameList("")
			if err != nil || len(names) != 1 || names[0] != "f.bin" {
				t.Fatalf("NameList = %v, %v", names, err)
			}
			must(t, c.Rename("f.bin", "g.bin"))
			must(t, c.NoOp())
			must(t, c.Delete("g.bin"))
			must(t, c.ChangeDirToParent())
			must(t, c.RemoveDir(dir))
		})
	}
	// 64 MiB both ways with a Go client, plain and TLS (EPSV).
	for _, mode := range []struct {
		name string
		opts []ftp.DialOption
	}{{"big-plain", nil}, {"big-tls", []ftp.DialOption{ftp.DialWithExplicitTLS(cfg)}}} {
		t.Run(mode.name, func(t *testing.T) {
			c, err := ftp.Dial(in.Addr(t, "ftp"), append(mode.opts, ftp.DialWithTimeout(60*time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Quit()
			must(t, c.Login(aliceFTP, postatest.Users[aliceFTP]))
			data := big(t)
			must(t, c.Stor(mode.name, bytes.NewReader(data)))
			if !bytes.Equal(mustRead(t, filepath.Join(home, mode.name)), data) {
				t.Fatal("upload differs")
			}
			if !bytes.Equal(retr(t, c, mode.name, 0), data) {
				t.Fatal("download differs")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func retr(t *testing.T, c *ftp.ServerConn, p string, off uint64) []byte {
	t.Helper()
	r, err := c.RetrFrom(p, off)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return b
}

// rawFTP is a hand-driven control connection for what clients do not do.
type rawFTP struct {
	t  *testing.T
	nc net.Conn
	tp *textproto.Conn
}

func dialRaw(t *testing.T, addr string) *rawFTP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawFTP{t: t, nc: nc, tp: textproto.NewConn(nc)}
	r.expect(220)
	return r
}

func (r *rawFTP) expect(code int) string {
	r.t.Helper()
	got, msg, err := r.tp.ReadResponse(0)
	if err != nil || got != code {
		r.t.Fatalf("reply %d %q (%v), want %d", got, msg, err, code)
	}
	return msg
}

func (r *rawFTP) cmd(code int, format string, a ...any) string {
	r.t.Helper()
	if err := r.tp.PrintfLine(format, a...); err != nil {
		r.t.Fatal(err)
	}
	return r.expect(code)
}

func (r *rawFTP) login(user string) {
	r.t.Helper()
	r.cmd(331, "USER %s", user)
	r.cmd(230, "PASS %s", postatest.Users[user])
}

func (r *rawFTP) startTLS(cfg *tls.Config) {
	r.t.Helper()
	r.cmd(234, "AUTH TLS")
	tc := tls.Client(r.nc, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	r.nc, r.tp = tc, textproto.NewConn(tc)
}

func (r *rawFTP) epsvAddr() string {
	r.t.Helper()
	msg := r.cmd(229, "EPSV")
	i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	host, _, _ := net.SplitHostPort(r.nc.RemoteAddr().String())
	return net.JoinHostPort(host, msg[i+4:j])
}

// TestFTPTraversal: the tree is a jail whatever the client sends.
func TestFTPTraversal(t *testing.T) {
	in := startFTP(t)
	r := dialRaw(t, in.Addr(t, "ftp"))
	r.login(aliceFTP)
	home := homeOf(in, aliceFTP)
	if err := os.Symlink("/etc/passwd", filepath.Join(home, "passwd-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(home, "up")); err != nil {
		t.Fatal(err)
	}
	r.cmd(250, "CWD ../..")
	if msg := r.cmd(257, "PWD"); !strings.HasPrefix(msg, `"/"`) {
		t.Fatalf("PWD after CWD ../.. = %q", msg)
	}
	r.cmd(200, "TYPE I")
	for _, p := range []string{"../../etc/passwd", "/../../../etc/passwd", "passwd-link", "up/etc/passwd", "up"} {
		r.epsvAddr()
		r.cmd(550, "RETR %s", p)
	}
	r.cmd(550, "CWD up")
	r.cmd(550, "SIZE passwd-link")
	// The curl view: the planted links are not listed.
	c := newCurl(t, in, aliceFTP)
	if out := c.ok("ftp", "", "--list-only"); strings.TrimSpace(out) != "" {
		t.Fatalf("listing shows %q", out)
	}
	if out, code := c.run("ftp", "../../etc/passwd"); code == 0 || strings.Contains(out, "root:") {
		t.Fatalf("curl fetched /etc/passwd: %d %q", code, out)
	}
}

// TestFTPActiveModeRefused: no bounce to another address, no privileged
// port (RFC 2577 3).
func TestFTPActiveModeRefused(t *testing.T) {
	in := startFTP(t)
	r := dialRaw(t, in.Addr(t, "ftp"))
	r.login(aliceFTP)
	r.cmd(504, "PORT 192,0,2,10,31,144")
	r.cmd(504, "PORT 127,0,0,1,0,25")
	r.cmd(504, "EPRT |1|192.0.2.10|8080|")
	r.cmd(504, "EPRT |1|127.0.0.1|25|")
	r.cmd(425, "RETR x") // nothing was set up
	// curl's active mode to its own address works (TestFTPCurlBigFile), and
	// an active address given as another host is refused by curl's reply.
	c := newCurl(t, in, aliceFTP)
	if out, code := c.run("ftp", "", "--ftp-port", "192.0.2.10", "--list-only"); code == 0 {
		t.Fatalf("curl active mode to another address succeeded: %s", out)
	}
}

// TestFTPDataTLSWithoutResumeRefused: a protected data connection with a
// fresh TLS session gets 522 (RFC 4217 10.2), one resuming works.
func TestFTPDataTLSWithoutResumeRefused(t *testing.T) {
	in := startFTP(t)
	cfg := in.ClientTLS()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	r := dialRaw(t, in.Addr(t, "ftp"))
	r.startTLS(cfg)
	r.login(aliceFTP)
	r.cmd(200, "PBSZ 0")
	r.cmd(200, "PROT P")
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		result int
	}{
		{"fresh session", in.ClientTLS(), 522},
		{"resumed session", cfg, 226},
	} {
		addr := r.epsvAddr()
		if err := r.tp.PrintfLine("NLST"); err != nil {
			t.Fatal(err)
		}
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(30 * time.Second))
		r.expect(150)
		dc := tls.Client(raw, tc.cfg)
		io.ReadAll(dc)
		dc.Close()
		r.expect(tc.result)
	}
}

// TestFTPAbortOverTLS: ABOR is served during a protected transfer (no
// urgent data under TLS, RFC 4217 14).
func TestFTPAbortOverTLS(t *testing.T) {
	in := startFTP(t)
	home := homeOf(in, aliceFTP)
	os.MkdirAll(home, 0o700)
	if err := os.WriteFile(filepath.Join(home, "big.bin"), make([]byte, 48<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := in.ClientTLS()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	r := dialRaw(t, in.Addr(t, "ftp"))
	r.startTLS(cfg)
	r.login(aliceFTP)
	r.cmd(200, "PBSZ 0")
	r.cmd(200, "PROT P")
	r.cmd(200, "TYPE I")
	addr := r.epsvAddr()
	r.tp.PrintfLine("RETR big.bin")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	r.expect(150)
	dc := tls.Client(raw, cfg)
	if _, err := io.ReadFull(dc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if msg := r.cmd(213, "STAT"); !strings.Contains(msg, "of 50331648") {
		t.Fatalf("STAT during transfer: %q", msg)
	}
	r.cmd(426, "ABOR")
	r.expect(226)
	r.cmd(200, "NOOP")
	r.cmd(221, "QUIT")
}
