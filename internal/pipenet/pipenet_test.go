package pipenet

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestListener: bytes go both ways, the server sees loopback addresses, a
// half-close gives the server EOF after what was written, and Close ends
// Accept and Dial.
func TestListener(t *testing.T) {
	l := Listen(143)
	if a := l.Addr().String(); a != "127.0.0.1:143" {
		t.Fatalf("Addr %s", a)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- []byte(err.Error())
			return
		}
		if a := c.RemoteAddr().(*net.TCPAddr); !a.IP.IsLoopback() {
			got <- []byte("remote " + a.String())
			return
		}
		c.Write([]byte("hello\r\n"))
		b, _ := io.ReadAll(c) // ends at the half-close's EOF
		got <- b
	}()
	c, closeWrite, err := l.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	greeting := make([]byte, 7)
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "hello\r\n" {
		t.Fatalf("greeting %q %v", greeting, err)
	}
	c.Write([]byte("QUIT\r\n"))
	closeWrite()
	select {
	case b := <-got:
		if string(b) != "QUIT\r\n" {
			t.Fatalf("server read %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server never read EOF after the half-close")
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, _, err := l.Dial(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
}
