package ftpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"posta/internal/files"
)

// transfer is one data transfer running on its own goroutine, so the
// session goroutine keeps reading the control connection and can serve
// ABOR, STAT and QUIT meanwhile (RFC 959 4.1.3, STYLE.md 1).
type transfer struct {
	verb, path string
	size       int64 // -1 when unknown
	start      time.Time
	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{} // closed after the final reply is written
	aborted    atomic.Bool
	progress   atomic.Int64
	upload     *files.Upload // progress of uploads comes from here

	mu      sync.Mutex
	closers []io.Closer // data connection and passive listener: closed by abort
	closed  bool
}

// track registers something abort must close; false if already aborted.
func (x *transfer) track(c io.Closer) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		c.Close()
		return false
	}
	x.closers = append(x.closers, c)
	return true
}

// abort stops the transfer: its connections close under it, so a blocked
// sendfile, splice, accept or handshake returns.
func (x *transfer) abort() {
	x.aborted.Store(true)
	x.cancel()
	x.release()
}

func (x *transfer) release() {
	x.mu.Lock()
	cs := x.closers
	x.closers, x.closed = nil, true
	x.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (x *transfer) moved() int64 {
	if x.upload != nil {
		return x.upload.Written()
	}
	return x.progress.Load()
}

func (ss *session) currentTransfer() *transfer {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.xfer
}

// waitTransfer returns once no transfer runs (its final reply is out).
func (ss *session) waitTransfer() {
	if x := ss.currentTransfer(); x != nil {
		<-x.done
	}
}

func (ss *session) abortTransfer() {
	if x := ss.currentTransfer(); x != nil {
		x.abort()
	}
}

// job describes a transfer for startJob.
type job struct {
	verb, path string
	size       int64
	opening    string // text of the 150 reply
	upload     *files.Upload
	// send moves the data over the open data connection.
	send func(x *transfer, dc dataConn) error
	// finish runs after the data connection is closed, with send's error;
	// what it returns is reported (uploads commit or abort here). nil: none.
	finish func(err error) error
	okText string
}

// dataReady checks, before a transfer command touches any file, that a
// data connection was set up and that its protection level is acceptable
// (RFC 4217 10.2: checked at the transfer command, 521).
func (ss *session) dataReady() error {
	if ss.pasv == nil && !ss.active.IsValid() {
		return errNoDataConn
	}
	if !ss.protP && ss.s.o.TLSData.requires(ss.ip) {
		return errTLSData
	}
	return nil
}

// startJob writes 150 (RFC 959 4.2: about to open the data connection) and
// runs the transfer on its own goroutine, which writes the final reply.
func (ss *session) startJob(j job) (*reply, error) {
	d, err := ss.takeData()
	if err != nil {
		if j.finish != nil {
			j.finish(err)
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(ss.ctx)
	x := &transfer{verb: j.verb, path: j.path, size: j.size, start: time.Now(), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), upload: j.upload}
	protect := ss.protP
	ss.mu.Lock()
	ss.xfer = x
	ss.mu.Unlock()
	if err := ss.writeReply(ok(150, j.opening)); err != nil {
		ss.finishJob(x, j, d, err)
		return nil, errHungUp
	}
	ss.xwg.Add(1)
	go func() {
		defer ss.xwg.Done()
		dc, err := ss.openData(x, d, protect)
		if err == nil {
			err = j.send(x, dc)
			// After an upload the client may be gone already; what was read
			// is complete. After a download a failed close may mean the end
			// of the data did not arrive, so it fails the transfer.
			if cerr := dc.close(); err == nil && j.upload == nil {
				err = cerr
			}
		}
		ss.finishJob(x, j, d, err)
	}()
	return nil, nil
}

// finishJob reports a transfer's outcome in its one final reply.
func (ss *session) finishJob(x *transfer, j job, d dataSetup, err error) {
	defer close(x.done)
	if d.pasv != nil {
		d.pasv.Close()
	}
	// RFC 959 4.1.3: ABOR's transfer ends with 426. An aborted upload is
	// never committed even when its read ended cleanly: the shutdown that
	// wakes a blocked read (abort) looks just like the client's EOF.
	if x.aborted.Load() && (err != nil || j.upload != nil) {
		err = errAborted
	}
	if j.finish != nil {
		err = j.finish(err)
	}
	var r *reply
	internal := false
	if err == nil {
		r = ok(226, j.okText) // RFC 959 4.2: closing data connection, action successful
	} else {
		r, internal = replyFor(err)
		if r.code == 421 {
			r = ok(426, "Transfer aborted: server shutting down")
		}
	}
	moved := x.moved()
	if j.upload != nil {
		ss.bytesIn.Add(moved)
	} else {
		ss.bytes.Add(moved)
	}
	ss.transfers.Add(1)
	ss.lastXferEnd.Store(time.Now().UnixNano())
	// Read before the reply: once it is out, the session may move on.
	attrs := []any{"conn", ss.id, "ip", ss.ip.String(), "account", ss.account, "cmd", j.verb, "path", j.path,
		"bytes", moved, "duration", time.Since(x.start).Round(time.Millisecond), "code", r.code}
	// The transfer stops being current before its final reply goes out,
	// under the reply lock: a STAT or ABOR read after the client saw this
	// reply finds no transfer, and one read before it is answered after it.
	ss.wmu.Lock()
	ss.mu.Lock()
	ss.xfer = nil
	ctl := ss.ctl
	ss.mu.Unlock()
	ctl.SetWriteDeadline(time.Now().Add(ss.s.lim.IdleTimeout))
	ctl.Write(replyLines(r.code, r.lines))
	ss.wmu.Unlock()
	switch {
	case internal:
		ss.s.log.Error("ftp transfer failed", append(attrs, "err", err.Error())...)
	case err != nil:
		ss.s.log.Info("ftp transfer failed", append(attrs, "err", err.Error())...)
	default:
		ss.s.log.Info("ftp transfer", attrs...)
	}
	x.release()
	x.cancel()
	ss.mu.Lock()
	var bye *reply
	if ss.pending != nil && ss.inRead && !ss.hangingUp {
		// Shutdown asked for a goodbye while we were busy, and the session
		// goroutine is waiting for a command: say it now.
		bye = ss.pending
		ss.hangingUp = true
	}
	ctl = ss.ctl
	ss.mu.Unlock()
	if bye != nil {
		ss.finishHangup(ctl, bye)
	}
}

// deadlineConn sets the data timeout before every read and write, for the
// buffered (TLS or TYPE A) paths.
type deadlineConn struct {
	c net.Conn
	d time.Duration
	x *transfer
}

func (w deadlineConn) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.d))
	n, err := w.c.Write(p)
	w.x.progress.Add(int64(n))
	return n, err
}

