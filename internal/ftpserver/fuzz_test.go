package ftpserver

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/files"
	"posta/internal/guard"
)

// Seeds: the C: lines of RFC 959 7 and RFC 2428/3659/4217/7151 examples,
// and what curl, Python's ftplib and FileZilla send.
var seedLines = []string{
	"USER alice@example.test", "PASS alice-password", "ACCT x", "CWD /pub", "CDUP", "XCUP", "PWD", "XPWD",
	"TYPE I", "TYPE A N", "TYPE L 8", "STRU F", "MODE S", "PORT 127,0,0,1,7,138", "PASV", "EPSV", "EPSV ALL",
	"EPSV 2", "EPRT |1|132.235.1.2|6275|", "EPRT |2|1080::8:800:200C:417A|5282|", "RETR file", "STOR file",
	"STOU", "APPE file", "ALLO 100 R 10", "REST 100", "RNFR a", "RNTO b", "ABOR", "\xff\xf4\xff\xf2ABOR",
	"DELE a", "RMD d", "MKD d", "XMKD d", "LIST -la", "NLST", "SITE CHMOD 755 a", "SITE HELP", "SYST",
	"STAT", "STAT /", "HELP", "HELP RETR", "NOOP", "FEAT", "OPTS UTF8 ON", "OPTS MLST type;size;",
	"OPTS HASH SHA-1", "SIZE a", "MDTM a", "MLST a", "MLSD", "HOST ftp.example.com", "HOST [::1]",
	"AUTH TLS", "PBSZ 0", "PROT P", "CCC", "MFMT 20200101000000 a", "HASH a", "REIN", "SMNT x", "QUIT",
}

// FuzzParseCommand: no panic; a parsed verb is 1-4 upper-case letters and
// the argument holds no control character; parsing what it rebuilds gives
// the same command.
func FuzzParseCommand(f *testing.F) {
	for _, s := range seedLines {
		f.Add([]byte(s + "\r"))
	}
	f.Add([]byte("\xff\xff\xffUSER x"))
	f.Add([]byte("user  two  spaces "))
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseCommand(line)
		if err != nil {
			return
		}
		if len(c.Verb) == 0 || len(c.Verb) > 4 || strings.ToUpper(c.Verb) != c.Verb {
			t.Fatalf("verb %q from %q", c.Verb, line)
		}
		for _, r := range c.Verb {
			if r < 'A' || r > 'Z' {
				t.Fatalf("verb %q from %q", c.Verb, line)
			}
		}
		if strings.ContainsFunc(c.Arg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("arg %q holds a control character", c.Arg)
		}
		re := c.Verb
		if c.Arg != "" {
			re += " " + c.Arg
		}
		c2, err := ParseCommand([]byte(strings.ReplaceAll(re, "\xff", "\xff\xff")))
		if err != nil || c2.Verb != c.Verb || c2.Arg != c.Arg {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, c, re, c2, err)
		}
	})
}

// FuzzParsePORT covers PORT and EPRT: no panic, and what parses formats
// back to something that parses to the same address.
func FuzzParsePORT(f *testing.F) {
	for _, s := range []string{"127,0,0,1,7,138", "255,255,255,255,255,255", "1,2,3,4,5", " 1,2,3,4,5,6 ",
		"|1|132.235.1.2|6275|", "|2|1080::8:800:200C:417A|5282|", "!2!::1!21!", "|3|x|1|", "||||", "|1|1.2.3.4|0|",
		"|2|::ffff:1.2.3.4|80|", "|2|fe80::1%eth0|80|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ap, err := ParsePORT(s); err == nil {
			back, err := ParsePORT(FormatPASV(ap))
			if err != nil || back != ap {
				t.Fatalf("PORT %q -> %v -> %q -> %v, %v", s, ap, FormatPASV(ap), back, err)
			}
		}
		if ap, err := ParseEPRT(s); err == nil {
			if !ap.Addr().IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" {
				t.Fatalf("EPRT %q gave %v", s, ap)
			}
			back, err := ParseEPRT(FormatEPRT(ap))
			if err != nil || back != ap {
				t.Fatalf("EPRT %q -> %v -> %q -> %v, %v", s, ap, FormatEPRT(ap), back, err)
			}
		}
		parseEPSV(s)
	})
}

