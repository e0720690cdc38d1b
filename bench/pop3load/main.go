// Command pop3load is a POP3 load generator and the helper that prepares
// the same mail for two servers (see bench/pop3-vs-dovecot.sh).
//
//	pop3load gen -dir D -n 10000 -seed 1
//	    write n messages of mixed sizes (CRLF lines) as D/000001.eml ...
//	pop3load deliver -dir D -smtp HOST:PORT -rcpt a@x,b@x
//	    send every message over SMTP, each to all recipients (Posta)
//	pop3load maildir -dir D -root R -users a@x,b@x
//	    write the messages into R/<user>/{new,cur,tmp} with LF lines, as a
//	    Maildir delivery agent would (Dovecot)
//	pop3load hash -password P
//	    print a Dovecot {ARGON2ID} hash with Posta's argon2id parameters
//	pop3load run -addr HOST:PORT -users a@x,b@x -password P -mode retr|login
//	    the load: C = one client per user, concurrently.
//	    retr:  login, STAT, RETR every message, QUIT; reports MB/s of
//	           message octets and messages/s
//	    login: for -duration, connect, USER/PASS, STAT, QUIT, again;
//	           reports logins/s
//
// One client per user: POP3 servers lock a maildrop per session (RFC 1939
// 4), so concurrent sessions of one user would measure the lock. The same
// binary drives both servers, so its own cost is the same on both sides.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/argon2"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pop3load gen|deliver|maildir|hash|run [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "gen":
		err = gen(args)
	case "deliver":
		err = deliver(args)
	case "maildir":
		err = maildir(args)
	case "hash":
		err = hash(args)
	case "run":
		err = run(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop3load:", err)
		os.Exit(1)
	}
}

