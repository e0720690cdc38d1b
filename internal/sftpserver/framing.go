package sftpserver

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// maxPacket bounds one SFTP packet's length field. pkg/sftp refuses longer
// ones too (256 KiB); the framer's own bound keeps its arithmetic safe
// whatever pkg/sftp does.
const maxPacket = 256<<10 + 1024

var errLongPacket = errors.New("sftpserver: packet too long")

// framer counts whole SFTP packets in a byte stream, however the stream is
// cut into reads or writes: draft-ietf-secsh-filexfer-02 3, every packet is
// a uint32 length, then that many bytes (type and payload).
type framer struct {
	hdr    [4]byte
	hdrN   int    // header bytes seen of the current packet
	remain uint32 // body bytes still to come
	inBody bool
}

// feed consumes b and returns how many packets it completed.
func (f *framer) feed(b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		if !f.inBody {
			n := copy(f.hdr[f.hdrN:], b)
			f.hdrN += n
			b = b[n:]
			if f.hdrN < 4 {
				break
			}
			f.hdrN = 0
			f.remain = binary.BigEndian.Uint32(f.hdr[:])
			if f.remain > maxPacket {
				return done, errLongPacket
			}
			f.inBody = true
		}
		n := f.remain
		if uint64(len(b)) < uint64(n) {
			n = uint32(len(b))
		}
		f.remain -= n
		b = b[n:]
		if f.remain == 0 {
			f.inBody = false
			done++
		}
	}
	return done, nil
}

// stream is the SFTP subsystem's byte stream as pkg/sftp sees it: the SSH
// channel, with the requests read and the responses written counted, so the
// connection knows when it is idle (every request answered; draft-02 7:
// exactly one response is returned for each request).
//
// Responses go out through a flusher goroutine that writes whatever has
// accumulated in one channel write. pkg/sftp writes each response as a
// header and a payload; written one by one, a 32 KiB SSH_FXP_DATA becomes
// two SSH packets (32768 bytes and 13), doubling the packets the client
// must decrypt. Coalesced, the packets are full, as sshd's are (it reads
// sftp-server's output from a pipe the same way). A lone response goes out
// at once: nothing waits for more to arrive.
type stream struct {
	ch      ssh.Channel
	in, out framer
	c       *conn
	// requests read and responses written by this stream
	nreq, nresp atomic.Int64

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // responses waiting for the flusher
	spare   []byte
	werr    error // the flusher's write failed: every later Write fails
	closing bool
	eof     atomic.Bool   // the client ended its side: a normal end
	done    chan struct{} // closed when the flusher has returned
}

// maxBuffered bounds the responses waiting to be written: past it Write
// blocks (back-pressure from a client that does not read).
const maxBuffered = 256 << 10

func newStream(ch ssh.Channel, c *conn) *stream {
	s := &stream{ch: ch, c: c, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.flusher()
	return s
}

// unanswered is how many requests got no response (the connection ended
// first); after pkg/sftp's Serve returns the connection forgets them.
func (s *stream) unanswered() int { return int(max(0, s.nreq.Load()-s.nresp.Load())) }

// Read is called by pkg/sftp's one reading goroutine only.
func (s *stream) Read(p []byte) (int, error) {
	n, err := s.ch.Read(p)
	if n > 0 {
		k, ferr := s.in.feed(p[:n])
		if k > 0 {
			s.nreq.Add(int64(k))
			s.c.requests(k)
		}
		if ferr != nil {
			s.ch.Close()
			return n, ferr
		}
	}
	if err == io.EOF {
		s.eof.Store(true)
	}
	return n, err
}

// Write queues p for the flusher. pkg/sftp serialises its writes.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) >= maxBuffered && s.werr == nil && !s.closing {
		s.cond.Wait()
	}
	if s.werr != nil {
		return 0, s.werr
	}
	if s.closing {
		return 0, io.ErrClosedPipe
	}
	s.buf = append(s.buf, p...)
	s.cond.Broadcast()
	return len(p), nil
}

func (s *stream) flusher() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.buf) == 0 && !s.closing && s.werr == nil {
			s.cond.Wait()
		}
		if len(s.buf) == 0 || s.werr != nil {
			s.mu.Unlock()
			return
		}
		data := s.buf
		s.buf, s.spare = s.spare[:0], nil
		s.mu.Unlock()

		n, err := s.ch.Write(data)
		if n > 0 {
			// Counted once on the wire: a graceful close after the last
			// response loses nothing.
			k, ferr := s.out.feed(data[:n])
			if k > 0 {
				s.nresp.Add(int64(k))
				s.c.responses(k)
			}
			if ferr != nil && err == nil {
				err = ferr
			}
		}
		s.mu.Lock()
		if err != nil {
			s.werr = err
		}
		if cap(data) <= 2*maxBuffered {
			s.spare = data[:0]
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// Close writes what is queued, then the exit status, then closes the
// channel (RFC 4254 6.10: "exit-status" before the close; OpenSSH's scp
// fails without it). pkg/sftp calls it when the session ends, and to stop
// its reader on a protocol error. A flusher stuck on a client that does not
// read is released when the connection is cut.
func (s *stream) Close() error {
	s.mu.Lock()
	already := s.closing
	s.closing = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	if already {
		return nil
	}
	code := uint32(1)
	if s.eof.Load() {
		code = 0
	}
	s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
	return s.ch.Close()
}
