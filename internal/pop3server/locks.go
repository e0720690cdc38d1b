package pop3server

import (
	"sync"
	"time"
)

// MaildropLocks holds the maildrop lock of every account in a POP3 session
// and the time of each account's last login (for LOGIN-DELAY). One value
// must be shared by every POP3 listener of a process (110 and 995), so a
// session on one port sees a session on the other: pass the same value in
// Options.Locks to both servers.
//
// The lock is in memory: it keeps two POP3 sessions from working on one
// maildrop list at once (RFC 1939 4: the server acquires an exclusive lock
// on the maildrop). IMAP sessions are not excluded; they see POP3's
// deletions through the mail store's change feed.
type MaildropLocks struct {
	mu        sync.Mutex
	held      map[string]bool
	lastLogin map[string]time.Time
}

// NewMaildropLocks returns an empty registry.
func NewMaildropLocks() *MaildropLocks {
	return &MaildropLocks{held: map[string]bool{}, lastLogin: map[string]time.Time{}}
}

// maxLoginRecords bounds the LOGIN-DELAY record: past it, records older than
// the delay (which no longer matter) are dropped.
const maxLoginRecords = 10000

// acquire locks account's maildrop. With delay > 0 it also enforces
// LOGIN-DELAY (RFC 2449 6.5: the minimum time between logins; the session
// calls loggedIn once its +OK is decided). It returns errInUse (RFC 2449
// 8.1.2) or errLoginDelay (8.1.1); release gives the lock back and may be
// called more than once.
func (l *MaildropLocks) acquire(account string, now time.Time, delay time.Duration) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[account] {
		return nil, errInUse
	}
	if last, ok := l.lastLogin[account]; ok && delay > 0 && now.Sub(last) < delay {
		return nil, errLoginDelay
	}
	l.held[account] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, account)
			l.mu.Unlock()
		})
	}, nil
}

// loggedIn records a successful login for LOGIN-DELAY (only kept when a
// delay is in force).
func (l *MaildropLocks) loggedIn(account string, now time.Time, delay time.Duration) {
	if delay <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lastLogin) >= maxLoginRecords {
		for a, t := range l.lastLogin {
			if now.Sub(t) >= delay {
				delete(l.lastLogin, a)
			}
		}
	}
	l.lastLogin[account] = now
}

// Held reports whether account's maildrop is locked by a session (tests and
// diagnostics).
func (l *MaildropLocks) Held(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[account]
}
