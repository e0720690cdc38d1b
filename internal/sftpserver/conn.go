package sftpserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// phase is where a connection stands, as far as shutdown cares.
type phase uint8

const (
	phaseHandshake phase = iota // SSH key exchange and authentication
	phaseOpen                   // authenticated: channels may run SFTP
	phaseClosed
)

// Permissions.Extensions keys set by the auth callbacks.
const (
	extAccount = "posta-account"
	extMethod  = "posta-method"
	extKey     = "posta-key"
)

// conn is one TCP connection: the SSH handshake, then its channels.
type conn struct {
	s      *Server
	id     string
	ip     netip.Addr
	start  time.Time
	raw    *deadlineConn
	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc

	release func() // guard slot

	// set by the handshake (auth callbacks run on the serving goroutine)
	user        string // as the client sent it, for logs
	authFails   int
	banned      bool
	internalErr bool

	account string // canonical address, once authenticated
	method  string

	sessions sync.WaitGroup

	mu        sync.Mutex
	phase     phase
	ssh       *ssh.ServerConn
	channels  map[ssh.Channel]struct{}
	inflight  int // SFTP requests read and not yet answered, all sessions
	openFiles int // files (not directories) open, all sessions
	hangup    bool
	nsessions int
}

// Serve runs the connection to its end (conntrack.Conn).
func (c *conn) Serve() {
	s := c.s
	defer c.cancel()
	defer c.raw.Close()
	release, err := s.o.Guard.Admit(c.ip)
	if err != nil {
		// RFC 4253 4.2 allows no reply before the version exchange but
		// lines of text; the refusal is simply the closed connection, as
		// sshd does at MaxStartups.
		s.log.Info("sftp refused", "conn", c.id, "ip", c.ip.String(), "reason", err.Error())
		return
	}
	c.release = release
	defer release()
	s.log.Info("sftp connect", "conn", c.id, "ip", c.ip.String())

	// The login deadline covers key exchange and authentication.
	c.raw.SetDeadline(time.Now().Add(s.lim.LoginTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c.raw, s.sshConfig(c))
	if err != nil {
		s.log.Info("sftp handshake failed", "conn", c.id, "ip", c.ip.String(), "user", c.user,
			"auth_failures", c.authFails, "banned", c.banned, "err", err.Error())
		c.setClosed()
		return
	}
	c.account = sc.Permissions.Extensions[extAccount]
	c.method = sc.Permissions.Extensions[extMethod]
	s.o.Guard.AuthSucceeded(c.ip, c.user)
	s.log.Info("sftp auth ok", "conn", c.id, "ip", c.ip.String(), "account", c.account, "method", c.method,
		"key", sc.Permissions.Extensions[extKey])
	c.raw.armIdle()

	c.mu.Lock()
	if c.hangup || c.phase == phaseClosed {
		// Shutdown began during the handshake.
		c.mu.Unlock()
		sc.Close()
		c.drain(chans, reqs)
		return
	}
	c.phase, c.ssh, c.channels = phaseOpen, sc, map[ssh.Channel]struct{}{}
	c.mu.Unlock()

	go c.globalRequests(reqs)
	for nc := range chans {
		c.newChannel(nc)
	}
	// chans is closed: the transport is gone. Sessions end on their own
	// (their channels are closed by the mux).
	c.sessions.Wait()
	c.setClosed()
	sc.Close()
	s.log.Info("sftp disconnect", "conn", c.id, "ip", c.ip.String(), "account", c.account,
		"duration", time.Since(c.start).Round(time.Millisecond))
}

// drain empties the channels of a connection that is being closed.
func (c *conn) drain(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		nc.Reject(ssh.ResourceShortage, "server shutting down")
	}
}

