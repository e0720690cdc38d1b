// Command ftpload is an FTP load generator, and (with -serve) a Posta that
// serves FTP, so that one run measures Posta and a reference server (vsftpd)
// with the same client:
//
//	ftpload -op retr  -addr HOST:PORT -user U -pass P -remote big.bin -n 3 [-tls]
//	ftpload -op stor  -addr HOST:PORT -user U -pass P -local big.bin -remote up.bin -n 3 [-tls]
//	ftpload -op login -addr HOST:PORT -user U -pass P -c 8 -n 50 [-tls]
//	ftpload -op idle  -addr HOST:PORT -user U -pass P -c 300   # holds 300 logged-in sessions until stdin closes
//	ftpload -serve -data DIR -port PORT -user U -pass P        # Posta with FTP on PORT, until SIGTERM
//
// Transfers use EPSV and TYPE I. The client reads into a large buffer and
// sends files with io.Copy from an *os.File (sendfile in plaintext), so it
// is not the bottleneck. With -tls it uses AUTH TLS, PBSZ 0, PROT P and
// resumes the control connection's TLS session on every data connection (as
// both servers require).
package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	op := flag.String("op", "retr", "retr, stor, login or idle")
	addr := flag.String("addr", "127.0.0.1:2121", "server host:port")
	user := flag.String("user", "bench@example.test", "login name")
	pass := flag.String("pass", "bench-password", "password")
	useTLS := flag.Bool("tls", false, "AUTH TLS and PROT P")
	tls12 := flag.Bool("tls12", false, "cap TLS at 1.2")
	remote := flag.String("remote", "big.bin", "remote file name")
	local := flag.String("local", "", "local file to upload (stor)")
	n := flag.Int("n", 3, "transfers (retr, stor) or logins per client (login)")
	conc := flag.Int("c", 1, "concurrent clients (login, idle)")
	label := flag.String("label", "", "label printed with each result line")
	serveFlag := flag.Bool("serve", false, "run a Posta serving FTP instead")
	dataDir := flag.String("data", "", "with -serve: data directory")
	port := flag.Int("port", 2121, "with -serve: FTP port (implicit FTPS is off)")
	flag.Parse()

	if *serveFlag {
		if err := serve(*dataDir, *port, *user, *pass); err != nil {
			fmt.Fprintln(os.Stderr, "ftpload -serve:", err)
			os.Exit(1)
		}
		return
	}
	cfg := &clientConfig{addr: *addr, user: *user, pass: *pass, tls: *useTLS}
	if *useTLS {
		// The benchmark measures transfers, not certificate handling.
		// A server name keys the session cache (without one Go keys it by
		// address and port, and no data connection would resume).
		host, _, _ := net.SplitHostPort(*addr)
		cfg.tlsConfig = &tls.Config{InsecureSkipVerify: true, ServerName: host, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
		if *tls12 {
			cfg.tlsConfig.MaxVersion = tls.VersionTLS12
		}
	}
	var err error
	switch *op {
	case "retr":
		err = transfers(cfg, *label, *n, func(c *client) (int64, error) { return c.retr(*remote) })
	case "stor":
		err = transfers(cfg, *label, *n, func(c *client) (int64, error) { return c.stor(*local, *remote) })
	case "login":
		err = logins(cfg, *label, *conc, *n)
	case "idle":
		err = idle(cfg, *label, *conc)
	default:
		err = fmt.Errorf("unknown -op %q", *op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ftpload:", err)
		os.Exit(1)
	}
}

// transfers runs n transfers over one session and prints each rate and the
// median.
func transfers(cfg *clientConfig, label string, n int, do func(*client) (int64, error)) error {
	c, err := cfg.dial()
	if err != nil {
		return err
	}
	defer c.quit()
	var rates []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		b, err := do(c)
		if err != nil {
			return err
		}
		el := time.Since(t0)
		rate := float64(b) / el.Seconds() / 1e6
		rates = append(rates, rate)
		fmt.Printf("%s run=%d bytes=%d seconds=%.3f rate=%.1f MB/s%s\n", label, i+1, b, el.Seconds(), rate, c.tlsNote)
	}
	slices.Sort(rates)
	fmt.Printf("%s median rate=%.1f MB/s\n", label, rates[len(rates)/2])
	return nil
}

// logins measures full sessions per second: connect, (TLS,) USER, PASS,
// QUIT.
func logins(cfg *clientConfig, label string, conc, per int) error {
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				c, err := cfg.dial()
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(1)
					continue
				}
				c.quit()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("%s logins=%d failed=%d seconds=%.2f rate=%.1f logins/s\n", label, ok.Load(), failed.Load(), el.Seconds(),
		float64(ok.Load())/el.Seconds())
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	return nil
}

