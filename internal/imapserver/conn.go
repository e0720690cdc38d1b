package imapserver

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"posta/internal/conntrack"
	"posta/internal/guard"
	"posta/internal/imapwire"
)

// errStopping: Shutdown asked this session to end at a command boundary.
var errStopping = conntrack.ErrStopping

// hangupWriteTimeout bounds the write of a farewell line, so a peer that
// does not read cannot hold a shutdown.
const hangupWriteTimeout = 5 * time.Second

// bufferSize is the per-connection buffer each way: small, because idle
// connections are many (the goal is under 30 KiB each). Command lines are
// short; literals larger than it are read straight into the reader's
// buffer (bufio bypasses its own), and responses stream through it.
const bufferSize = 2048

// conn is one accepted connection: its I/O, deadlines, and whether it is
// idle (waiting for a command, or in IDLE) or busy, which is what Shutdown
// needs. Only the session goroutine writes; Shutdown only sets a flag and a
// read deadline.
type conn struct {
	s      *Server
	raw    net.Conn // the TCP connection
	nc     io.ReadWriter
	r      *bufio.Reader
	w      *bufio.Writer
	zw     *flate.Writer // COMPRESS=DEFLATE (RFC 4978) output, nil without
	dec    *imapwire.Decoder
	enc    *imapwire.Encoder
	id     string
	ip     netip.Addr
	ctx    context.Context // cancelled when the connection ends or sessions are cut
	cancel context.CancelFunc
	tls    *tls.ConnectionState // nil without TLS
	tc     *tls.Conn
	// writeTimeout is Limits.WriteTimeout, lowered for a session's last words.
	writeTimeout time.Duration
	// readTimeout is LoginTimeout before login, IdleTimeout after.
	readTimeout time.Duration
	// utf8: UTF8=ACCEPT is enabled (RFC 6855 3): mailbox names in UTF-8.
	utf8 bool
	// onLiteral is the session's continuation hook (set once the session exists).
	onLiteral func(imapwire.LiteralInfo) error

	// state: idle (blocked reading the next command, or in IDLE), in a
	// handshake, or asked by Shutdown to say goodbye at the next command
	// boundary. Its Goodbye is the conntrack.Conn method.
	*conntrack.State
}

func newConn(s *Server, raw net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{
		s: s, raw: raw, State: conntrack.NewState(raw), ip: guard.AddrIP(raw.RemoteAddr()), ctx: ctx, cancel: cancel,
		id:           fmt.Sprintf("%s-%d", s.o.Listener.Name, s.nextID.Add(1)),
		writeTimeout: s.lim.WriteTimeout, readTimeout: s.lim.LoginTimeout,
	}
	c.setStream(raw)
	return c
}

// setStream points the buffered reader, writer, decoder and encoder at a
// new stream (after a TLS handshake or COMPRESS). Whatever the old reader
// had buffered is dropped: after STARTTLS that is text a man in the middle
// may have injected before the handshake (RFC 9051 6.2.1), so it must not
// be read as commands sent under TLS.
func (c *conn) setStream(nc io.ReadWriter) {
	c.nc = nc
	c.r = bufio.NewReaderSize(nc, bufferSize)
	c.w = bufio.NewWriterSize(deadlineWriter{c}, bufferSize)
	opts := []imapwire.Option{imapwire.WithLiteralPlus(), imapwire.WithContinue(func(li imapwire.LiteralInfo) error {
		if c.onLiteral == nil {
			return nil
		}
		return c.onLiteral(li)
	})}
	c.dec = imapwire.NewDecoder(c.r, c.s.lim.Wire, opts...)
	c.dec.SetUTF8(c.utf8)
	if c.enc == nil {
		c.enc = imapwire.NewEncoder(c.w)
	} else {
		c.enc.Reset(c.w)
	}
}

// deadlineWriter writes to the current stream with a fresh write deadline
// for each write, so a response makes progress or is cut after WriteTimeout.
type deadlineWriter struct{ c *conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.raw.SetWriteDeadline(time.Now().Add(d.c.writeTimeout))
	if d.c.zw != nil {
		return d.c.zw.Write(p)
	}
	return d.c.nc.Write(p)
}

// setUTF8 turns UTF8=ACCEPT on for both directions.
func (c *conn) setUTF8() {
	c.utf8 = true
	c.dec.SetUTF8(true)
	c.enc.SetUTF8(true)
}

