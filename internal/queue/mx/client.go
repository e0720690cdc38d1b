package mx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// client is the SMTP client side of one relay connection (RFC 5321). It is
// written here rather than taken from go-smtp because go-smtp's client
// sends one command and waits for its reply: no PIPELINING (RFC 2920), which
// costs a round trip per recipient on every message, and no BDAT (RFC 3030),
// which BINARYMIME needs. It knows only what a relay sends: EHLO/HELO,
// STARTTLS, MAIL, RCPT, DATA, BDAT, RSET and QUIT.
type client struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	ext  map[string]string // EHLO keywords, upper case, to their parameters
}

// Reply limits: RFC 5321 4.5.3.1.5 gives 512 octets per reply line; be
// lenient, but bounded.
const (
	maxReplyLine  = 4096
	maxReplyLines = 128
)

// errProtocol marks a reply that is not SMTP: the session cannot go on.
var errProtocol = errors.New("malformed reply")

// replyError is a reply that was not the one hoped for.
type replyError struct{ r reply }

func (e *replyError) Error() string {
	if e.r.enhanced != "" {
		return fmt.Sprintf("%d %s %s", e.r.code, e.r.enhanced, e.r.text)
	}
	return fmt.Sprintf("%d %s", e.r.code, e.r.text)
}

func newClient(conn net.Conn) *client {
	return &client{conn: conn, br: bufio.NewReaderSize(conn, maxReplyLine), bw: bufio.NewWriter(conn)}
}

// readReply reads one whole reply, multiline included (RFC 5321 4.2.1),
// within timeout.
func (c *client) readReply(timeout time.Duration) (reply, []string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var r reply
	var lines []string
	for n := 0; ; n++ {
		line, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return r, nil, fmt.Errorf("%w: reply line longer than %d octets", errProtocol, maxReplyLine)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return r, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if n == maxReplyLines {
			return r, nil, fmt.Errorf("%w: more than %d reply lines", errProtocol, maxReplyLines)
		}
		if len(line) < 3 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return r, nil, fmt.Errorf("%w: %q", errProtocol, truncate(line))
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil || code < 200 || code > 599 || n > 0 && code != r.code {
			return r, nil, fmt.Errorf("%w: %q", errProtocol, truncate(line))
		}
		text := ""
		if len(line) > 4 {
			text = string(line[4:])
		}
		if n == 0 {
			r.code = code
			r.enhanced = enhancedOf(code, text)
		}
		// RFC 2034 4: every line of the reply repeats the enhanced code.
		if r.enhanced != "" {
			text = strings.TrimPrefix(strings.TrimPrefix(text, r.enhanced), " ")
		}
		lines = append(lines, text)
		if len(line) == 3 || line[3] == ' ' {
			break
		}
	}
	r.text = strings.Join(lines, "\n")
	return r, lines, nil
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// enhancedOf returns the enhanced status code that starts text, if its
// class agrees with code's (RFC 3463 2, RFC 2034 4).
func enhancedOf(code int, text string) string {
	ec, _, _ := strings.Cut(text, " ")
	parts := strings.Split(ec, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || len(p) > 3 {
			return ""
		}
	}
	return ec
}

// expect reads a reply and makes any code but want a *replyError.
func (c *client) expect(timeout time.Duration, want int) (reply, error) {
	r, _, err := c.readReply(timeout)
	if err != nil {
		return r, err
	}
	if r.code != want && !(want == 250 && r.code/100 == 2) {
		return r, &replyError{r}
	}
	return r, nil
}

// write queues one command line; flush sends what is queued.
func (c *client) write(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("mx: command with a line break: %q", line)
	}
	c.bw.WriteString(line)
	_, err := c.bw.WriteString("\r\n")
	return err
}

func (c *client) flush(timeout time.Duration) error {
	c.conn.SetWriteDeadline(time.Now().Add(timeout))
	return c.bw.Flush()
}

// cmd sends one command and reads its reply.
func (c *client) cmd(timeout time.Duration, want int, line string) (reply, error) {
	if err := c.write(line); err != nil {
		return reply{}, err
	}
	if err := c.flush(timeout); err != nil {
		return reply{}, err
	}
	return c.expect(timeout, want)
}

// greet reads the server's greeting (RFC 5321 4.3.1: 220, or 554).
func (c *client) greet(timeout time.Duration) error {
	_, err := c.expect(timeout, 220)
	return err
}

// hello sends EHLO, and HELO where EHLO is not understood (RFC 5321 3.2:
// 500, 501, 502 or 550 mean an older server), and learns the extensions.
func (c *client) hello(timeout time.Duration, name string) error {
	c.ext = map[string]string{}
	if err := c.write("EHLO " + name); err != nil {
		return err
	}
	if err := c.flush(timeout); err != nil {
		return err
	}
	r, lines, err := c.readReply(timeout)
	if err != nil {
		return err
	}
	switch {
	case r.code == 250:
		// RFC 5321 4.1.1.1: the first line greets, each further line
		// is a keyword with its parameters.
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(k)] = v
		}
		return nil
	case r.code == 500 || r.code == 501 || r.code == 502 || r.code == 550:
		_, err := c.cmd(timeout, 250, "HELO "+name)
		return err
	}
	return &replyError{r}
}

// extension says whether the server offered name, and with what.
func (c *client) extension(name string) (bool, string) {
	v, ok := c.ext[name]
	return ok, v
}

// startTLS asks for TLS (RFC 3207 4); on 220 the caller does the handshake
// over c.conn. A server that sent more than its 220 (bytes a man in the
// middle could have injected into the clear session) is refused.
func (c *client) startTLS(timeout time.Duration) error {
	if _, err := c.cmd(timeout, 220, "STARTTLS"); err != nil {
		return err
	}
	if c.br.Buffered() > 0 {
		return fmt.Errorf("%w: data after the STARTTLS reply", errProtocol)
	}
	return nil
}

// dataWriter returns the writer of a DATA body: dot-stuffed, line endings
// made CRLF (RFC 5321 4.5.2); Close sends the final dot.
func (c *client) dataWriter() io.WriteCloser {
	return textproto.NewWriter(c.bw).DotWriter()
}