// idle opens conc logged-in sessions, says "ready", and holds them until
// stdin is closed (the script samples the server's memory meanwhile).
func idle(cfg *clientConfig, label string, conc int) error {
	var cs []*client
	defer func() {
		for _, c := range cs {
			c.nc.Close()
		}
	}()
	for i := 0; i < conc; i++ {
		c, err := cfg.dial()
		if err != nil {
			return fmt.Errorf("session %d: %w", i+1, err)
		}
		cs = append(cs, c)
	}
	// Every session answers, so none was dropped while opening the rest.
	for i, c := range cs {
		if _, _, err := c.cmd(200, "NOOP"); err != nil {
			return fmt.Errorf("session %d after opening all: %w", i+1, err)
		}
	}
	fmt.Printf("%s idle=%d ready\n", label, len(cs))
	io.Copy(io.Discard, os.Stdin)
	return nil
}

type clientConfig struct {
	addr, user, pass string
	tls              bool
	tlsConfig        *tls.Config
}

type client struct {
	cfg     *clientConfig
	nc      net.Conn
	tp      *textproto.Conn
	host    string
	tlsNote string
}

func (cfg *clientConfig) dial() (*client, error) {
	nc, err := net.DialTimeout("tcp", cfg.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.addr)
	c := &client{cfg: cfg, nc: nc, tp: textproto.NewConn(nc), host: host}
	if _, _, err := c.tp.ReadResponse(220); err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if cfg.tls {
		if _, _, err := c.cmd(234, "AUTH TLS"); err != nil {
			nc.Close()
			return nil, err
		}
		tc := tls.Client(nc, cfg.tlsConfig)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, err
		}
		st := tc.ConnectionState()
		c.tlsNote = fmt.Sprintf(" tls=%s/%s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		c.nc, c.tp = tc, textproto.NewConn(tc)
	}
	if _, _, err := c.cmd(331, "USER %s", cfg.user); err != nil {
		c.nc.Close()
		return nil, err
	}
	if _, _, err := c.cmd(230, "PASS %s", cfg.pass); err != nil {
		c.nc.Close()
		return nil, err
	}
	if cfg.tls {
		if _, _, err := c.cmd(200, "PBSZ 0"); err != nil {
			return nil, err
		}
		if _, _, err := c.cmd(200, "PROT P"); err != nil {
			return nil, err
		}
	}
	if _, _, err := c.cmd(200, "TYPE I"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) cmd(expect int, format string, a ...any) (int, string, error) {
	if err := c.tp.PrintfLine(format, a...); err != nil {
		return 0, "", err
	}
	code, msg, err := c.tp.ReadResponse(expect)
	if err != nil {
		return code, msg, fmt.Errorf("%s: %w", strings.Fields(format)[0], err)
	}
	return code, msg, nil
}

func (c *client) quit() {
	c.cmd(221, "QUIT")
	c.nc.Close()
}

// data opens an EPSV data connection (RFC 2428 3), with TLS under PROT P.
func (c *client) data() (net.Conn, error) {
	_, msg, err := c.cmd(229, "EPSV")
	if err != nil {
		return nil, err
	}
	i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	if i < 0 || j < i {
		return nil, fmt.Errorf("EPSV reply %q", msg)
	}
	port, err := strconv.Atoi(msg[i+4 : j])
	if err != nil {
		return nil, fmt.Errorf("EPSV reply %q", msg)
	}
	nc, err := net.DialTimeout("tcp", net.JoinHostPort(c.host, strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		return nil, err
	}
	if c.cfg.tls {
		return tls.Client(nc, c.cfg.tlsConfig), nil
	}
	return nc, nil
}

// begin sends a transfer command and waits for its 150 while the TLS
// handshake of the data connection runs (a server may handshake before or
// after its 150).
func (c *client) begin(dc net.Conn, format string, a ...any) error {
	if err := c.tp.PrintfLine(format, a...); err != nil {
		return err
	}
	hs := make(chan error, 1)
	if tc, ok := dc.(*tls.Conn); ok {
		go func() { hs <- tc.Handshake() }()
	} else {
		hs <- nil
	}
	_, _, err := c.tp.ReadResponse(150)
	if err != nil {
		dc.Close()
		<-hs
		return err
	}
	return <-hs
}

func (c *client) retr(name string) (int64, error) {
	dc, err := c.data()
	if err != nil {
		return 0, err
	}
	defer dc.Close()
	if err := c.begin(dc, "RETR %s", name); err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{dc}, buf)
	if err != nil {
		return n, err
	}
	dc.Close()
	_, _, err = c.tp.ReadResponse(226)
	return n, err
}

func (c *client) stor(local, name string) (int64, error) {
	f, err := os.Open(local)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dc, err := c.data()
	if err != nil {
		return 0, err
	}
	defer dc.Close()
	if err := c.begin(dc, "STOR %s", name); err != nil {
		return 0, err
	}
	var n int64
	if tc, ok := dc.(*tls.Conn); ok {
		n, err = io.CopyBuffer(tc, bufio.NewReaderSize(f, 1<<20), make([]byte, 1<<20))
	} else {
		n, err = io.Copy(dc, f) // sendfile
	}
	if err != nil {
		return n, err
	}
	if err := dc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return n, err
	}
	// The reply comes when the server has the file: for Posta, fsynced.
	_, _, err = c.tp.ReadResponse(226)
	return n, err
}
