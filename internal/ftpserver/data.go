package ftpserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"time"

	"posta/internal/guard"
)

// dataSetup is how the next transfer gets its data connection: a passive
// listener the client connects to, or an active address we connect to.
type dataSetup struct {
	pasv   *net.TCPListener
	active netip.AddrPort
}

// takeData hands the data setup to a transfer; the next transfer needs a
// new PASV or PORT (RFC 959 3.2 leaves reuse open; each transfer having its
// own is what clients do and keeps a stolen port useless).
func (ss *session) takeData() (dataSetup, error) {
	d := dataSetup{pasv: ss.pasv, active: ss.active}
	if d.pasv == nil && !d.active.IsValid() {
		return d, errNoDataConn
	}
	ss.pasv, ss.active = nil, netip.AddrPort{}
	return d, nil
}

func (ss *session) closePassive() {
	if ss.pasv != nil {
		ss.pasv.Close()
		ss.pasv = nil
	}
}

// cmdPASV: RFC 959 4.1.2. IPv4 only: an IPv6 client must use EPSV (RFC
// 2428 4).
func (ss *session) cmdPASV(string) (*reply, error) {
	if ss.epsvAll {
		return nil, errEPSVAll
	}
	addr, err := ss.passiveAddress()
	if err != nil {
		return nil, err
	}
	port, err := ss.listenPassive()
	if err != nil {
		return nil, err
	}
	return ok(227, "Entering Passive Mode ("+FormatPASV(netip.AddrPortFrom(addr, port))+")"), nil
}

// cmdEPSV: RFC 2428 3.
func (ss *session) cmdEPSV(arg string) (*reply, error) {
	a, err := parseEPSV(arg)
	if err != nil {
		return nil, err
	}
	if a.all {
		// RFC 2428 3: from now on only EPSV sets up data connections.
		ss.epsvAll = true
		ss.closePassive()
		ss.active = netip.AddrPort{}
		return ok(200, "EPSV ALL ok"), nil
	}
	if a.af != 0 && (a.af == 1) != ss.local.Is4() {
		// The data connection uses the control connection's protocol.
		fam := "1"
		if !ss.local.Is4() {
			fam = "2"
		}
		return nil, refuse(522, "Network protocol not supported, use ("+fam+")")
	}
	port, err := ss.listenPassive()
	if err != nil {
		return nil, err
	}
	return ok(229, "Entering Extended Passive Mode "+FormatEPSV(port)), nil
}

// cmdPORT: RFC 959 4.1.2.
func (ss *session) cmdPORT(arg string) (*reply, error) {
	if ss.epsvAll {
		return nil, errEPSVAll
	}
	ap, err := ParsePORT(arg)
	if err != nil {
		return nil, err
	}
	return ss.setActive(ap)
}

// cmdEPRT: RFC 2428 2.
func (ss *session) cmdEPRT(arg string) (*reply, error) {
	if ss.epsvAll {
		return nil, errEPSVAll
	}
	ap, err := ParseEPRT(arg)
	if err != nil {
		return nil, err
	}
	return ss.setActive(ap)
}

// setActive accepts an active data address only if it is the client's own
// address and not a privileged port: RFC 2577 3 (the bounce attack; RFC
// 4217 15.2.1 repeats it) lets a server refuse any other.
func (ss *session) setActive(ap netip.AddrPort) (*reply, error) {
	if ap.Addr().Unmap() != ss.ip.Unmap() || ap.Port() < 1024 {
		ss.s.log.Info("ftp active address refused", "conn", ss.id, "ip", ss.ip.String(), "target", ap.String())
		return nil, errBounce
	}
	ss.closePassive()
	ss.active = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ok(200, "PORT command successful"), nil
}

// listenPassive opens this session's one passive listener (replacing an
// earlier one) on the address the client reached, in the configured port
// range.
func (ss *session) listenPassive() (uint16, error) {
	ss.closePassive()
	ss.active = netip.AddrPort{}
	ln, err := ss.s.listenPassive(ss.ctx, ss.local)
	if err != nil {
		ss.s.log.Warn("ftp passive listen failed", "conn", ss.id, "err", err.Error())
		return 0, refuse(425, "Cannot open passive connection")
	}
	ss.pasv = ln
	return uint16(ln.Addr().(*net.TCPAddr).Port), nil
}

