package sftpserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func newClientKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " test@key"
}

func TestServerVersionAndAlgorithms(t *testing.T) {
	e := startEnv(t)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line := make([]byte, len(ServerVersion)+2)
	if _, err := io.ReadFull(c, line); err != nil {
		t.Fatal(err)
	}
	if string(line) != ServerVersion+"\r\n" {
		t.Fatalf("identification %q; want %q (RFC 4253 4.2)", line, ServerVersion)
	}
	// Each required cipher alone is accepted.
	for _, cipher := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305} {
		cfg := &ssh.ClientConfig{User: alice, Auth: []ssh.AuthMethod{ssh.Password(alicePW)},
			HostKeyCallback: e.hostKeyCallback(), Config: ssh.Config{Ciphers: []string{cipher}}}
		cl, err := ssh.Dial("tcp", e.addr, cfg)
		if err != nil {
			t.Fatalf("%s: %v", cipher, err)
		}
		cl.Close()
	}
	// Both host keys are offered: ed25519 and RSA (SHA-2 signatures).
	for _, alg := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512} {
		var got string
		cfg := &ssh.ClientConfig{User: alice, Auth: []ssh.AuthMethod{ssh.Password(alicePW)},
			HostKeyAlgorithms: []string{alg},
			HostKeyCallback: func(h string, a net.Addr, k ssh.PublicKey) error {
				got = k.Type()
				return e.hostKeyCallback()(h, a, k)
			}}
		cl, err := ssh.Dial("tcp", e.addr, cfg)
		if err != nil {
			t.Fatalf("host key %s: %v", alg, err)
		}
		cl.Close()
		if want := map[string]string{ssh.KeyAlgoED25519: "ssh-ed25519"}[alg]; want != "" && got != want {
			t.Fatalf("host key type %s; want %s", got, want)
		}
	}
	cfg := &ssh.ClientConfig{User: alice, Auth: []ssh.AuthMethod{ssh.Password(alicePW)},
		HostKeyCallback: e.hostKeyCallback(), HostKeyAlgorithms: []string{ssh.KeyAlgoRSA}}
	if cl, err := ssh.Dial("tcp", e.addr, cfg); err == nil {
		cl.Close()
		t.Fatal("ssh-rsa (SHA-1) host key signatures accepted")
	}
}

func TestPasswordAndKeyLogin(t *testing.T) {
	e := startEnv(t)
	signer, line := newClientKey(t)
	other, _ := newClientKey(t)

	// No key yet: publickey fails, password works.
	if c, err := e.dialSSH(t, alice, ssh.PublicKeys(signer)); err == nil {
		c.Close()
		t.Fatal("unknown key accepted")
	}
	if _, err := AddKey(context.Background(), e.db, "Alice@Example.Test", line); err != nil {
		t.Fatal(err)
	}
	c, err := e.dialSSH(t, alice, ssh.PublicKeys(other, signer)) // the first key offered is not authorized
	if err != nil {
		t.Fatalf("key login: %v", err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	put(t, sc, "/by-key", []byte("k"))
	sc.Close()
	c.Close()
	if _, err := os.Stat(e.treeFile(alice, "by-key")); err != nil {
		t.Fatalf("the key's session did not write alice's tree: %v", err)
	}
	// alice's key is not bob's.
	if c, err := e.dialSSH(t, bob, ssh.PublicKeys(signer)); err == nil {
		c.Close()
		t.Fatal("alice's key logged in as bob")
	}
	for _, tc := range []struct{ user, pw string }{
		{alice, "wrong-password"}, {"nobody@example.test", alicePW}, {"alice", alicePW}, {bob, alicePW},
	} {
		if c, err := e.dialSSH(t, tc.user, ssh.Password(tc.pw)); err == nil {
			c.Close()
			t.Errorf("login %s/%s accepted", tc.user, tc.pw)
		}
	}
	// A deleted account's keys go with it.
	if err := e.dir.DeleteAccount(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	if keys, err := ListKeys(context.Background(), e.db, alice); err != nil || len(keys) != 0 {
		t.Fatalf("keys after account deletion: %v, %v", keys, err)
	}
}

// Repeated password failures ban the address through the guard: the
// banned peer's connection is cut and new ones are refused.
func TestFailuresBan(t *testing.T) {
	e := startEnv(t) // guard: BanAfter 5
	for i := 0; i < 5; i++ {
		if c, err := e.dialSSH(t, alice, ssh.Password("bad")); err == nil {
			c.Close()
			t.Fatal("bad password accepted")
		}
	}
	if banned, _ := e.guard.Banned(netip.MustParseAddr("127.0.0.1")); !banned {
		t.Fatal("not banned after 5 failures")
	}
	// Now even the right password gets no session: the connection is
	// closed before the version exchange.
	if c, err := e.dialSSH(t, alice, ssh.Password(alicePW)); err == nil {
		c.Close()
		t.Fatal("banned address logged in")
	}
}

// MaxAuthTries bounds the attempts on one connection (RFC 4252 4).
func TestMaxAuthTries(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Limits = DefaultLimits(); o.Limits.MaxAuthTries = 2 })
	tries := 0
	cb := ssh.PasswordCallback(func() (string, error) { tries++; return "bad" + string(rune('0'+tries)), nil })
	c, err := e.dialSSH(t, bob, ssh.RetryableAuthMethod(cb, 10))
	if err == nil {
		c.Close()
		t.Fatal("login succeeded")
	}
	if tries != 2 {
		t.Fatalf("%d password attempts on one connection; want 2", tries)
	}
}

// Only the sftp subsystem is served: shell, exec, pty, env, x11, agent
// forwarding, other subsystems and port forwarding are refused, and the
// connection still serves SFTP afterwards.
func TestOnlySFTPServed(t *testing.T) {
	e := startEnv(t)
	c, err := e.dialSSH(t, alice, ssh.Password(alicePW))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Setenv("LANG", "C"); err == nil {
		t.Error("env accepted")
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("pty-req accepted")
	}
	if err := agent.RequestAgentForwarding(sess); err == nil {
		t.Error("agent forwarding accepted")
	}
	if ok, err := sess.SendRequest("x11-req", true, ssh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})); ok || err != nil {
		t.Errorf("x11-req: %v %v", ok, err)
	}
	if err := sess.RequestSubsystem("shell"); err == nil {
		t.Error("subsystem shell accepted")
	}
	if err := sess.Shell(); err == nil {
		t.Error("shell accepted")
	}
	sess.Close()
	sess, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := sess.CombinedOutput("cat /etc/passwd"); err == nil || len(out) > 0 {
		t.Errorf("exec accepted: %q %v", out, err)
	}
	sess.Close()
	// Local forwarding: direct-tcpip channel open fails (RFC 4254 7.2).
	if fc, err := c.Dial("tcp", e.addr); err == nil {
		fc.Close()
		t.Error("direct-tcpip accepted")
	} else if oc := new(ssh.OpenChannelError); !errors.As(err, &oc) || oc.Reason != ssh.Prohibited {
		t.Errorf("direct-tcpip: %v; want administratively prohibited", err)
	}
	// Remote forwarding: tcpip-forward refused (RFC 4254 7.1).
	if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("tcpip-forward accepted")
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Getwd(); err != nil {
		t.Fatalf("sftp after refusals: %v", err)
	}
}