func (w deadlineConn) Read(p []byte) (int, error) {
	w.c.SetReadDeadline(time.Now().Add(w.d))
	return w.c.Read(p)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// sendFrom copies src to the data connection. A plain connection and an
// *os.File in TYPE I go to sendfile(2) (ARCHITECTURE.md: the zero-copy
// path; sendfile_linux.go); anything else is copied through a buffer.
func (ss *session) sendFrom(x *transfer, dc dataConn, src io.Reader) error {
	if f, ok := src.(*os.File); ok && !dc.tls {
		return sendFile(dc.raw, f, ss.s.lim.DataTimeout, func(n int64) { x.progress.Add(n) })
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, err := io.CopyBuffer(writerOnly{deadlineConn{dc.conn, ss.s.lim.DataTimeout, x}}, src, *bp)
	return err
}

// receiveInto copies the data connection into u until the client closes it.
// Plain TYPE I hands the *net.TCPConn to the file (Linux splices), a chunk
// per DataTimeout; TLS and TYPE A go through a reader.
func (ss *session) receiveInto(x *transfer, dc dataConn, u *files.Upload, ascii bool) error {
	err := ss.receive(x, dc, u, ascii)
	if errors.Is(err, files.ErrQuota) && !x.aborted.Load() {
		// The client is still sending. Closing now would reset the
		// connection under it, and a client that only reads the control
		// connection after sending (curl) would report a reset instead of
		// the 552. Read and drop up to Limits.MaxDrain so it can finish.
		dc.conn.SetReadDeadline(time.Now().Add(ss.s.lim.DataTimeout))
		io.Copy(io.Discard, io.LimitReader(dc.conn, ss.s.lim.MaxDrain))
	}
	return err
}

func (ss *session) receive(x *transfer, dc dataConn, u *files.Upload, ascii bool) error {
	if !dc.tls && !ascii {
		for {
			dc.raw.SetReadDeadline(time.Now().Add(ss.s.lim.DataTimeout))
			lr := &io.LimitedReader{R: dc.raw, N: copyChunk}
			if _, err := u.ReadFrom(lr); err != nil {
				return err
			}
			if lr.N > 0 {
				return nil // EOF: the client closed the data connection
			}
		}
	}
	var src io.Reader = deadlineConn{dc.conn, ss.s.lim.DataTimeout, x}
	if ascii {
		src = newFromWire(src)
	}
	_, err := u.ReadFrom(src)
	return err
}

func typeName(t dataType) string {
	if t == typeImage {
		return "BINARY"
	}
	return "ASCII"
}

// cmdRETR: RFC 959 4.1.3, with REST (RFC 3659 5).
func (ss *session) cmdRETR(arg string) (*reply, error) {
	if err := ss.dataReady(); err != nil {
		return nil, err
	}
	p := files.Join(ss.cwd, arg)
	f, err := ss.tree.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size, rest, ascii := st.Size(), ss.cmdRest, ss.typ == typeASCII
	var src io.Reader = f
	if ascii {
		if rest > 0 && size > ss.s.lim.MaxASCIIScan {
			f.Close()
			return nil, refuse(554, "REST in TYPE A is not available for files this large; use TYPE I")
		}
		w := newToWire(f)
		if rest > 0 {
			if n, err := io.CopyN(io.Discard, w, rest); err != nil || n != rest {
				f.Close()
				return nil, files.ErrBadOffset
			}
		}
		src, size = w, -1
	} else if rest > 0 {
		if rest > size {
			f.Close()
			return nil, files.ErrBadOffset // RFC 3659 5.3: reported at the transfer
		}
		if _, err := f.Seek(rest, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	opening := fmt.Sprintf("Opening %s mode data connection for %s", typeName(ss.typ), p)
	if size >= 0 {
		opening += fmt.Sprintf(" (%d bytes)", size-rest)
	}
	return ss.startJob(job{
		verb: "RETR", path: p, size: size, opening: opening, okText: "Transfer complete",
		send:   func(x *transfer, dc dataConn) error { return ss.sendFrom(x, dc, src) },
		finish: func(err error) error { f.Close(); return err },
	})
}

// store runs STOR, APPE and STOU: the upload is created (and refused, if
// it must be) before the 150, and committed (fsync, rename, fsync of the
// directory) before the 226: an acknowledged upload is durable.
func (ss *session) store(verb, p string, mode files.WriteMode) (*reply, error) {
	if err := ss.dataReady(); err != nil {
		return nil, err
	}
	ascii := ss.typ == typeASCII
	offset := int64(0)
	if rest := ss.cmdRest; rest > 0 && mode != files.Unique {
		// RFC 3659 5.3: STOR (and APPE, identically) after REST writes at the
		// marker; in place, not atomic.
		mode, offset = files.Resume, rest
		if ascii {
			var err error
			if offset, err = ss.asciiRestOffset(p, rest); err != nil {
				return nil, err
			}
		}
	}
	u, err := ss.tree.Create(p, mode, offset)
	if err != nil {
		return nil, err
	}
	opening := fmt.Sprintf("Opening %s mode data connection for %s", typeName(ss.typ), u.Name())
	okText := "Transfer complete"
	if mode == files.Unique {
		// RFC 1123 4.1.2.9: STOU's reply names the file.
		opening, okText = "FILE: "+u.Name(), "Transfer complete: "+u.Name()
	}
	return ss.startJob(job{
		verb: verb, path: u.Name(), size: -1, opening: opening, upload: u, okText: okText,
		send: func(x *transfer, dc dataConn) error { return ss.receiveInto(x, dc, u, ascii) },
		finish: func(err error) error {
			if err != nil {
				u.Abort()
				return err
			}
			return u.Commit()
		},
	})
}

// asciiRestOffset turns a TYPE A REST marker (octets of the wire form, RFC
// 3659 5.1) into an offset in the stored file.
func (ss *session) asciiRestOffset(p string, wire int64) (int64, error) {
	f, err := ss.tree.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > ss.s.lim.MaxASCIIScan {
		return 0, refuse(554, "REST in TYPE A is not available for files this large; use TYPE I")
	}
	disk, ok, err := diskOffset(f, wire)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, files.ErrBadOffset
	}
	return disk, nil
}

func (ss *session) cmdSTOR(arg string) (*reply, error) {
	return ss.store("STOR", files.Join(ss.cwd, arg), files.Replace)
}

func (ss *session) cmdAPPE(arg string) (*reply, error) {
	return ss.store("APPE", files.Join(ss.cwd, arg), files.Append)
}

// cmdSTOU: RFC 959 4.1.3. The optional argument (an extension many clients
// use) is the name to start from.
func (ss *session) cmdSTOU(arg string) (*reply, error) {
	name := arg
	if name == "" {
		name = "stou-" + time.Now().UTC().Format("20060102-150405")
	}
	return ss.store("STOU", files.Join(ss.cwd, name), files.Unique)
}

// cmdALLO: RFC 959 4.1.3; no allocation is needed, but a size that cannot
// fit the quota is refused at once (552).
func (ss *session) cmdALLO(arg string) (*reply, error) {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return nil, errArg // "ALLO  ": an argument of spaces only
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 {
		return nil, errArg
	}
	if len(f) != 1 && !(len(f) == 3 && strings.EqualFold(f[1], "R")) {
		return nil, errArg
	}
	if err := ss.tree.CheckSpace(n); err != nil && !errors.Is(err, files.ErrReadOnly) {
		return nil, err
	}
	return ok(202, "No storage allocation necessary"), nil
}

// cmdREST: RFC 3659 5.3 (STREAM mode): a decimal octet count; errors in range
// come at the transfer.
func (ss *session) cmdREST(arg string) (*reply, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
	if err != nil || n < 0 {
		return nil, errArg
	}
	ss.restMark = n
	return ok(350, fmt.Sprintf("Restarting at %d. Send STOR or RETR", n)), nil
}

// cmdABOR: RFC 959 4.1.3: the transfer's command gets 426, then ABOR 226;
// with nothing to abort, 225 (data connection open, no transfer) as
// RFC 959 4.2 lists.
func (ss *session) cmdABOR(string) (*reply, error) {
	x := ss.currentTransfer()
	if x == nil {
		ss.closePassive()
		return ok(225, "No transfer to abort"), nil
	}
	x.abort()
	<-x.done
	return ok(226, "ABOR command successful"), nil
}

// transferStatus is STAT's answer during a transfer (RFC 959 4.1.3).
func (x *transfer) status() *reply {
	s := fmt.Sprintf("%s %s: %d bytes", x.verb, x.path, x.moved())
	if x.size >= 0 {
		s += fmt.Sprintf(" of %d", x.size)
	}
	return &reply{code: 213, lines: []string{"Status of transfer:", s + " transferred", "End of status"}}
}
