package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"posta/internal/conntrack"
	"posta/internal/guard"
)

// errStopping: Shutdown asked this session to end at a command boundary.
var errStopping = conntrack.ErrStopping

// hangupWriteTimeout bounds the write of a farewell line, so a peer that
// does not read cannot hold a shutdown.
const hangupWriteTimeout = 5 * time.Second

// bufferSize is the per-connection buffer for command lines and replies;
// message bodies go through a larger pooled buffer (bodyBuffers).
const bufferSize = 4096

// bodyBufferSize is what RETR and TOP read and write in one go.
const bodyBufferSize = 64 << 10

// bodyBuffers holds the writers message bodies go through, so an idle
// connection only holds bufferSize octets each way.
var bodyBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bodyBufferSize) }}

// readBuffers holds the buffers bodies are read into.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, bodyBufferSize); return &b }}

// conn is one accepted connection: its I/O, deadlines, and whether it is
// idle (waiting for a command) or busy, which is what Shutdown needs.
// Only the session goroutine reads and writes; Shutdown only sets a flag
// and a read deadline, so no reply is ever written concurrently.
type conn struct {
	s      *Server
	raw    net.Conn // the TCP connection
	nc     net.Conn // raw, or the *tls.Conn over it
	r      *bufio.Reader
	w      *bufio.Writer
	line   []byte // readLine's buffer
	id     string
	ip     netip.Addr
	start  time.Time
	ctx    context.Context // cancelled when the connection ends or sessions are cut
	cancel context.CancelFunc
	tls    *tls.ConnectionState // nil without TLS
	// writeTimeout is Limits.WriteTimeout, lowered to hangupWriteTimeout for
	// the last words of a session. Only the session goroutine uses it.
	writeTimeout time.Duration

	// state: idle (blocked reading the next command), in a handshake
	// (implicit TLS or STLS), or asked by Shutdown to say goodbye at the
	// next command boundary. Its Goodbye is the conntrack.Conn method.
	*conntrack.State
}

func newConn(s *Server, raw net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{
		s: s, raw: raw, nc: raw, State: conntrack.NewState(raw), ip: guard.AddrIP(raw.RemoteAddr()), start: time.Now(), ctx: ctx, cancel: cancel,
		id:           fmt.Sprintf("%s-%d", s.o.Listener.Name, s.nextID.Add(1)),
		writeTimeout: s.lim.WriteTimeout,
	}
	c.setStream(raw)
	return c
}

// setStream points the buffered reader and writer at nc (after a TLS
// handshake). Whatever the old reader had buffered is dropped: after STLS
// that is text a man in the middle may have injected before the handshake
// (RFC 2595 and RFC 3207 5's lesson, CVE-2011-0411), so it must not be
// read as commands sent under TLS.
func (c *conn) setStream(nc net.Conn) {
	c.nc = nc
	c.r = bufio.NewReaderSize(nc, bufferSize)
	c.w = bufio.NewWriterSize(deadlineWriter{c}, bufferSize)
}

// deadlineWriter writes to the current stream with a fresh write deadline
// for each write, so a reply makes progress or is cut after WriteTimeout.
type deadlineWriter struct{ c *conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.raw.SetWriteDeadline(time.Now().Add(d.c.writeTimeout))
	return d.c.nc.Write(p)
}

// Serve runs the connection from admission to close (conntrack.Conn).
func (c *conn) Serve() {
	s := c.s
	defer c.close()
	release, err := s.o.Guard.Admit(c.ip)
	if err != nil {
		s.log.Info("pop3 refused", "conn", c.id, "ip", c.ip.String(), "reason", err.Error())
		reply := replyTooManyConns
		if errors.Is(err, guard.ErrBanned) {
			reply = replyBanned
		}
		c.refuse(reply)
		return
	}
	defer release()
	s.log.Info("pop3 connect", "conn", c.id, "ip", c.ip.String())
	if s.implicitTLS {
		// RFC 8314 3.3: on an implicit-TLS port the handshake comes first.
		if err := c.handshake(); err != nil {
			s.log.Info("pop3 tls handshake failed", "conn", c.id, "ip", c.ip.String(), "err", err.Error())
			return
		}
	}
	ss := newSession(c)
	defer ss.end()
	ss.run()
}

// refuse answers a connection the guard did not admit: one -ERR instead of
// the greeting, then close (implicit TLS: after the handshake, so the
// client can read it).
func (c *conn) refuse(r *ReplyError) {
	c.raw.SetDeadline(time.Now().Add(min(hangupWriteTimeout, c.s.lim.IdleTimeout)))
	if c.s.implicitTLS {
		tc := tls.Server(c.raw, c.s.tlsConfig)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return
		}
		c.nc = tc
	}
	io.WriteString(c.nc, r.line()+"\r\n")
}

// handshake runs a server TLS handshake over the raw connection and
// switches the session's I/O to it.
func (c *conn) handshake() error {
	tc := tls.Server(c.raw, c.s.tlsConfig)
	err := c.Handshake(func() error {
		c.raw.SetDeadline(time.Now().Add(c.s.lim.IdleTimeout))
		return tc.HandshakeContext(c.ctx)
	})
	if err != nil {
		return err
	}
	c.raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls = &st
	c.setStream(tc)
	c.s.log.Info("pop3 tls", "conn", c.id, "ip", c.ip.String(),
		"tls", strings.ReplaceAll(tls.VersionName(st.Version), " ", "")+" "+tls.CipherSuiteName(st.CipherSuite))
	return nil
}

// readLine waits for the next line from the client: a command, or an AUTH
// response. The session counts as idle meanwhile, so Shutdown can end it
// (errStopping). A read timeout is IdleTimeout (RFC 1939 3).
func (c *conn) readLine(max int) ([]byte, error) {
	if c.r.Buffered() == 0 {
		// PIPELINING (RFC 2449 6.6): replies to commands already read go
		// out together, once there is nothing more to answer.
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
	}
	var line []byte
	err := c.WaitRead(c.s.lim.IdleTimeout, func() (err error) {
		line, err = readLine(c.r, max, c.line)
		return err
	})
	if errors.Is(err, errStopping) {
		return nil, err
	}
	if line != nil {
		c.line = line[:0]
	}
	return line, err
}

// Cut ends the connection at once, whatever it is doing (conntrack.Conn).
func (c *conn) Cut() {
	c.raw.Close()
	c.cancel()
}

// writeLine writes one reply line (CRLF added). It is buffered: readLine
// flushes before it waits, and hangup flushes.
func (c *conn) writeLine(s string) error {
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	_, err := c.w.WriteString("\r\n")
	return err
}

// hangup writes a last reply, flushed within hangupWriteTimeout.
func (c *conn) hangup(r *ReplyError) {
	c.writeLine(r.line())
	c.flushFinal()
}

// flushFinal sends what is buffered with a short deadline: the session is
// ending, and a peer that does not read must not hold it.
func (c *conn) flushFinal() {
	c.writeTimeout = min(hangupWriteTimeout, c.writeTimeout)
	c.w.Flush()
}

// close ends the connection: close_notify under TLS, then the socket.
func (c *conn) close() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.raw.SetWriteDeadline(time.Now().Add(min(hangupWriteTimeout, c.writeTimeout)))
		tc.Close()
	}
	c.raw.Close()
	c.cancel()
}
