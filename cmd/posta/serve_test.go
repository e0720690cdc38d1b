package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the posta binary in a child process,
// so serve is tested as users run it: a process, signals, an exit status.
func TestMain(m *testing.M) {
	if os.Getenv("POSTA_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// startServe runs "posta serve" in a child and waits for its banner.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "POSTA_TEST_AS_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") {
				banner <- b.String()
				b.Reset()
			}
		}
		banner <- b.String()
	}()
	select {
	case out := <-banner:
		if !strings.Contains(out, "Stop with Ctrl-C") {
			cmd.Wait()
			t.Fatalf("serve exited before its banner: stdout %q stderr %q", out, stderr.String())
		}
		return cmd, out
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no banner in time; stderr %q", stderr.String())
	}
	return nil, ""
}

func stopServe(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after %v: %v (want exit status 0)", sig, err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not exit after %v", sig)
	}
}

func TestServeZeroConfigAndRestartKeepsUsers(t *testing.T) {
	work := t.TempDir()
	data := filepath.Join(work, "data")
	cmd, banner := startServe(t, "--data", data, "--port-offset", "20000")
	for _, want := range []string{
		"data:       " + data + " (database posta.db)",
		"self-signed certificate " + filepath.Join(data, "tls", "cert.pem"),
		"SHA-256 ",
		"posta domain add example.test --data " + data,
		"posta user add alice@example.test --data " + data,
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	for _, f := range []string{"posta.db", "tls/cert.pem", "tls/key.pem"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("first run did not create %s: %v", f, err)
		}
	}
	// The CLI works on the running server's data.
	ok(t, "", "domain", "add", "example.test", "--data", data)
	ok(t, "correct horse\n", "user", "add", "alice@example.test", "--password-stdin", "--data", data)
	stopServe(t, cmd, syscall.SIGTERM)

	cert1, err := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ = startServe(t, "--data", data)
	ok(t, "correct horse\n", "user", "test", "alice@example.test", "--password-stdin", "--data", data)
	fails(t, "wrong horse\n", "login refused", "user", "test", "alice@example.test", "--password-stdin", "--data", data)
	stopServe(t, cmd, syscall.SIGINT)
	cert2, err := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(cert1) != string(cert2) {
		t.Fatal("the certificate was regenerated on restart")
	}
}

func TestServeDefaultDataDirIsRelative(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	cmd, banner := startServe(t)
	stopServe(t, cmd, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(work, "posta-data", "posta.db")); err != nil {
		t.Fatalf("default data dir not ./posta-data: %v\n%s", err, banner)
	}
	// The default data dir needs no --data in the hint.
	if !strings.Contains(banner, "  posta user add alice@example.test\n") {
		t.Fatalf("banner hint:\n%s", banner)
	}
}
