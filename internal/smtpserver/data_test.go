package smtpserver

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"posta/internal/config"
)

func TestDotStuffing(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	// RFC 5321 4.5.2: the client doubles a leading dot, the server removes it.
	r := c.send("s@remote.example", []string{"bob@example.test"},
		"Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n")
	r.is(t, 250, "2.0.0")
	_, body := bodyAfterReceived(t, h.del.messages()[0].body)
	if want := "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n"; string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
}

// TestBareLineEndingsRejected covers SMTP smuggling (RFC 5321 2.3.8,
// 4.1.1.4): data with a bare LF or CR, including the end-of-data variants
// other servers accept, is refused whole, nothing is stored, nothing after
// the fake terminator runs as a command, and the session goes on.
func TestBareLineEndingsRejected(t *testing.T) {
	smuggled := "MAIL FROM:<admin@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
	cases := []struct{ name, data string }{
		{"LF.CRLF terminator", "Subject: a\r\n\r\nhello\n.\r\n" + smuggled + ".\r\n"},
		{"LF.LF terminator", "Subject: a\r\n\r\nhello\n.\n" + smuggled + ".\r\n"},
		{"CR.CR terminator", "Subject: a\r\n\r\nhello\r.\r" + smuggled + ".\r\n"},
		{"CRLF.LF terminator", "Subject: a\r\n\r\nhello\r\n.\n" + smuggled + ".\r\n"},
		{"bare LF in a header", "Subject: a\nX: b\r\n\r\nhello\r\n.\r\n"},
		{"bare CR in the body", "Subject: a\r\n\r\nhel\rlo\r\n.\r\n"},
		// Not a line ending, but the same end: text the client adds to the
		// header above its message, our Received (RFC 5322 2.2.3).
		{"leading white space", " (authenticated as ceo@example.test)\r\nSubject: a\r\n\r\nhello\r\n.\r\n"},
	}
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
			c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
			c.cmd("DATA").is(t, 354, "")
			c.write(tc.data)
			c.read().is(t, 554, "5.6.0")
			// The next reply answers our NOOP: no smuggled command ran.
			c.cmd("NOOP").is(t, 250, "2.0.0")
			if m := h.del.messages(); len(m) != 0 {
				t.Fatalf("stored %d messages, e.g. %q", len(m), m[0].body)
			}
		})
	}
	c.t = t
	c.send("s@remote.example", []string{"bob@example.test"}, simpleMessage+".\r\n").is(t, 250, "2.0.0")
	if m := h.del.messages(); len(m) != 1 {
		t.Fatalf("stored %d, want the one clean message", len(m))
	}
}

func TestBDAT(t *testing.T) {
	h := start(t)
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	part1 := "Subject: chunks\r\n\r\n"
	part2 := ".a line with a dot, not stuffed in BDAT\r\n"
	// RFC 3030 2: chunk sizes are exact octet counts; no dot-stuffing.
	c.write("MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\n")
	c.read().is(t, 250, "2.0.0")
	c.read().is(t, 250, "2.0.0")
	c.write("BDAT " + strconv.Itoa(len(part1)) + "\r\n" + part1)
	c.read().is(t, 250, "2.0.0")
	c.write("BDAT " + strconv.Itoa(len(part2)) + " LAST\r\n" + part2)
	c.read().is(t, 250, "2.0.0")
	m := h.del.messages()
	if len(m) != 1 {
		t.Fatalf("stored %d", len(m))
	}
	_, body := bodyAfterReceived(t, m[0].body)
	if string(body) != part1+part2 {
		t.Fatalf("body %q", body)
	}

	// Over the size limit in total: 552 5.3.4 and nothing stored.
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	// Lines stay under MaxLineLength: go-smtp's line limit also applies to
	// chunk bytes that arrive in the same read as the BDAT command.
	chunk := strings.Repeat(strings.Repeat("y", 998)+"\r\n", 40)
	c.write("BDAT " + strconv.Itoa(len(chunk)) + "\r\n" + chunk)
	c.read().is(t, 250, "2.0.0")
	c.write("BDAT " + strconv.Itoa(len(chunk)) + " LAST\r\n" + chunk)
	c.read().is(t, 552, "5.3.4")
	c.cmd("NOOP").is(t, 250, "2.0.0")

	// A bare LF in a chunk is refused too.
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	bad := "Subject: x\n\r\nbody\r\n"
	c.write("BDAT " + strconv.Itoa(len(bad)) + " LAST\r\n" + bad)
	c.read().is(t, 554, "5.6.0")
	c.cmd("NOOP").is(t, 250, "2.0.0")
	if m := h.del.messages(); len(m) != 1 {
		t.Fatalf("stored %d messages, want only the first", len(m))
	}

	// Aborted transfers followed at once by a new transaction: each LAST
	// must get its own result (see conn.waitBDAT for the go-smtp race).
	for i := range 30 {
		c.write("MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 7\r\nhello\r\nRSET\r\n" +
			"MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 9 LAST\r\nmsg " + strconv.Itoa(i%10) + "\r\n\r\n")
		for range 6 {
			c.read().is(t, 250, "2.0.0")
		}
		c.read().is(t, 250, "2.0.0") // the LAST chunk's own result
	}
	if m := h.del.messages(); len(m) != 31 {
		t.Fatalf("stored %d messages, want 31", len(m))
	}
}