// globalRequests refuses every global request: RFC 4254 7.1 tcpip-forward
// and cancel-tcpip-forward (remote port forwarding), and whatever else
// (OpenSSH keepalives and hostkeys-00 notices get "failure", which they
// accept).
func (c *conn) globalRequests(reqs <-chan *ssh.Request) {
	for r := range reqs {
		if r.Type == "tcpip-forward" || r.Type == "streamlocal-forward@openssh.com" {
			c.s.log.Info("sftp refused forwarding", "conn", c.id, "account", c.account, "request", r.Type)
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// newChannel accepts "session" channels only (RFC 4254 6.1). direct-tcpip
// (7.2, local port forwarding) and the rest are refused with
// SSH_MSG_CHANNEL_OPEN_FAILURE (5.1).
func (c *conn) newChannel(nc ssh.NewChannel) {
	switch nc.ChannelType() {
	case "session":
	case "direct-tcpip", "direct-streamlocal@openssh.com", "forwarded-tcpip", "x11", "auth-agent@openssh.com":
		c.s.log.Info("sftp refused channel", "conn", c.id, "account", c.account, "type", nc.ChannelType())
		nc.Reject(ssh.Prohibited, "only SFTP is served here")
		return
	default:
		nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		return
	}
	c.mu.Lock()
	if c.hangup || c.phase != phaseOpen {
		c.mu.Unlock()
		nc.Reject(ssh.ResourceShortage, "server shutting down")
		return
	}
	if c.nsessions >= c.s.lim.MaxSessions {
		c.mu.Unlock()
		nc.Reject(ssh.ResourceShortage, "too many sessions")
		return
	}
	c.nsessions++
	c.sessions.Add(1)
	c.mu.Unlock()
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.endSession(nil)
		return
	}
	c.mu.Lock()
	c.channels[ch] = struct{}{}
	c.mu.Unlock()
	go c.session(ch, reqs)
}

func (c *conn) endSession(ch ssh.Channel) {
	c.mu.Lock()
	c.nsessions--
	if ch != nil {
		delete(c.channels, ch)
	}
	c.mu.Unlock()
	c.sessions.Done()
}

// requests and responses are reported by the sessions' streams.
func (c *conn) requests(n int) {
	c.mu.Lock()
	c.inflight += n
	c.mu.Unlock()
}

func (c *conn) responses(n int) { c.adjust(-n, 0) }

func (c *conn) fileOpened() { c.adjust(0, 1) }
func (c *conn) fileClosed() { c.adjust(0, -1) }

// adjust changes the activity counts; a connection Shutdown asked to close
// is closed the moment it becomes idle.
func (c *conn) adjust(dInflight, dFiles int) {
	c.mu.Lock()
	c.inflight = max(0, c.inflight+dInflight)
	c.openFiles = max(0, c.openFiles+dFiles)
	closeNow := c.hangup && c.phase == phaseOpen && c.idleLocked()
	c.mu.Unlock()
	if closeNow {
		c.closeGracefully()
	}
}

func (c *conn) idleLocked() bool { return c.inflight == 0 && c.openFiles == 0 }

// Goodbye is Shutdown's request (conntrack.Conn): a connection still in
// the handshake, or idle, is closed now; a busy one when it becomes idle.
func (c *conn) Goodbye() {
	c.mu.Lock()
	c.hangup = true
	ph, idle := c.phase, c.idleLocked()
	c.mu.Unlock()
	switch {
	case ph == phaseHandshake:
		c.Cut()
	case ph == phaseOpen && idle:
		c.closeGracefully()
	}
}

// closeGracefully closes the session channels (the client sees the
// subsystem end, RFC 4254 5.3), then the connection.
func (c *conn) closeGracefully() {
	c.mu.Lock()
	chs := make([]ssh.Channel, 0, len(c.channels))
	for ch := range c.channels {
		chs = append(chs, ch)
	}
	sc := c.ssh
	c.mu.Unlock()
	for _, ch := range chs {
		ch.Close()
	}
	if sc != nil {
		sc.Close()
	}
	c.raw.Close()
}

// Cut closes the TCP connection at once (conntrack.Conn): a blocked read
// sees no context, a closed socket it does.
func (c *conn) Cut() {
	c.setClosed()
	c.raw.abort()
}

func (c *conn) setClosed() {
	c.mu.Lock()
	c.phase = phaseClosed
	c.mu.Unlock()
}

// deadlineConn is the TCP connection under x/crypto/ssh. It applies the
// idle timeout: once armed (after login), every read and write pushes its
// deadline IdleTimeout ahead (moved at most every step, not on every call).
//
// It also batches writes: x/crypto/ssh writes every SSH packet with its own
// write(2). Here a writer goroutine sends whatever packets have accumulated
// in one write, so under load the kernel and the client see fewer, larger
// writes (sshd does the same from its output buffer); a lone packet goes
// out at once. Write only queues (bounded by maxConnBuffer): an error is
// reported by the next Write, as a dead connection's is anyway.
type deadlineConn struct {
	net.Conn
	idle         time.Duration
	armed        atomic.Bool
	lastR, lastW atomic.Int64 // unix nanoseconds of the last deadline move
	closeOnce    sync.Once

	wmu     sync.Mutex
	wcond   *sync.Cond
	wbuf    []byte // queued for the writer
	wspare  []byte
	werr    error
	wclosed bool
	wdone   chan struct{} // closed when the writer has returned
}

// maxConnBuffer bounds the bytes queued for the socket; past it Write
// blocks until the writer catches up (back-pressure).
const maxConnBuffer = 1 << 20

// hangupFlush bounds how long Close waits for queued bytes to go out.
const hangupFlush = 5 * time.Second

func newDeadlineConn(c net.Conn, idle time.Duration) *deadlineConn {
	d := &deadlineConn{Conn: c, idle: idle, wdone: make(chan struct{})}
	d.wcond = sync.NewCond(&d.wmu)
	go d.writer()
	return d
}

func (d *deadlineConn) step() time.Duration { return min(time.Second, d.idle/8) }

// armIdle replaces the login deadline with the idle one, also for the read
// x/crypto/ssh's reader goroutine is blocked in now.
func (d *deadlineConn) armIdle() {
	now := time.Now()
	d.lastR.Store(now.UnixNano())
	d.lastW.Store(now.UnixNano())
	d.Conn.SetDeadline(now.Add(d.idle))
	d.armed.Store(true)
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.armed.Load() {
		now := time.Now()
		if time.Duration(now.UnixNano()-d.lastR.Load()) > d.step() {
			d.lastR.Store(now.UnixNano())
			d.Conn.SetReadDeadline(now.Add(d.idle))
		}
	}
	return d.Conn.Read(p)
}

// Write queues p for the writer goroutine.
func (d *deadlineConn) Write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	for len(d.wbuf) >= maxConnBuffer && d.werr == nil && !d.wclosed {
		d.wcond.Wait()
	}
	switch {
	case d.werr != nil:
		return 0, d.werr
	case d.wclosed:
		return 0, net.ErrClosed
	}
	d.wbuf = append(d.wbuf, p...)
	d.wcond.Broadcast()
	return len(p), nil
}

func (d *deadlineConn) writer() {
	defer close(d.wdone)
	for {
		d.wmu.Lock()
		for len(d.wbuf) == 0 && !d.wclosed {
			d.wcond.Wait()
		}
		if len(d.wbuf) == 0 {
			d.wmu.Unlock()
			return
		}
		data := d.wbuf
		d.wbuf, d.wspare = d.wspare[:0], nil
		closing := d.wclosed // Close set the flush deadline: keep it
		d.wmu.Unlock()

		if d.armed.Load() && !closing {
			now := time.Now()
			if time.Duration(now.UnixNano()-d.lastW.Load()) > d.step() {
				d.lastW.Store(now.UnixNano())
				d.Conn.SetWriteDeadline(now.Add(d.idle))
			}
		}
		_, err := d.Conn.Write(data)

		d.wmu.Lock()
		if cap(data) <= 2*maxConnBuffer {
			d.wspare = data[:0]
		}
		if err != nil {
			d.werr = err
			d.wbuf = nil
		}
		d.wcond.Broadcast()
		d.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// Close sends what is queued (for at most hangupFlush), then closes.
func (d *deadlineConn) Close() error {
	return d.close(false)
}

// abort closes at once, dropping what is queued.
func (d *deadlineConn) abort() { d.close(true) }

func (d *deadlineConn) close(now bool) error {
	var err error
	d.closeOnce.Do(func() {
		if now {
			err = d.Conn.Close()
		} else {
			d.Conn.SetWriteDeadline(time.Now().Add(hangupFlush))
		}
		d.wmu.Lock()
		d.wclosed = true
		d.wcond.Broadcast()
		d.wmu.Unlock()
		<-d.wdone
		if !now {
			err = d.Conn.Close()
		}
	})
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
