package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/directory"
	"posta/internal/postatest"
	"posta/internal/sftpserver"
)

// sftpEnv is a running Posta with SFTP, a client key authorized for alice,
// and a known_hosts file holding exactly the generated host keys.
type sftpEnv struct {
	in         *postatest.Instance
	port       int
	dir        string // client-side scratch directory
	key        string // private key file, authorized for alice
	knownHosts string
	hostKeys   []sftpserver.HostKey
}

func startSFTP(t *testing.T) *sftpEnv {
	t.Helper()
	in := postatest.Start(t)
	e := &sftpEnv{in: in, port: in.Port(t, "sftp"), dir: t.TempDir()}
	keys, err := sftpserver.HostKeys(in.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.hostKeys = keys
	var kh strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&kh, "[127.0.0.1]:%d %s\n", e.port, k.AuthorizedKey())
	}
	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	if err := os.WriteFile(e.knownHosts, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// addKey makes an ed25519 key with ssh-keygen and authorizes it for account.
func (e *sftpEnv) addKey(t *testing.T, account string) string {
	t.Helper()
	keygen := requireTool(t, "ssh-keygen")
	key := filepath.Join(e.dir, "id_"+strings.ReplaceAll(account, "@", "_"))
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sftpserver.AddKey(context.Background(), e.in.DB, account, string(pub)); err != nil {
		t.Fatal(err)
	}
	return key
}

// opensshArgs are the options every OpenSSH tool gets: no user config, the
// host key pinned, the given key only.
func (e *sftpEnv) opensshArgs(key, user string) []string {
	return []string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + e.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "User=" + user, "-o", "ConnectTimeout=20"}
}

// sftpBatch runs OpenSSH's sftp -b with a key (BatchMode): a command
// prefixed with "-" may fail without ending the batch.
func (e *sftpEnv) sftpBatch(t *testing.T, key, user, batch string) (string, error) {
	t.Helper()
	bin := requireTool(t, "sftp")
	bf := filepath.Join(e.dir, "batch")
	if err := os.WriteFile(bf, []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(e.opensshArgs(key, user), "-b", bf, "-P", fmt.Sprint(e.port), "127.0.0.1")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// goClient is pkg/sftp's client over x/crypto's, pinned to the host keys.
func (e *sftpEnv) goClient(t *testing.T, user string, auth ssh.AuthMethod, opts ...sftp.ClientOption) (*sftp.Client, error) {
	t.Helper()
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{auth}, Timeout: 20 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			for _, hk := range e.hostKeys {
				if bytes.Equal(hk.PublicKey.Marshal(), k.Marshal()) {
					return nil
				}
			}
			return errors.New("host key not pinned")
		}}
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), cfg)
	if err != nil {
		return nil, err
	}
	sc, err := sftp.NewClient(c, opts...)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	return sc, nil
}

func (e *sftpEnv) onDisk(account, p string) string {
	return filepath.Join(e.in.DataDir, "files", account, filepath.FromSlash(p))
}

