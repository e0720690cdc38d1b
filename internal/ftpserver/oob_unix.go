//go:build unix

package ftpserver

import (
	"net"
	"syscall"
)

// setOOBInline keeps TCP urgent data in the stream. RFC 959 4.1.3 has
// clients send ABOR (or the Telnet IP/Synch before it) as urgent data;
// without SO_OOBINLINE the kernel takes the urgent byte out of the stream,
// and a client that marks the whole "ABOR\r\n" urgent (Python's ftplib
// does) would lose its final LF, so the command would never end.
func setOOBInline(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_OOBINLINE, 1)
	})
}
