// Package pipenet is an in-memory net.Listener for tests and fuzz targets:
// each Dial is a net.Pipe whose server end looks like a loopback TCP
// connection. A pipe hands each Write to the reader as it is, so a session
// sees the same chunks every run (a fuzzer's coverage stays stable), which
// a TCP socket would not promise.
//
// It imports nothing of Posta's own.
package pipenet

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener accepts what Dial connects.
type Listener struct {
	port  int
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Listen returns a listener whose address is 127.0.0.1:port.
func Listen(port int) *Listener {
	return &Listener{port: port, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for a Dial, or for Close (net.ErrClosed).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close ends Accept; connections already made stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is 127.0.0.1 and the listener's port.
func (l *Listener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port} }

// Dial connects to the listener and returns the client's end, which the
// server sees as coming from 127.0.0.1:40000, and closeWrite, the client's
// half-close: once called, the server reads EOF. (net.Pipe has none of its
// own; its Write returns only once the server has read everything, so
// nothing written before is lost.) After Close, Dial returns net.ErrClosed.
func (l *Listener) Dial() (client net.Conn, closeWrite func(), err error) {
	server, client := net.Pipe()
	hc := &halfConn{Conn: server}
	select {
	case l.conns <- hc:
		return client, hc.closeRead, nil
	case <-l.done:
		server.Close()
		client.Close()
		return nil, nil, net.ErrClosed
	}
}

// halfConn is the server's end of a pipe whose client can stop writing.
type halfConn struct {
	net.Conn
	eof atomic.Bool
}

func (c *halfConn) Read(p []byte) (int, error) {
	if c.eof.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.eof.Load() {
		return n, io.EOF // woken by closeRead's deadline
	}
	return n, err
}

func (c *halfConn) closeRead() {
	c.eof.Store(true)
	c.Conn.SetReadDeadline(time.Unix(1, 0)) // in the past: a blocked Read returns
}

func (*halfConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
