package imapserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// tconn is a raw IMAP client: tests see every response line as sent. A
// line that announces a literal ({n} or ~{n}) is returned with the
// literal's octets and the rest of the line spliced in, so one "line" is
// one whole response.
type tconn struct {
	t   testing.TB
	nc  net.Conn
	r   *bufio.Reader
	w   io.Writer
	tag int
	// flush, when set, pushes out what w buffered (COMPRESS).
	flush func() error
}

// reply is what one command got: the lines before the tagged one (untagged
// responses and continuation requests) and the tagged line without its tag.
type reply struct {
	untagged []string
	tagged   string
}

func newTconn(t testing.TB, nc net.Conn) *tconn {
	nc.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { nc.Close() })
	return &tconn{t: t, nc: nc, r: bufio.NewReader(nc), w: nc}
}

// dialRaw connects without reading the greeting.
func (h *harness) dialRaw(t testing.TB) *tconn {
	t.Helper()
	var nc net.Conn
	var err error
	if h.srv.implicitTLS {
		nc, err = tls.Dial("tcp", h.addr, h.clientTLS())
	} else {
		nc, err = net.Dial("tcp", h.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return newTconn(t, nc)
}

var greetingRE = regexp.MustCompile(`^\* OK \[CAPABILITY IMAP4rev1 IMAP4rev2 [^\]]*\] ` + regexp.QuoteMeta(testHostname) + ` Posta IMAP ready$`)

// dial connects and checks the greeting (RFC 9051 7.1.1).
func (h *harness) dial(t testing.TB) *tconn {
	t.Helper()
	c := h.dialRaw(t)
	if g := c.line(); !greetingRE.MatchString(g) {
		t.Fatalf("greeting %q", g)
	}
	return c
}

// login dials and logs in with LOGIN.
func (h *harness) login(t testing.TB, user string) *tconn {
	t.Helper()
	c := h.dial(t)
	c.loginAs(user)
	return c
}

func (c *tconn) loginAs(user string) {
	c.t.Helper()
	r := c.do("LOGIN %s %s", quote(user), quote(testUsers[user]))
	if !strings.HasPrefix(r.tagged, "OK [CAPABILITY IMAP4rev1 IMAP4rev2 ") || !strings.HasSuffix(r.tagged, "] Logged in") {
		c.t.Fatalf("LOGIN %s: %q %q", user, r.untagged, r.tagged)
	}
}

// selectBox logs in and selects (or examines) a mailbox.
func (h *harness) selectBox(t testing.TB, user, verb, mailbox string) *tconn {
	t.Helper()
	c := h.login(t, user)
	c.ok("%s %s", verb, quote(mailbox))
	return c
}

// quote is an IMAP quoted string (RFC 9051 4.3).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

var literalEnd = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// rawLine reads one CRLF-terminated line without the CRLF; a bare LF fails
// the test.
func (c *tconn) rawLine() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// next reads one response, literals spliced in; io errors are returned.
func (c *tconn) next() (string, error) {
	var b strings.Builder
	for {
		l, err := c.rawLine()
		b.WriteString(l)
		if err != nil {
			return b.String(), err
		}
		m := literalEnd.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(b.String(), "+") {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// line reads one response; it fails the test on an error.
func (c *tconn) line() string {
	c.t.Helper()
	l, err := c.next()
	if err != nil {
		c.t.Fatalf("reading response: %v (partial %q)", err, l)
	}
	return l
}

func (c *tconn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	if c.flush != nil {
		if err := c.flush(); err != nil {
			c.t.Fatalf("flush: %v", err)
		}
	}
}

func (c *tconn) nextTag() string {
	c.tag++
	return "a" + strconv.Itoa(c.tag)
}

// do sends one command under a fresh tag and reads up to its tagged response.
func (c *tconn) do(format string, args ...any) reply {
	c.t.Helper()
	tag := c.nextTag()
	c.write(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return c.until(tag)
}

// until reads responses up to the tagged one for tag.
func (c *tconn) until(tag string) reply {
	c.t.Helper()
	var r reply
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			r.tagged = rest
			return r
		}
		r.untagged = append(r.untagged, l)
	}
}

// replyWait is how long a test waits for a reply that should come at once
// before calling it missing (a server that holds a reply back would
// otherwise stall the test until ioTimeout).
const replyWait = time.Second

// within sends one command and reads up to its tagged response, giving up
// after d (then ok is false and the connection is no longer usable). Tests
// use it where a server bug could leave a reply unsent, so the bug shows as
// a failure rather than a stall.
func (c *tconn) within(d time.Duration, format string, args ...any) (r reply, ok bool) {
	c.t.Helper()
	tag := c.nextTag()
	c.write(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	c.nc.SetReadDeadline(time.Now().Add(d))
	defer c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		l, err := c.next()
		if err != nil {
			return r, false
		}
		if rest, found := strings.CutPrefix(l, tag+" "); found {
			r.tagged = rest
			return r, true
		}
		r.untagged = append(r.untagged, l)
	}
}

// bad sends a command and checks it gets a tagged BAD [CLIENTBUG].
func (c *tconn) bad(format string, args ...any) reply {
	c.t.Helper()
	r := c.do(format, args...)
	if !strings.HasPrefix(r.tagged, "BAD [CLIENTBUG] ") {
		c.t.Fatalf("%s: got %q, want BAD [CLIENTBUG] (untagged %q)", fmt.Sprintf(format, args...), r.tagged, r.untagged)
	}
	return r
}

// ok sends a command, checks it succeeds, and returns its untagged lines.
func (c *tconn) ok(format string, args ...any) []string {
	c.t.Helper()
	r := c.do(format, args...)
	if !strings.HasPrefix(r.tagged, "OK") {
		c.t.Fatalf("%s: %q (untagged %q)", fmt.Sprintf(format, args...), r.tagged, r.untagged)
	}
	return r.untagged
}

// is sends a command and checks its tagged response exactly (tag removed).
func (c *tconn) is(want, format string, args ...any) reply {
	c.t.Helper()
	r := c.do(format, args...)
	if r.tagged != want {
		c.t.Fatalf("%s: got %q, want %q (untagged %q)", fmt.Sprintf(format, args...), r.tagged, want, r.untagged)
	}
	return r
}

// appendMsg APPENDs one message with a non-synchronizing literal (RFC
// 7888) and returns the tagged response.
func (c *tconn) appendMsg(mailbox, flags, msg string) string {
	c.t.Helper()
	tag := c.nextTag()
	if flags != "" {
		flags = " (" + flags + ")"
	}
	c.write(fmt.Sprintf("%s APPEND %s%s {%d+}\r\n%s\r\n", tag, quote(mailbox), flags, len(msg), msg))
	r := c.until(tag)
	return r.tagged
}

// closed reports whether the server closed the connection (after whatever
// was read already). Anything else it sends fails the test.
func (c *tconn) closed() bool {
	c.t.Helper()
	l, err := c.next()
	if err == nil {
		c.t.Fatalf("expected the connection to close, got %q", l)
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

// bye reads the next response, which must be the BYE want, and then the
// end of the connection.
func (c *tconn) bye(want string) {
	c.t.Helper()
	if l := c.line(); l != want {
		c.t.Fatalf("got %q, want %q", l, want)
	}
	if !c.closed() {
		c.t.Fatal("connection not closed after BYE")
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// starttls runs STARTTLS and the handshake.
func (c *tconn) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.is("OK Begin TLS negotiation now", "STARTTLS")
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.nc, c.w = tc, tc
	c.r = bufio.NewReader(tc)
}

// fetchRE is "* n FETCH (...UID u...)".
var (
	fetchUIDRE = regexp.MustCompile(`^\* (\d+) FETCH \(.*\bUID (\d+)\b`)
	existsRE   = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	expungeRE  = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
)

// imapClient dials with imapclient and logs in; closed at the end of the test.
func (h *harness) imapClient(t testing.TB, user string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	var c *imapclient.Client
	var err error
	if h.srv.implicitTLS {
		opts.TLSConfig = h.clientTLS()
		c, err = imapclient.DialTLS(h.addr, opts)
	} else {
		c, err = imapclient.DialInsecure(h.addr, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, testUsers[user]).Wait(); err != nil {
		t.Fatalf("imapclient LOGIN %s: %v", user, err)
	}
	return c
}