// FuzzASCII: TYPE A conversion. Without CR in the data, what goes out comes
// back byte-exact; SIZE's count equals what is sent; every wire offset at
// a line boundary maps back to a disk offset.
func FuzzASCII(f *testing.F) {
	for _, s := range []string{"", "a\nb\n", "\r\n", "\r", "x\r\r\ny", "\n\n\n", "no newline"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wire, err := io.ReadAll(newToWire(bytes.NewReader(data)))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := wireSize(bytes.NewReader(data)); n != int64(len(wire)) {
			t.Fatalf("wireSize %d, sent %d", n, len(wire))
		}
		// Read back through a reader that returns one byte at a time, so
		// every CR lands at a chunk boundary.
		back, err := io.ReadAll(newFromWire(&oneByte{bytes.NewReader(wire)}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("\r")) && !bytes.Equal(back, data) {
			t.Fatalf("round trip %q -> %q -> %q", data, wire, back)
		}
		if bytes.Contains(back, []byte("\r\n")) && !bytes.Contains(data, []byte("\r\n")) {
			t.Fatalf("CRLF survived: %q", back)
		}
		for i := 0; i <= len(data); i++ {
			if i < len(data) && data[i] != '\n' {
				continue
			}
			w, _ := wireSize(bytes.NewReader(data[:i]))
			d, ok, err := diskOffset(bytes.NewReader(data), w)
			if err != nil || !ok || d != int64(i) {
				t.Fatalf("diskOffset(%d) = %d %v %v, want %d (data %q)", w, d, ok, err, i, data)
			}
		}
	})
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// replyLine is what every line the server writes must look like: a reply
// line or a continuation that starts with a space.
var replyLine = regexp.MustCompile(`^([1-5][0-9][0-9][ -]| )`)

type loopConn struct{ net.Conn }

// errLog keeps the server's error lines (a panic's stack among them) for
// the failing input's report.
var errLog lockedBuffer

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	l.b.Reset()
	l.mu.Unlock()
}

func (loopConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (loopConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21} }

// FuzzSession drives a logged-in session with arbitrary command lines over
// an in-memory connection: no panic, every reply well formed, the session
// ends after QUIT.
func FuzzSession(f *testing.F) {
	for _, s := range seedLines {
		f.Add(s + "\r\n")
	}
	f.Add("MKD a\r\nCWD a\r\nTYPE A\r\nREST 5\r\nSTAT\r\nRNFR .\r\nRNTO b\r\nSIZE ..\r\nLIST\r\n")
	f.Add("ALLO  \r\nALLO \r\nHASH  \r\nOPTS  \r\nTYPE  \r\nSITE  \r\n") // arguments of spaces only
	data := f.TempDir()
	store, err := files.Open(files.Options{Dir: filepath.Join(data, "files")})
	if err != nil {
		f.Fatal(err)
	}
	lim := DefaultLimits()
	lim.ConnectTimeout, lim.IdleTimeout, lim.DataTimeout = 50*time.Millisecond, 2*time.Second, time.Second
	lim.MaxErrors, lim.MaxErrorsBeforeLogin = 1000, 1000
	s, err := New(Options{
		Listener: config.Listener{Name: "ftp", Protocol: "ftp"}, Directory: newMemDir(), Files: store,
		Guard: guard.New(guard.Limits{ExemptLoopback: true}), Limits: lim,
		Logger: slog.New(slog.NewTextHandler(&errLog, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, input string) {
		// The server is shared by every input: count this one's panics
		// (a sticky total would blame, and minimize to, later inputs).
		before := s.Panics()
		errLog.reset()
		server, client := net.Pipe()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss := newSession(s, loopConn{server}, netip.MustParseAddr("127.0.0.1"))
			ss.run()
		}()
		go func() {
			io.WriteString(client, "USER "+alice+"\r\nPASS "+passwords[alice]+"\r\n"+input+"\r\nQUIT\r\n")
		}()
		client.SetDeadline(time.Now().Add(30 * time.Second))
		sc := bufio.NewScanner(client)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q", line)
			}
		}
		client.Close()
		wg.Wait()
		if n := s.Panics() - before; n > 0 {
			t.Fatalf("%d panics:\n%s", n, errLog.String())
		}
	})
}