// pkg/sftp's client: a 64 MiB random file up and down, byte-exact, with
// concurrent requests (writes arrive out of order at the server).
func TestSFTPGoClientBigFile(t *testing.T) {
	e := startSFTP(t)
	c, err := e.goClient(t, "alice@example.test", ssh.Password(postatest.Users["alice@example.test"]),
		sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<20)
	rand.Read(data)
	want := sha256.Sum256(data)
	f, err := c.Create("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("upload: %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	disk, err := os.ReadFile(e.onDisk("alice@example.test", "big.bin"))
	if err != nil || sha256.Sum256(disk) != want {
		t.Fatalf("on disk: %d bytes, %v; not what was sent", len(disk), err)
	}
	f, err = c.Open("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got bytes.Buffer
	if _, err := f.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got.Bytes()) != want {
		t.Fatalf("download: %d bytes, not what was uploaded", got.Len())
	}
}

func TestSFTPGoClientLogins(t *testing.T) {
	e := startSFTP(t)
	if _, err := e.goClient(t, "alice@example.test", ssh.Password("wrong-password")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := e.goClient(t, "alice@example.test", ssh.Password(postatest.Users["bob@example.test"])); err == nil {
		t.Fatal("bob's password accepted for alice")
	}
	c, err := e.goClient(t, "alice@example.test", ssh.Password(postatest.Users["alice@example.test"]))
	if err != nil {
		t.Fatal(err)
	}
	if wd, err := c.Getwd(); err != nil || wd != "/" {
		t.Fatalf("getwd %q, %v", wd, err)
	}
}

// OpenSSH's sftp -b with a key: directories, upload, listing, both
// renames, download, removal.
func TestSFTPOpenSSHBatch(t *testing.T) {
	e := startSFTP(t)
	key := e.addKey(t, "alice@example.test")
	local := filepath.Join(e.dir, "local.txt")
	if err := os.WriteFile(local, []byte("from openssh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(e.dir, "other.txt")
	if err := os.WriteFile(other, []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.sftpBatch(t, key, "alice@example.test", strings.Join([]string{
		"mkdir docs",
		"cd docs",
		"put " + local + " a.txt",
		"put " + other + " b.txt",
		"ls -1",
		// draft-02 6.5: plain SSH_FXP_RENAME (sftp's -l) must not replace.
		"-rename -l b.txt a.txt",
		"get a.txt " + filepath.Join(e.dir, "after-plain.txt"),
		// posix-rename@openssh.com (sftp's default when offered) replaces.
		"rename b.txt a.txt",
		"get a.txt " + filepath.Join(e.dir, "after-posix.txt"),
		"ls -1",
		"rm a.txt",
		"cd ..",
		"rmdir docs",
		"ls -1a",
	}, "\n")+"\n")
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "a.txt\nb.txt\n") {
		t.Errorf("listing after upload missing:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, "after-plain.txt")); string(b) != "from openssh\n" {
		t.Errorf("plain rename replaced the target: %q\n%s", b, out)
	}
	if !strings.Contains(out, "sftp> -rename -l b.txt a.txt\nremote rename \"/docs/b.txt\" to \"/docs/a.txt\": Failure") {
		t.Errorf("plain rename onto an existing file did not fail:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, "after-posix.txt")); string(b) != "other\n" {
		t.Errorf("posix-rename did not replace: %q", b)
	}
	if _, err := os.Stat(e.onDisk("alice@example.test", "docs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("docs still on disk: %v\n%s", err, out)
	}
}

// Traversal and symlink escapes from OpenSSH's sftp stay in the tree.
func TestSFTPOpenSSHConfinement(t *testing.T) {
	e := startSFTP(t)
	key := e.addKey(t, "alice@example.test")
	tree := e.onDisk("alice@example.test", "")
	if err := os.MkdirAll(tree, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(tree, "etc-link")); err != nil {
		t.Fatal(err)
	}
	out, err := e.sftpBatch(t, key, "alice@example.test", strings.Join([]string{
		"cd ../..",
		"pwd",
		"-get ../../etc/passwd " + filepath.Join(e.dir, "p1"),
		"-get /etc/passwd " + filepath.Join(e.dir, "p2"),
		"-get etc-link/passwd " + filepath.Join(e.dir, "p3"),
		"-ln -s /etc new-link",
		"-symlink /etc new-link2",
		"ls -1a",
	}, "\n")+"\n")
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Remote working directory: /\n") {
		t.Errorf("cd ../.. left the top:\n%s", out)
	}
	for _, p := range []string{"p1", "p2", "p3"} {
		if _, err := os.Stat(filepath.Join(e.dir, p)); err == nil {
			t.Errorf("%s was downloaded:\n%s", p, out)
		}
	}
	if _, listing, _ := strings.Cut(out, "sftp> ls -1a"); strings.Contains(listing, "etc-link") {
		t.Errorf("the escaping link is listed:\n%s", out)
	}
	for _, l := range []string{"new-link", "new-link2"} {
		if _, err := os.Lstat(filepath.Join(tree, l)); err == nil {
			t.Errorf("%s was created", l)
		}
	}
}

func TestSFTPOpenSSHQuotaAndReadOnly(t *testing.T) {
	e := startSFTP(t)
	key := e.addKey(t, "alice@example.test")
	big := filepath.Join(e.dir, "big")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	q := int64(1 << 20)
	if err := e.in.Directory.UpdateAccount(context.Background(), "alice@example.test",
		directory.AccountUpdate{QuotaBytes: &q}); err != nil {
		t.Fatal(err)
	}
	out, err := e.sftpBatch(t, key, "alice@example.test", "put "+big+" big\n")
	if err == nil {
		t.Fatalf("upload past the quota succeeded:\n%s", out)
	}
	if _, err := os.Stat(e.onDisk("alice@example.test", "big")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused upload left a file: %v", err)
	}
	// The quota is reported as the file system's size (statvfs@openssh.com).
	out, err = e.sftpBatch(t, key, "alice@example.test", "df\n")
	if err != nil || !strings.Contains(out, "1024") {
		t.Errorf("df: %v\n%s", err, out)
	}
	ro := true
	if err := e.in.Directory.UpdateAccount(context.Background(), "alice@example.test",
		directory.AccountUpdate{FilesReadOnly: &ro}); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(e.dir, "small")
	os.WriteFile(small, []byte("s"), 0o644)
	out, err = e.sftpBatch(t, key, "alice@example.test", "put "+small+" small\n")
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("read-only upload: %v\n%s", err, out)
	}
	out, err = e.sftpBatch(t, key, "alice@example.test", "-mkdir d\nls\n")
	if err != nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("read-only mkdir: %v\n%s", err, out)
	}
}

// Password login through OpenSSH's sftp (SSH_ASKPASS), the right and a
// wrong password.
func TestSFTPOpenSSHPassword(t *testing.T) {
	e := startSFTP(t)
	bin := requireTool(t, "sftp")
	for _, tc := range []struct {
		pw string
		ok bool
	}{{postatest.Users["bob@example.test"], true}, {"not-the-password", false}} {
		askpass := filepath.Join(e.dir, "askpass")
		if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+tc.pw+"'\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		args := append(e.opensshArgs("/dev/null", "bob@example.test"), "-o", "BatchMode=no",
			"-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1", "-P", fmt.Sprint(e.port), "127.0.0.1")
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
		cmd.Stdin = strings.NewReader("pwd\nbye\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if tc.ok && (err != nil || !strings.Contains(string(out), "Remote working directory: /")) {
			t.Errorf("password login: %v\n%s", err, out)
		}
		if !tc.ok && (err == nil || !strings.Contains(string(out), "Permission denied")) {
			t.Errorf("wrong password: %v\n%s", err, out)
		}
	}
}

// OpenSSH's scp (SFTP protocol since 9.0) both ways.
func TestSCP(t *testing.T) {
	e := startSFTP(t)
	key := e.addKey(t, "alice@example.test")
	scp := requireTool(t, "scp")
	src := filepath.Join(e.dir, "scp-src")
	data := make([]byte, 300<<10)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o640); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a := append(e.opensshArgs(key, "alice@example.test"), "-P", fmt.Sprint(e.port))
		if out, err := exec.CommandContext(ctx, scp, append(a, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("scp %v: %v\n%s", args, err, out)
		}
	}
	run(src, "127.0.0.1:copied")
	if b, err := os.ReadFile(e.onDisk("alice@example.test", "copied")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("scp upload: %v", err)
	}
	dst := filepath.Join(e.dir, "scp-dst")
	run("127.0.0.1:copied", dst)
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("scp download: %v", err)
	}
}

// OpenSSH's ssh: a command, a shell and remote port forwarding are
// refused; only the sftp subsystem is served.
func TestSSHExecShellForwardRefused(t *testing.T) {
	e := startSFTP(t)
	key := e.addKey(t, "alice@example.test")
	sshBin := requireTool(t, "ssh")
	marker := filepath.Join(e.dir, "marker")
	for _, tc := range []struct {
		name string
		tail []string
		want string // OpenSSH's message for the refused request
	}{
		{"exec", []string{"-T", "127.0.0.1", "touch " + marker}, "exec request failed on channel 0"},
		{"shell", []string{"-T", "127.0.0.1"}, "shell request failed on channel 0"},
		{"pty", []string{"-tt", "127.0.0.1"}, "PTY allocation request failed on channel 0"},
		{"forward", []string{"-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "127.0.0.1"},
			"remote port forwarding failed"},
	} {
		name, tail := tc.name, tc.tail
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		args := append(e.opensshArgs(key, "alice@example.test"), "-p", fmt.Sprint(e.port))
		cmd := exec.CommandContext(ctx, sshBin, append(args, tail...)...)
		cmd.Stdin = strings.NewReader("id; exit\n")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v; want a failure saying %q:\n%s", name, err, tc.want, out)
		}
		if ctx.Err() != nil {
			t.Errorf("%s: ssh hung until the timeout", name)
		}
		cancel()
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
}

// curl's sftp:// (libssh2): upload, download, listing, wrong password.
// The host key is pinned with --hostpubsha256.
func TestSFTPCurl(t *testing.T) {
	curl := requireTool(t, "curl")
	if v, err := exec.Command(curl, "-V").Output(); err != nil || !strings.Contains(string(v), " sftp") {
		t.Skip("this curl is built without SFTP (libssh2)")
	}
	e := startSFTP(t)
	fp := strings.TrimPrefix(e.hostKeys[0].Fingerprint, "SHA256:") // ed25519, what libssh2 negotiates first
	base := fmt.Sprintf("sftp://127.0.0.1:%d", e.port)
	run := func(user string, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a := append([]string{"-sS", "--hostpubsha256", fp, "-u", user}, args...)
		return exec.CommandContext(ctx, curl, a...).CombinedOutput()
	}
	alice := "alice@example.test:" + postatest.Users["alice@example.test"]
	src := filepath.Join(t.TempDir(), "up.txt")
	os.WriteFile(src, []byte("via curl\n"), 0o644)
	if out, err := run(alice, "-T", src, base+"/up.txt"); err != nil {
		t.Fatalf("upload: %v %s", err, out)
	}
	if out, err := run(alice, base+"/up.txt"); err != nil || string(out) != "via curl\n" {
		t.Fatalf("download: %q %v", out, err)
	}
	if out, err := run(alice, base+"/"); err != nil || !strings.Contains(string(out), "up.txt") {
		t.Fatalf("listing: %q %v", out, err)
	}
	if out, err := run("alice@example.test:wrong-password", base+"/up.txt"); err == nil {
		t.Fatalf("wrong password: %q", out)
	}
	if out, err := run(alice, base+"/../../etc/passwd"); err == nil {
		t.Fatalf("traversal: %q", out)
	}
}
