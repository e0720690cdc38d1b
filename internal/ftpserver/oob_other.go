//go:build !unix

package ftpserver

import "net"

// setOOBInline: urgent data is only handled on Unix (see oob_unix.go).
func setOOBInline(net.Conn) {}
