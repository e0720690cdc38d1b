package sftpserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/guard"
)

// closed waits until the SSH connection ends (the server closed it).
func closed(t *testing.T, c *ssh.Client) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not close the connection")
	}
}

func sftpSession(t *testing.T, e *env, user, pw string) (*ssh.Client, *sftp.Client) {
	t.Helper()
	c, err := e.dialSSH(t, user, ssh.Password(pw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return c, sc
}

// Shutdown closes an idle session at once, lets a transfer in flight
// finish (its CLOSE is answered and the file committed), then closes it.
func TestShutdownIdleNowBusyAfterTransfer(t *testing.T) {
	e := startEnv(t)
	idleSSH, idle := sftpSession(t, e, alice, alicePW)
	if _, err := idle.Getwd(); err != nil {
		t.Fatal(err)
	}
	busySSH, busy := sftpSession(t, e, bob, bobPW)
	f, err := busy.Create("/upload")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("first half ")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.s.Shutdown(ctx)
	}()
	closed(t, idleSSH)
	// New connections are refused once shutdown began.
	waitFor(t, func() bool {
		c, err := e.dialSSH(t, alice, ssh.Password(alicePW))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) with a transfer in flight", err)
	default:
	}
	if _, err := f.Write([]byte("second half")); err != nil {
		t.Fatalf("write during shutdown: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close during shutdown: %v", err)
	}
	closed(t, busySSH)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if b, err := os.ReadFile(e.treeFile(bob, "upload")); err != nil || string(b) != "first half second half" {
		t.Fatalf("upload after shutdown: %q, %v", b, err)
	}
}

// When the grace period ends, a transfer still open is cut and its
// upload discarded.
func TestShutdownCutsAtDeadline(t *testing.T) {
	e := startEnv(t)
	busySSH, busy := sftpSession(t, e, bob, bobPW)
	f, err := busy.Create("/never")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v; want the deadline error", err)
	}
	closed(t, busySSH)
	if _, err := os.Stat(e.treeFile(bob, "never")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cut upload left a file: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Limits = DefaultLimits(); o.Limits.IdleTimeout = 300 * time.Millisecond })
	c, sc := sftpSession(t, e, alice, alicePW)
	if _, err := sc.Getwd(); err != nil {
		t.Fatal(err)
	}
	closed(t, c)
}

// A client that connects and never finishes logging in is dropped at
// LoginTimeout.
func TestLoginTimeout(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Limits = DefaultLimits(); o.Limits.LoginTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || line != ServerVersion+"\r\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
}

// The guard's per-IP cap refuses a connection at accept: it is closed
// before the version exchange.
func TestConnectionCapPerIP(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Guard = guard.New(guard.Limits{MaxConnsPerIP: 2}) })
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != ServerVersion+"\r\n" {
			t.Fatalf("connection %d: %q, %v", i, line, err)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("third connection got %q, %v; want it closed at once", b, err)
	}
	held[0].Close()
	// The slot is given back when the server sees the close.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line == ServerVersion+"\r\n"
	})
}