func (s *Server) listenPassive(ctx context.Context, ip netip.Addr) (*net.TCPListener, error) {
	var lc net.ListenConfig
	listen := func(port int) (*net.TCPListener, error) {
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		return l.(*net.TCPListener), nil
	}
	if s.o.PassivePortMin == 0 {
		return listen(0)
	}
	// Start at a random port of the range so sessions spread over it and a
	// port is not predictable from the last one (RFC 4217 15.2.6, port
	// stealing).
	n := s.o.PassivePortMax - s.o.PassivePortMin + 1
	first := rand.IntN(n)
	var last error
	for i := 0; i < n; i++ {
		l, err := listen(s.o.PassivePortMin + (first+i)%n)
		if err == nil {
			return l, nil
		}
		last = err
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", s.o.PassivePortMin, s.o.PassivePortMax, last)
}

// passiveAddress is the IPv4 address PASV announces to this client: the
// first matching per-network override, else the configured public address
// or name, else the address the client connected to.
func (ss *session) passiveAddress() (netip.Addr, error) {
	want := ""
	for _, o := range ss.s.o.PassiveAddressByNetwork {
		if o.Network.Contains(ss.ip.Unmap()) {
			want = o.Address
			break
		}
	}
	if want == "" {
		want = ss.s.o.PassiveAddress
	}
	if want == "" {
		if !ss.local.Is4() {
			return netip.Addr{}, refuse(501, "PASV is IPv4 only; use EPSV")
		}
		return ss.local, nil
	}
	if ip, err := netip.ParseAddr(want); err == nil {
		return ip.Unmap(), nil
	}
	ctx, cancel := context.WithTimeout(ss.ctx, ss.s.lim.ConnectTimeout)
	defer cancel()
	ips, err := ss.s.lookup(ctx, "ip4", want)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("ftp: resolve passive address %s: %v", want, err)
	}
	return ips[0].Unmap(), nil
}

// openData makes the data connection of transfer x: accepts the client on
// the passive port (only from the control connection's address, RFC 4217
// 15.2.6) or connects to its active address; then, under PROT P, runs TLS
// and requires it to resume the control connection's session.
func (ss *session) openData(x *transfer, d dataSetup, protect bool) (dataConn, error) {
	var raw *net.TCPConn
	deadline := time.Now().Add(ss.s.lim.ConnectTimeout)
	if d.pasv != nil {
		if !x.track(d.pasv) {
			return dataConn{}, errAborted
		}
		defer d.pasv.Close()
		d.pasv.SetDeadline(deadline)
		for {
			c, err := d.pasv.AcceptTCP()
			if err != nil {
				if x.aborted.Load() {
					return dataConn{}, errAborted
				}
				return dataConn{}, &ReplyError{Code: 425, Text: "Cannot open data connection", Err: err}
			}
			if from := guard.AddrIP(c.RemoteAddr()); from.Unmap() != ss.ip.Unmap() {
				ss.s.log.Warn("ftp data connection from another address refused", "conn", ss.id,
					"ip", ss.ip.String(), "from", from.String())
				c.Close()
				continue
			}
			raw = c
			break
		}
	} else {
		dl := net.Dialer{Deadline: deadline, LocalAddr: &net.TCPAddr{IP: ss.local.AsSlice()}}
		c, err := dl.DialContext(x.ctx, "tcp", d.active.String())
		if err != nil {
			if x.aborted.Load() {
				return dataConn{}, errAborted
			}
			return dataConn{}, &ReplyError{Code: 425, Text: "Cannot open data connection", Err: err}
		}
		raw = c.(*net.TCPConn)
	}
	// Shut down before closing: a sendfile blocked in the kernel
	// (sendfile_linux.go) wakes at the shutdown, while a close would wait
	// for it.
	if !x.track(shutdownCloser{raw}) || !x.track(raw) {
		return dataConn{}, errAborted
	}
	if !protect {
		return dataConn{raw: raw, conn: raw}, nil
	}
	b := &binding{tag: ss.tag, data: true}
	tc, err := ss.s.handshake(x.ctx, raw, b)
	if err != nil {
		raw.Close()
		if x.aborted.Load() {
			return dataConn{}, errAborted
		}
		return dataConn{}, &ReplyError{Code: errDataTLS.Code, Text: errDataTLS.Text, Err: err}
	}
	st := tc.ConnectionState()
	if !st.DidResume && !ss.s.o.AllowTLSWithoutResume {
		// RFC 4217 10.2: "reasonable for the server to insist that the data
		// connection uses a TLS cached session"; 522 says so.
		ss.s.log.Info("ftp data connection did not resume the TLS session", "conn", ss.id,
			"ip", ss.ip.String(), "foreign_ticket", b.foreign.Load())
		tc.Close()
		return dataConn{}, errNoResume
	}
	return dataConn{raw: raw, conn: tc, tls: true}, nil
}

// dataConn is an open data connection: conn is raw or the TLS over it.
type dataConn struct {
	raw  *net.TCPConn
	conn net.Conn
	tls  bool
}

// close ends a data connection cleanly: TLS sends close_notify (RFC 4217
// and RFC 8446 6.1 want the truncation detectable) before the TCP close.
func (d dataConn) close() error {
	if d.conn == nil {
		return nil
	}
	d.conn.SetWriteDeadline(time.Now().Add(hangupWriteTimeout))
	err := d.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// shutdownCloser shuts a TCP connection down both ways.
type shutdownCloser struct{ c *net.TCPConn }

func (s shutdownCloser) Close() error {
	s.c.CloseWrite()
	return s.c.CloseRead()
}
