package conntrack

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoConn is a session that answers lines until goodbye, and records how
// it ended.
type echoConn struct {
	nc   net.Conn
	busy bool // ignores Goodbye, as a session mid-command would

	mu      sync.Mutex
	goodbye bool
	cut     bool
}

func (c *echoConn) Serve() {
	defer c.nc.Close()
	r := bufio.NewReader(c.nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		c.nc.Write([]byte("echo " + line))
	}
}

func (c *echoConn) Goodbye() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goodbye = true
	if !c.busy {
		c.nc.Write([]byte("bye\n"))
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *echoConn) Cut() {
	c.mu.Lock()
	c.cut = true
	c.mu.Unlock()
	c.nc.Close()
}

func start(t *testing.T, busy bool) (*Tracker, net.Addr, chan *echoConn, chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := New("test", nil)
	conns := make(chan *echoConn, 10)
	served := make(chan error, 1)
	go func() {
		served <- tr.Serve(l, func(nc net.Conn) Conn {
			c := &echoConn{nc: nc, busy: busy}
			conns <- c
			return c
		})
	}()
	return tr, l.Addr(), conns, served
}

func dial(t *testing.T, addr net.Addr) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc, bufio.NewReader(nc)
}

func TestShutdownSaysGoodbye(t *testing.T) {
	tr, addr, conns, served := start(t, false)
	nc, r := dial(t, addr)
	nc.Write([]byte("hi\n"))
	if line, _ := r.ReadString('\n'); line != "echo hi\n" {
		t.Fatalf("got %q", line)
	}
	c := <-conns
	if tr.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tr.Len())
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if line, _ := r.ReadString('\n'); line != "bye\n" {
		t.Fatalf("got %q, want bye", line)
	}
	if !c.goodbye || c.cut {
		t.Fatalf("goodbye=%v cut=%v, want a goodbye and no cut", c.goodbye, c.cut)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	if tr.Len() != 0 {
		t.Fatalf("Len = %d after Shutdown", tr.Len())
	}
	// A listener handed over after shutdown is closed at once.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := tr.Serve(l, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

func TestShutdownCutsBusySessionsAtDeadline(t *testing.T) {
	tr, addr, conns, served := start(t, true)
	nc, r := dial(t, addr)
	nc.Write([]byte("hi\n"))
	r.ReadString('\n')
	c := <-conns
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if !c.goodbye || !c.cut {
		t.Fatalf("goodbye=%v cut=%v, want both", c.goodbye, c.cut)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after the cut")
	}
	<-served
}

func TestClose(t *testing.T) {
	tr, addr, conns, served := start(t, true)
	_, r := dial(t, addr)
	c := <-conns
	tr.Close()
	if !c.cut || c.goodbye {
		t.Fatalf("goodbye=%v cut=%v, want a cut only", c.goodbye, c.cut)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after Close")
	}
	select {
	case <-tr.Stopping():
	default:
		t.Fatal("Stopping not done after Close")
	}
	<-served
}

// TestOnCut: the hook runs before the first Cut when the deadline passes,
// and not at all when every session ends in time.
func TestOnCut(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		tr, addr, conns, served := start(t, true)
		dial(t, addr)
		c := <-conns
		calls, cutFirst := 0, false
		tr.OnCut(func() {
			calls++
			c.mu.Lock()
			cutFirst = c.cut
			c.mu.Unlock()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := tr.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Shutdown = %v, want deadline exceeded", err)
		}
		if calls != 1 || cutFirst {
			t.Fatalf("hook ran %d times, after a cut: %v; want once, before", calls, cutFirst)
		}
		if !c.cut {
			t.Fatal("session not cut")
		}
		<-served
	})
	t.Run("in time", func(t *testing.T) {
		tr, addr, _, served := start(t, false)
		_, r := dial(t, addr)
		calls := 0
		tr.OnCut(func() { calls++ })
		waitLen(t, tr, 1)
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if line, _ := r.ReadString('\n'); line != "bye\n" {
			t.Fatalf("got %q, want bye", line)
		}
		if calls != 0 {
			t.Fatalf("hook ran %d times, want none", calls)
		}
		<-served
	})
	t.Run("close", func(t *testing.T) {
		tr, addr, conns, served := start(t, true)
		dial(t, addr)
		c := <-conns
		calls := 0
		tr.OnCut(func() { calls++ })
		tr.Close()
		if calls != 1 || !c.cut {
			t.Fatalf("hook ran %d times, cut=%v; want once and a cut", calls, c.cut)
		}
		<-served
	})
}

// TestStoppingContext: cancelled when Shutdown begins, so context.AfterFunc
// can end a wait that only slows a client.
func TestStoppingContext(t *testing.T) {
	tr, addr, _, served := start(t, false)
	dial(t, addr)
	waitLen(t, tr, 1)
	ctx := tr.StoppingContext()
	if ctx.Err() != nil {
		t.Fatal("stopping before Shutdown")
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(woken) })
	defer stop()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFunc not run after Shutdown")
	}
	if ctx.Done() != tr.Stopping() {
		t.Fatal("Stopping is not the context's Done channel")
	}
	<-served
}

// waitLen waits until tr holds n connections.
func waitLen(t *testing.T, tr *Tracker, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tr.Len() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d, want %d", tr.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