// flush sends what is buffered; under COMPRESS it also ends the deflate
// block (RFC 4978 4: Z_SYNC_FLUSH, so the client can decode everything).
func (c *conn) flush() error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	if c.zw != nil {
		c.raw.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		return c.zw.Flush()
	}
	return nil
}

// Serve runs the connection from admission to close (conntrack.Conn).
func (c *conn) Serve() {
	s := c.s
	defer c.close()
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("imap session panicked", "conn", c.id, "panic", fmt.Sprint(r))
		}
	}()
	release, err := s.o.Guard.Admit(c.ip)
	if err != nil {
		s.log.Info("imap refused", "conn", c.id, "ip", c.ip.String(), "reason", err.Error())
		c.refuse(err)
		return
	}
	defer release()
	s.log.Info("imap connect", "conn", c.id, "ip", c.ip.String())
	if s.implicitTLS {
		// RFC 8314 3.3: on an implicit-TLS port the handshake comes first.
		if err := c.handshake(); err != nil {
			s.log.Info("imap tls handshake failed", "conn", c.id, "ip", c.ip.String(), "err", err.Error())
			return
		}
	}
	ss := newSession(c)
	defer ss.end()
	ss.run()
}

// refuse answers a connection the guard did not admit: BYE instead of the
// greeting (RFC 9051 7.1.5), then close.
func (c *conn) refuse(err error) {
	c.raw.SetDeadline(time.Now().Add(hangupWriteTimeout))
	if c.s.implicitTLS {
		tc := tls.Server(c.raw, c.s.tlsConfig)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return
		}
		c.setStream(tc)
	}
	text := "Too many connections from your address"
	if errors.Is(err, guard.ErrBanned) {
		text = "Too many failed logins from your address; try again later"
	}
	c.enc.Untagged(imapwire.BYE, imapwire.CodeUnavailable, text)
	c.flush()
}

// handshake runs a server TLS handshake over the raw connection and
// switches the session's I/O to it.
func (c *conn) handshake() error {
	tc := tls.Server(c.raw, c.s.tlsConfig)
	err := c.Handshake(func() error {
		c.raw.SetDeadline(time.Now().Add(c.s.lim.LoginTimeout))
		return tc.HandshakeContext(c.ctx)
	})
	if err != nil {
		return err
	}
	c.raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls, c.tc = &st, tc
	c.setStream(tc)
	c.s.log.Info("imap tls", "conn", c.id, "ip", c.ip.String(),
		"tls", strings.ReplaceAll(tls.VersionName(st.Version), " ", "")+" "+tls.CipherSuiteName(st.CipherSuite))
	return nil
}

// startCompress switches both directions to DEFLATE (RFC 4978 4: raw
// deflate, RFC 1951, no zlib header).
func (c *conn) startCompress() error {
	zw, err := flate.NewWriter(c.nc, flate.DefaultCompression)
	if err != nil {
		return err
	}
	under := c.nc
	c.setStream(struct {
		io.Reader
		io.Writer
	}{flate.NewReader(under), under})
	c.zw = zw
	return nil
}

// waitRead marks the session idle for the length of read, so Shutdown can
// wake it (read then fails with errStopping). The read deadline is the
// session's timeout. flush=false when another goroutine writes meanwhile
// (IDLE), which then flushes itself.
func (c *conn) waitRead(flush bool, read func() error) error {
	if flush && c.r.Buffered() == 0 {
		// Responses to commands already read go out together, once there
		// is nothing more to answer (pipelining).
		if err := c.flush(); err != nil {
			return err
		}
	}
	return c.WaitRead(c.readTimeout, read)
}

// Cut ends the connection at once, whatever it is doing (conntrack.Conn).
func (c *conn) Cut() {
	c.raw.Close()
	c.cancel()
}

// hangup writes a last untagged BYE, flushed within hangupWriteTimeout.
func (c *conn) hangup(code imapwire.Code, text string) {
	c.writeTimeout = min(hangupWriteTimeout, c.writeTimeout)
	c.enc.Untagged(imapwire.BYE, code, text)
	c.flush()
}

// close ends the connection: close_notify under TLS, then the socket.
func (c *conn) close() {
	if c.tc != nil {
		c.raw.SetWriteDeadline(time.Now().Add(min(hangupWriteTimeout, c.writeTimeout)))
		c.tc.Close()
	}
	c.raw.Close()
	c.cancel()
}
