//go:build linux

package ftpserver

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// sendFile copies the rest of f to a plain data connection with blocking
// sendfile(2) calls on a thread of its own.
//
// Go's own path (io.Copy of an *os.File to a *net.TCPConn) uses sendfile
// too, but on a non-blocking socket: each time the send buffer fills, the
// goroutine parks in the netpoller and is woken when it drains, hundreds of
// times per gigabyte over loopback, which cost ~10% against vsftpd's
// blocking sendfile (bench/ftp-vs-vsftpd.sh). Here the socket is blocking
// for the length of the transfer, so the kernel waits for buffer space
// itself. The thread is held for the transfer, as vsftpd holds a process.
//
// DataTimeout becomes SO_SNDTIMEO: a send that makes no progress for that
// long fails (the same "no progress" rule the chunked path applies). An
// abort shuts the socket down (dataConn.shutdown), which wakes a blocked
// sendfile with EPIPE.
func sendFile(dst *net.TCPConn, f *os.File, timeout time.Duration, progress func(int64)) error {
	drc, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	frc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Bulk data: let the kernel fill segments (Go turns Nagle off on every
	// TCP connection; sendfile's partial tails then go out as small ones).
	dst.SetNoDelay(false)
	var serr error
	werr := drc.Write(func(dfd uintptr) bool {
		fd := int(dfd)
		if err := syscall.SetNonblock(fd, false); err != nil {
			serr = err
			return true
		}
		defer syscall.SetNonblock(fd, true)
		tv := syscall.NsecToTimeval(timeout.Nanoseconds())
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv); err != nil {
			serr = err
			return true
		}
		cerr := frc.Control(func(sfd uintptr) {
			for {
				// A nil offset sends from the file position and moves it.
				// copyChunk a call keeps STAT's progress current.
				n, err := syscall.Sendfile(fd, int(sfd), nil, copyChunk)
				if n > 0 {
					progress(int64(n))
				}
				switch {
				case errors.Is(err, syscall.EINTR):
					continue
				case errors.Is(err, syscall.EAGAIN):
					serr = os.ErrDeadlineExceeded // SO_SNDTIMEO ran out
					return
				case err != nil:
					serr = os.NewSyscallError("sendfile", err)
					return
				case n == 0:
					return // end of file
				}
			}
		})
		if serr == nil {
			serr = cerr
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return serr
}
