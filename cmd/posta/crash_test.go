package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"posta/internal/config"
	"posta/internal/postatest"
	"posta/internal/server"
)

// freePort asks the kernel for a port nobody uses right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCrashKeepsAcknowledgedMail kills a serving process with SIGKILL in the
// middle of concurrent deliveries; after a restart every message that got
// 250 must be in its mailbox, byte for byte, exactly once.
func TestCrashKeepsAcknowledgedMail(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is not short")
	}
	work := t.TempDir()
	data := filepath.Join(work, "data")
	port := freePort(t)
	cfgFile := filepath.Join(work, "posta.toml")
	cfgText := fmt.Sprintf("data_dir = %q\nbind_address = \"127.0.0.1\"\n[smtp]\nport = %d\nsubmission_port = 0\nsubmissions_port = 0\n"+
		"[pop3]\nenabled = false\n[imap]\nenabled = false\n[ftp]\nenabled = false\n[sftp]\nenabled = false\n"+
		"[guard]\nmax_conns_per_ip = 100\n", data, port)
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, "", "domain", "add", "example.test", "--config", cfgFile)
	for _, u := range []string{"alice", "bob"} {
		ok(t, u+"-password\n", "user", "add", u+"@example.test", "--password-stdin", "--config", cfgFile)
	}
	cmd, _ := startServe(t, "--config", cfgFile)

	type sent struct {
		rcpt string
		body []byte
	}
	var mu sync.Mutex
	acked := map[string]sent{}
	const target = 120
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			c, err := gosmtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%d-%d", g, i)
				rcpt := []string{"alice@example.test", "bob@example.test"}[i%2]
				var b bytes.Buffer
				fmt.Fprintf(&b, "Message-ID: <%s@crash>\r\nSubject: crash %s\r\n\r\n", id, id)
				for n := 1 + r.Intn(300); n > 0; n-- {
					fmt.Fprintf(&b, "%s line %d %x\r\n", id, n, r.Int63())
				}
				if err := c.SendMail("x@remote.test", []string{rcpt}, bytes.NewReader(b.Bytes())); err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[id] = sent{rcpt, b.Bytes()}
				n := len(acked)
				mu.Unlock()
				if n == target {
					close(stop)
				}
			}
		}()
	}
	// Kill while the clients are still sending: the last deliveries are in
	// flight when the process dies.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= target/2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("only %d messages acknowledged before the deadline", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	select {
	case <-stop:
	default:
		close(stop)
	}
	wg.Wait()

	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	found := map[string]int{}
	for _, acc := range []string{"alice@example.test", "bob@example.test"} {
		for _, raw := range postatest.ReadMailbox(t, s.Mail, acc, "INBOX") {
			for id, m := range acked {
				if m.rcpt == acc && bytes.HasSuffix(raw, m.body) && bytes.Contains(raw, []byte("\r\n\r\n")) {
					found[id]++
				}
			}
		}
	}
	for id := range acked {
		if found[id] != 1 {
			t.Errorf("acknowledged message %s found %d times after the crash", id, found[id])
		}
	}
	t.Logf("%d acknowledged messages, all intact after SIGKILL and restart", len(acked))
}
