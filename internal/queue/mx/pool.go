package mx

import (
	"context"
	"errors"
	"sync"
	"time"
)

var errClosed = errors.New("mx: transport closed")

// domainConns is what the pool knows of one destination domain.
type domainConns struct {
	open int        // connections open to the domain: busy and idle, counted against the limit
	idle []*session // idle sessions, the most recently used last
	// changed is closed (and set to nil) when a slot frees up or a
	// session turns idle; nil while nobody waits.
	changed chan struct{}
}

func (d *domainConns) notify() {
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// acquire returns an idle session for domain, or nil with a slot reserved
// for a new connection; it waits while the domain is at its limit. The
// caller gives the slot back with release or hands a session to put.
func (t *Transport) acquire(ctx context.Context, domain string) (*session, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, errClosed
		}
		d := t.domains[domain]
		if d == nil {
			d = &domainConns{}
			t.domains[domain] = d
		}
		if n := len(d.idle); n > 0 {
			s := d.idle[n-1]
			d.idle[n-1] = nil
			d.idle = d.idle[:n-1]
			t.mu.Unlock()
			return s, nil
		}
		if d.open < t.maxConns {
			d.open++
			t.mu.Unlock()
			return nil, nil
		}
		if d.changed == nil {
			d.changed = make(chan struct{})
		}
		ch := d.changed
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// release gives back a slot whose connection is closed (or never opened).
func (t *Transport) release(domain string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.domains[domain]
	if d == nil {
		return
	}
	d.open--
	d.notify()
	if d.open <= 0 && len(d.idle) == 0 {
		delete(t.domains, domain) // the map stays as small as the traffic
	}
}

// put keeps s for reuse; false means the caller must close it and release
// the slot (reuse off, or the transport is closing).
func (t *Transport) put(domain string, s *session) bool {
	if t.idleTime <= 0 || s.uses >= maxMessagesPerConn {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.domains[domain]
	if t.closed || d == nil {
		return false
	}
	s.idleSince = time.Now()
	d.idle = append(d.idle, s)
	d.notify()
	return true
}

// sweep takes out the sessions idle for longer than IdleTime (all of them
// when all is set); the caller closes them, without the lock held.
func (t *Transport) sweep(now time.Time, all bool) []*session {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*session
	for name, d := range t.domains {
		kept := d.idle[:0]
		for _, s := range d.idle {
			if all || now.Sub(s.idleSince) >= t.idleTime {
				out = append(out, s)
				d.open--
				continue
			}
			kept = append(kept, s)
		}
		clear(d.idle[len(kept):])
		d.idle = kept
		d.notify()
		if d.open <= 0 && len(d.idle) == 0 {
			delete(t.domains, name)
		}
	}
	return out
}

// janitor closes idle sessions once their IdleTime is up.
func (t *Transport) janitor(every time.Duration) {
	defer close(t.janitorDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			quitAll(t.sweep(now, false))
		}
	}
}

// Close closes the idle connections and stops the janitor. Sends running
// now finish; their connections are closed instead of kept. Later Sends
// fail temporarily.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, d := range t.domains {
		d.notify() // waiters in acquire see closed
	}
	t.mu.Unlock()
	if t.stop != nil {
		close(t.stop)
		<-t.janitorDone
	}
	quitAll(t.sweep(time.Now(), true))
	return nil
}

// quitAll says QUIT on each session at once, so that one dead peer does not
// hold up the others.
func quitAll(ss []*session) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { s.quit(quitTimeout) })
	}
	wg.Wait()
}
