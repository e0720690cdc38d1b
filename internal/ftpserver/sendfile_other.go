//go:build !linux

package ftpserver

import (
	"io"
	"net"
	"os"
	"time"
)

// sendFile hands f and the socket to io.Copy (sendfile where the platform
// has it), a chunk per DataTimeout; Linux has a faster path
// (sendfile_linux.go).
func sendFile(dst *net.TCPConn, f *os.File, timeout time.Duration, progress func(int64)) error {
	for {
		dst.SetWriteDeadline(time.Now().Add(timeout))
		n, err := io.Copy(dst, &io.LimitedReader{R: f, N: copyChunk})
		progress(n)
		if err != nil {
			return err
		}
		if n < copyChunk {
			return nil
		}
	}
}
