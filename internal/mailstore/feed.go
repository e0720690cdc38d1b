package mailstore

import "sync"

// ChangeKind says what a Change is.
type ChangeKind int

const (
	// Added: new messages (UIDs) in Mailbox.
	Added ChangeKind = iota + 1
	// FlagsChanged: Metas carry the messages' new flags and MODSEQ.
	FlagsChanged
	// Expunged: UIDs left Mailbox.
	Expunged
	// MailboxCreated, MailboxDeleted, MailboxRenamed: Name (and OldName).
	MailboxCreated
	MailboxDeleted
	MailboxRenamed
)

// Change is one committed change in an account.
type Change struct {
	Kind    ChangeKind
	Mailbox int64
	ModSeq  uint64
	UIDs    []uint32
	Metas   []MessageMeta // FlagsChanged and Added
	Name    string
	OldName string
	// Origin is the session id passed with WithOrigin, 0 if none.
	Origin uint64
}

// maxPending bounds a subscription's unread changes; past it the
// subscription is marked overflowed and the session must resynchronise from
// the store (or end), because the publisher never blocks on a slow reader.
const maxPending = 10000

// Subscription receives an account's changes in commit order.
type Subscription struct {
	// C has capacity 1: a wake-up saying changes are waiting; wake-ups coalesce.
	C chan struct{}

	f        *feed
	account  string
	mu       sync.Mutex
	pending  []Change
	overflow bool
}

// Take returns the waiting changes and whether some were dropped (then the
// caller must resynchronise from the store).
func (sub *Subscription) Take() ([]Change, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	ch, ov := sub.pending, sub.overflow
	sub.pending, sub.overflow = nil, false
	return ch, ov
}

// Close stops the subscription.
func (sub *Subscription) Close() { sub.f.remove(sub) }

type feed struct {
	mu   sync.Mutex
	subs map[string]map[*Subscription]bool
	// index is kept current with every change before subscribers hear of it.
	index *index
}

func newFeed() *feed { return &feed{subs: map[string]map[*Subscription]bool{}} }

// Subscribe starts receiving the account's changes.
func (s *Store) Subscribe(account string) *Subscription {
	sub := &Subscription{C: make(chan struct{}, 1), f: s.feed, account: account}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	m := s.feed.subs[account]
	if m == nil {
		m = map[*Subscription]bool{}
		s.feed.subs[account] = m
	}
	m[sub] = true
	return sub
}

func (f *feed) remove(sub *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(f.subs, sub.account)
		}
	}
}

// publish hands changes to every subscriber of the account. It runs on the
// writer goroutine after the commit and never blocks.
func (f *feed) publish(account string, changes ...Change) {
	f.index.apply(changes)
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs[account] {
		sub.mu.Lock()
		if len(sub.pending)+len(changes) > maxPending {
			sub.pending, sub.overflow = nil, true
		} else if !sub.overflow {
			sub.pending = append(sub.pending, changes...)
		}
		sub.mu.Unlock()
		select {
		case sub.C <- struct{}{}:
		default:
		}
	}
}
