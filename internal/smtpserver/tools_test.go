package smtpserver

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool finds an external client, or skips (fails under
// POSTA_REQUIRE_TOOLS=1, as in CI where the tools must be present).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("POSTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not on PATH (POSTA_REQUIRE_TOOLS=1)", name)
		}
		t.Skipf("%s not on PATH", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	h := start(t)
	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	msg := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: from curl\r\n\r\nHello from curl.\r\n.dot line\r\n"
	if err := os.WriteFile(msgFile, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(scheme, listener string) []string {
		p := port(t, h.addr[listener])
		// The certificate names localhost; --resolve keeps curl on 127.0.0.1.
		return []string{"--silent", "--show-error", "--max-time", "30",
			"--url", scheme + "://localhost:" + p, "--resolve", "localhost:" + p + ":127.0.0.1",
			"--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test", "--upload-file", msgFile}
	}
	cases := []struct {
		name    string
		args    []string
		account string
		with    string
	}{
		{"submission STARTTLS", append(base("smtp", "submission"), "--ssl-reqd", "--cacert", h.certFile(),
			"--user", "alice@example.test:"+testUsers["alice@example.test"]), "alice@example.test", "ESMTPSA"},
		{"submission AUTH LOGIN", append(base("smtp", "submission"), "--ssl-reqd", "--cacert", h.certFile(),
			"--login-options", "AUTH=LOGIN", "--user", "alice@example.test:"+testUsers["alice@example.test"]),
			"alice@example.test", "ESMTPSA"},
		{"submissions implicit TLS", append(base("smtps", "submissions"), "--cacert", h.certFile(),
			"--user", "alice@example.test:"+testUsers["alice@example.test"]), "alice@example.test", "ESMTPSA"},
		{"MX plaintext", base("smtp", "smtp"), "", "ESMTP"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, curl, tc.args...)
			m := h.del.messages()
			if len(m) != i+1 {
				t.Fatalf("stored %d messages, want %d", len(m), i+1)
			}
			got := m[i]
			if got.env.Account != tc.account {
				t.Errorf("account %q, want %q", got.env.Account, tc.account)
			}
			rec, body := bodyAfterReceived(t, got.body)
			if string(body) != msg {
				t.Errorf("body %q, want %q", body, msg)
			}
			if !strings.Contains(rec, " with "+tc.with+" id ") {
				t.Errorf("Received: %q", rec)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		args := append(base("smtp", "submission"), "--ssl-reqd", "--cacert", h.certFile(), "--user", "alice@example.test:nope")
		out, err := exec.Command(curl, args...).CombinedOutput()
		// curl exits 67 "Login denied" on the 535.
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 67 || !strings.Contains(h.log.String(), "code=535") {
			t.Fatalf("curl with a wrong password: err %v, output %s", err, out)
		}
	})
	t.Run("relay refused", func(t *testing.T) {
		args := base("smtp", "smtp")
		args[len(args)-3] = "someone@elsewhere.example" // --mail-rcpt
		out, err := exec.Command(curl, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "550") {
			t.Fatalf("relay through MX: err %v, output %s", err, out)
		}
	})
}

const pythonClient = `
import smtplib, ssl, sys
mode, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
msg = "From: %s\r\nTo: bob@example.test\r\nSubject: from python\r\n\r\nHello from smtplib.\r\n" % user
if mode == "starttls":
    s = smtplib.SMTP("localhost", int(port), timeout=30)
    s.ehlo("python.example")
    s.starttls(context=ctx)
    s.ehlo("python.example")
else:
    s = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=30)
    s.ehlo("python.example")
s.login(user, password)
refused = s.sendmail(user, ["bob@example.test"], msg)
assert not refused, refused
try:
    s.sendmail(user, ["bob@example.test"], "Subject: x\n\nbare\nline feeds are fixed by smtplib\n")
finally:
    s.quit()
print("ok")
`

func TestPythonSmtplib(t *testing.T) {
	py := needTool(t, "python3")
	h := start(t)
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []struct{ mode, listener string }{{"starttls", "submission"}, {"ssl", "submissions"}} {
		t.Run(mode.mode, func(t *testing.T) {
			out := run(t, py, script, mode.mode, port(t, h.addr[mode.listener]), h.certFile(),
				"alice@example.test", testUsers["alice@example.test"])
			if strings.TrimSpace(out) != "ok" {
				t.Fatalf("python: %s", out)
			}
			m := h.del.messages()
			if len(m) != 2*(i+1) {
				t.Fatalf("stored %d", len(m))
			}
			got := m[2*i]
			if got.env.Account != "alice@example.test" || got.env.Listener != mode.listener || got.env.HELO != "python.example" {
				t.Fatalf("envelope %+v", got.env)
			}
			_, body := bodyAfterReceived(t, got.body)
			if !strings.HasSuffix(string(body), "Hello from smtplib.\r\n") {
				t.Fatalf("body %q", body)
			}
		})
	}
}
