package pop3server

import (
	"crypto/tls"
	stdflag "flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = stdflag.Bool("update", false, "rewrite the S: lines of testdata/transcripts from the server's replies")

// transcriptMail is the maildrop every transcript starts with (alice's
// INBOX): two messages, the second with a line to byte-stuff.
var transcriptMail = []string{
	"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: first\r\n\r\nHello Alice.\r\n",
	"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: second\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n",
}

// TestTranscripts replays testdata/transcripts/pop3/*.txt against a fresh
// server: C: lines are sent, S: lines must come back exactly, in order
// (RFC 1939's own notation). Volatile values are placeholders: {UIDVALIDITY}
// (alice's INBOX, 8 hex digits). A first line "# listener: pop3" runs the
// case on the STLS port instead of implicit TLS. With -update the S: lines
// are rewritten from what the server says.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/pop3/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			replay(t, file)
		})
	}
}

func replay(t *testing.T, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	h := start(t)
	h.add("alice@example.test", transcriptMail...)
	mb, _ := h.inbox("alice@example.test")
	uv := fmt.Sprintf("%08X", mb.UIDValidity)
	var c *client
	if len(lines) > 0 && lines[0] == "# listener: pop3" {
		c = newClient(t, mustDial(t, h.addr["pop3"]))
	} else {
		c = newClient(t, mustDialTLS(t, h))
	}
	var out []string
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "C: ") || l == "C:":
			c.write(strings.TrimPrefix(strings.TrimPrefix(l, "C:"), " ") + "\r\n")
			out = append(out, l)
		case strings.HasPrefix(l, "S: ") || l == "S:":
			want := strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(l, "S:"), " "), "{UIDVALIDITY}", uv)
			got := c.line()
			if got != want && !*update {
				t.Fatalf("%s:%d: got %q, want %q", file, i+1, got, want)
			}
			out = append(out, strings.TrimSuffix("S: "+strings.ReplaceAll(got, uv, "{UIDVALIDITY}"), " "))
		default:
			out = append(out, l)
		}
	}
	if !c.closed() {
		t.Fatalf("%s: the server sent more than the transcript says, or did not close", file)
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustDialTLS(t testing.TB, h *harness) net.Conn {
	t.Helper()
	nc, err := tls.Dial("tcp", h.addr["pop3s"], h.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	return nc
}
