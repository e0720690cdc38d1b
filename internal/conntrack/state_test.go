package conntrack

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestState: Goodbye wakes an idle read (ErrStopping), a Goodbye that came
// first stops the next read and handshake before they start, and a read
// that times out on its own is not mistaken for a goodbye.
func TestState(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	st := NewState(server)
	buf := make([]byte, 1)
	read := func() error { _, err := server.Read(buf); return err }

	if err := st.WaitRead(20*time.Millisecond, read); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("quiet client: %v, want the deadline", err)
	}
	if st.Idle() || st.Stopping() {
		t.Fatal("idle or stopping after the read")
	}

	done := make(chan error, 1)
	go func() { done <- st.WaitRead(time.Minute, read) }()
	deadline := time.Now().Add(5 * time.Second)
	for !st.Idle() {
		if time.Now().After(deadline) {
			t.Fatal("the read never became idle")
		}
		time.Sleep(time.Millisecond)
	}
	st.Goodbye()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopping) {
			t.Fatalf("woken read: %v, want ErrStopping", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Goodbye did not wake the idle read")
	}
	if !st.Stopping() {
		t.Fatal("not stopping after Goodbye")
	}
	called := false
	if err := st.WaitRead(time.Minute, func() error { called = true; return nil }); !errors.Is(err, ErrStopping) || called {
		t.Fatalf("read after Goodbye: %v (ran: %v), want ErrStopping without reading", err, called)
	}
	if err := st.Handshake(func() error { called = true; return nil }); !errors.Is(err, ErrStopping) || called {
		t.Fatalf("handshake after Goodbye: %v (ran: %v)", err, called)
	}
}

// TestStateHandshakeAborted: a Goodbye during a handshake moves the read
// deadline into the past, so the handshake's read fails at once.
func TestStateHandshakeAborted(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	st := NewState(server)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- st.Handshake(func() error {
			close(started)
			_, err := server.Read(make([]byte, 1))
			return err
		})
	}()
	<-started
	time.Sleep(10 * time.Millisecond) // let the read block
	st.Goodbye()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("handshake: %v, want its read cut by the deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Goodbye did not abort the handshake")
	}
}