// TestSTARTTLSInjection: bytes sent after STARTTLS in the same packet
// arrive before the handshake and must not be executed inside the TLS
// session (RFC 3207 4.2 / CVE-2011-0411: the server discards its buffer).
func TestSTARTTLSInjection(t *testing.T) {
	h := start(t)
	for _, name := range []string{"smtp", "submission"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, h.addr[name])
			c.ehlo("x.example")
			c.write("STARTTLS\r\nNOOP\r\nMAIL FROM:<injected@example.test>\r\n")
			c.read().is(t, 220, "2.0.0")
			tc := tls.Client(c.nc, h.clientTLS())
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			c.nc, c.tp = tc, textproto.NewConn(tc)
			// The first reply in the TLS session must answer our EHLO, not
			// the injected NOOP or MAIL.
			r := c.cmd("EHLO x.example")
			if r.code != 250 || !strings.HasPrefix(r.text, "Hello x.example") {
				t.Fatalf("first reply under TLS: %v", r)
			}
			// And no transaction is open: RCPT needs a MAIL first.
			c.cmd("RCPT TO:<bob@example.test>").is(t, 502, "5.5.1")
		})
	}
}

// TestDataTimeout: DataTimeout bounds the whole message, and its expiry
// ends the session with 421 4.4.2; nothing is stored.
func TestDataTimeout(t *testing.T) {
	h := start(t, withConfig(func(c *config.Config) { c.SMTP.Limits.DataTimeout = config.Duration(300 * time.Millisecond) }))
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	c.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c.cmd("DATA").is(t, 354, "")
	c.write("Subject: slow\r\n\r\npart of it\r\n") // and then nothing
	c.read().is(t, 421, "4.4.2")
	if !c.closed() {
		t.Fatal("still open")
	}

	// BDAT: many chunks cannot stretch the deadline past DataTimeout.
	c2 := dial(t, h.addr["smtp"])
	c2.ehlo("x.example")
	c2.cmd("MAIL FROM:<s@remote.example>").is(t, 250, "2.0.0")
	c2.cmd("RCPT TO:<bob@example.test>").is(t, 250, "2.0.0")
	c2.write("BDAT 5\r\nhello")
	c2.read().is(t, 250, "2.0.0")
	c2.write("BDAT 10\r\nhello") // half a chunk, then silence
	c2.read().is(t, 421, "4.4.2")
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

// TestLongDataLine: lines longer than MaxLineLength are refused.
func TestLongDataLine(t *testing.T) {
	h := start(t, withConfig(func(c *config.Config) { c.SMTP.Limits.MaxLineLength = 1000 }))
	c := dial(t, h.addr["smtp"])
	c.ehlo("x.example")
	r := c.send("s@remote.example", []string{"bob@example.test"},
		"Subject: x\r\n\r\n"+strings.Repeat("z", 3000)+"\r\n.\r\n")
	if r.code != 554 && r.code != 500 {
		t.Fatalf("long line: %v", r)
	}
	if len(h.del.messages()) != 0 {
		t.Fatal("stored")
	}
}

func TestBodyReader(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"a\r\nb\r\n", true},
		{"", true},
		{"no final newline", true},
		{"a\nb", false},
		{"a\rb", false},
		{"trailing CR\r", false},
		{"\n", false},
		{"\r\n\r\n", true},
		{" folded\r\n", false},
		{"\tfolded\r\n", false},
		{"X: a\r\n b\r\n", true},
	} {
		// One byte at a time too, so CR and LF fall in different reads.
		for _, step := range []int{1, 1 << 10} {
			br := &bodyReader{r: &stepReader{b: []byte(tc.in), step: step}}
			var out bytes.Buffer
			_, err := out.ReadFrom(br)
			if (err == nil) != tc.ok {
				t.Errorf("%q step %d: err %v, want ok=%v", tc.in, step, err, tc.ok)
			}
			if tc.ok && out.String() != tc.in {
				t.Errorf("%q: passed %q", tc.in, out.String())
			}
		}
	}
}

type stepReader struct {
	b    []byte
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.b)
	s.b = s.b[n:]
	return n, nil
}

// TestBDATZeroThenHangUp: "BDAT 0" starts go-smtp's data goroutine with no
// bytes to wait for, so the connection can end before that goroutine runs.
// It must take its session before the connection closes (see
// third_party/go-smtp/PATCHES.md); otherwise it panics on a nil session.
func TestBDATZeroThenHangUp(t *testing.T) {
	h := start(t)
	for range 200 {
		c := dial(t, h.addr["smtp"])
		c.ehlo("x.example")
		c.write("MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 0\r\n")
		c.read().is(t, 250, "2.0.0")
		c.read().is(t, 250, "2.0.0")
		c.read().is(t, 250, "2.0.0")
		c.nc.Close()
	}
	// The data goroutines run after their connections end; give them time.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && h.srv["smtp"].Panics() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.srv["smtp"].Panics(); n != 0 {
		t.Fatalf("%d sessions panicked:\n%s", n, h.log)
	}
}