// gen writes n deterministic messages whose sizes follow a rough real-mail
// mix: 70% 1-8 KiB, 25% 8-64 KiB, 5% 64-512 KiB. Bodies have lines that
// start with "." (so both servers byte-stuff) and 76-column text.
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	n := fs.Int("n", 10000, "messages")
	seed := fs.Int64("seed", 1, "random seed")
	fs.Parse(args)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	r := mrand.New(mrand.NewSource(*seed))
	var total int64
	for i := 1; i <= *n; i++ {
		var size int
		switch p := r.Float64(); {
		case p < 0.70:
			size = 1<<10 + r.Intn(7<<10)
		case p < 0.95:
			size = 8<<10 + r.Intn(56<<10)
		default:
			size = 64<<10 + r.Intn(448<<10)
		}
		msg := makeMessage(r, i, size)
		total += int64(len(msg))
		if err := os.WriteFile(filepath.Join(*dir, fmt.Sprintf("%06d.eml", i)), msg, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d messages, %.1f MiB, in %s\n", *n, float64(total)/(1<<20), *dir)
	return nil
}

func makeMessage(r *mrand.Rand, i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Load <load@sender.test>\r\nTo: bench@example.test\r\nSubject: pop3 load message %d\r\n", i)
	fmt.Fprintf(&b, "Message-ID: <%d.pop3load@sender.test>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n", i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const letters = "abcdefghijklmnopqrstuvwxyz      "
	line := make([]byte, 76)
	for b.Len() < size {
		for j := range line {
			line[j] = letters[r.Intn(len(letters))]
		}
		if r.Intn(40) == 0 {
			line[0] = '.'
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func messages(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no messages in %s", dir)
	}
	slices.Sort(files)
	return files, nil
}

// deliver sends every message to all recipients over SMTP, from a few
// connections at once, in file order per connection.
func deliver(args []string) error {
	fs := flag.NewFlagSet("deliver", flag.ExitOnError)
	dir := fs.String("dir", "", "message directory")
	addr := fs.String("smtp", "127.0.0.1:25", "SMTP server")
	rcpt := fs.String("rcpt", "", "recipients, comma-separated")
	conns := fs.Int("c", 4, "connections")
	fs.Parse(args)
	files, err := messages(*dir)
	if err != nil {
		return err
	}
	rcpts := strings.Split(*rcpt, ",")
	work := make(chan string, len(files))
	for _, f := range files {
		work <- f
	}
	close(work)
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var sent atomic.Int64
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(*addr)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			if err := c.Hello("pop3load.test"); err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			for f := range work {
				b, err := os.ReadFile(f)
				if err == nil {
					err = c.SendMail("load@sender.test", rcpts, bytes.NewReader(b))
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", f, err))
					return
				}
				sent.Add(1)
			}
			c.Quit()
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	fmt.Printf("delivered %d messages to %d recipients in %.1fs\n", sent.Load(), len(rcpts), time.Since(start).Seconds())
	return nil
}

// maildir writes the messages into a Maildir per user, LF line endings and
// the S= (size) and W= (CRLF size) filename fields that Dovecot's own
// delivery writes, so Dovecot need not read a message to learn its size.
// The users share one file per message through hard links.
func maildir(args []string) error {
	fs := flag.NewFlagSet("maildir", flag.ExitOnError)
	dir := fs.String("dir", "", "message directory")
	root := fs.String("root", "", "Maildir root: <root>/<user>/")
	users := fs.String("users", "", "users, comma-separated")
	fs.Parse(args)
	files, err := messages(*dir)
	if err != nil {
		return err
	}
	us := strings.Split(*users, ",")
	for _, u := range us {
		for _, sub := range []string{"new", "cur", "tmp"} {
			if err := os.MkdirAll(filepath.Join(*root, u, sub), 0o700); err != nil {
				return err
			}
		}
	}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Unix()
	for i, f := range files {
		crlf, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		lf := bytes.ReplaceAll(crlf, []byte("\r\n"), []byte("\n"))
		// Dovecot orders a new Maildir by the time in the name.
		name := fmt.Sprintf("%d.M%dP1.pop3load,S=%d,W=%d", base+int64(i), i, len(lf), len(crlf))
		first := filepath.Join(*root, us[0], "new", name)
		if err := os.WriteFile(first, lf, 0o600); err != nil {
			return err
		}
		for _, u := range us[1:] {
			if err := os.Link(first, filepath.Join(*root, u, "new", name)); err != nil {
				return err
			}
		}
	}
	fmt.Printf("wrote %d messages into %d Maildirs under %s\n", len(files), len(us), *root)
	return nil
}

// hash prints a Dovecot password field that makes Dovecot do the same
// argon2id work per login as Posta (internal/directory: m=19456 KiB, t=2,
// p=1, 32-octet key, PHC string; libsodium verifies that format).
func hash(args []string) error {
	fs := flag.NewFlagSet("hash", flag.ExitOnError)
	pw := fs.String("password", "", "password")
	fs.Parse(args)
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(*pw), salt, 2, 19*1024, 1, 32)
	b64 := base64.RawStdEncoding
	fmt.Printf("{ARGON2ID}$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s\n", argon2.Version, 19*1024, 2, 1,
		b64.EncodeToString(salt), b64.EncodeToString(key))
	return nil
}

// client is a minimal POP3 client: just what the load needs.
type client struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func dial(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriter(nc)}
	if _, err := c.status(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return c, nil
}

// status reads a status line; -ERR is an error.
func (c *client) status() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if !strings.HasPrefix(l, "+OK") {
		return "", errors.New(l)
	}
	return l, nil
}

func (c *client) cmd(s string) (string, error) {
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.status()
}

// body reads a multi-line response to its end and returns the octets of
// the message (stuffing removed, line ends as sent).
func (c *client) body() (int64, error) {
	var n int64
	for {
		l, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n += int64(len(l))
			for err == bufio.ErrBufferFull {
				l, err = c.r.ReadSlice('\n')
				n += int64(len(l))
			}
			if err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, err
		}
		if len(l) > 0 && l[0] == '.' {
			if len(l) == 3 && l[1] == '\r' || len(l) == 2 {
				return n, nil
			}
			n--
		}
		n += int64(len(l))
	}
}

func (c *client) login(user, pass string) (int, error) {
	if _, err := c.cmd("USER " + user); err != nil {
		return 0, fmt.Errorf("USER: %w", err)
	}
	if _, err := c.cmd("PASS " + pass); err != nil {
		return 0, fmt.Errorf("PASS: %w", err)
	}
	st, err := c.cmd("STAT")
	if err != nil {
		return 0, fmt.Errorf("STAT: %w", err)
	}
	f := strings.Fields(st)
	if len(f) < 3 {
		return 0, fmt.Errorf("STAT: %q", st)
	}
	return strconv.Atoi(f[1])
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:110", "POP3 server")
	users := fs.String("users", "", "users, comma-separated; one concurrent client each")
	pass := fs.String("password", "", "password of every user")
	mode := fs.String("mode", "retr", "retr or login")
	dur := fs.Duration("duration", 5*time.Second, "login mode: how long")
	label := fs.String("label", "", "label printed with the result")
	fs.Parse(args)
	us := strings.Split(*users, ",")
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var octets, msgs, logins atomic.Int64
	start := time.Now()
	until := start.Add(*dur)
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) { firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", u, err)) }
			for {
				c, err := dial(*addr)
				if err != nil {
					fail(err)
					return
				}
				n, err := c.login(u, *pass)
				if err != nil {
					c.nc.Close()
					fail(err)
					return
				}
				logins.Add(1)
				if *mode == "retr" {
					for i := 1; i <= n; i++ {
						if _, err := c.cmd("RETR " + strconv.Itoa(i)); err != nil {
							fail(fmt.Errorf("RETR %d: %w", i, err))
							c.nc.Close()
							return
						}
						k, err := c.body()
						if err != nil {
							fail(fmt.Errorf("RETR %d body: %w", i, err))
							c.nc.Close()
							return
						}
						octets.Add(k)
						msgs.Add(1)
					}
				}
				if _, err := c.cmd("QUIT"); err != nil && !errors.Is(err, io.EOF) {
					fail(fmt.Errorf("QUIT: %w", err))
				}
				c.nc.Close()
				if *mode == "retr" || time.Now().After(until) {
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	switch *mode {
	case "retr":
		fmt.Printf("%s retr clients=%d messages=%d octets=%d elapsed=%.2fs mbps=%.1f msgps=%.0f\n", *label, len(us),
			msgs.Load(), octets.Load(), el, float64(octets.Load())/el/1e6, float64(msgs.Load())/el)
	default:
		fmt.Printf("%s login clients=%d logins=%d elapsed=%.2fs loginps=%.1f\n", *label, len(us), logins.Load(), el,
			float64(logins.Load())/el)
	}
	return nil
}
