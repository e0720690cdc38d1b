package mailstore

import (
	"cmp"
	"slices"
	"sync"
)

// defaultIndexMax is how many messages' metadata the index keeps in memory
// at most, over all mailboxes (about 80 octets each).
const defaultIndexMax = 1 << 20

// index keeps mailboxes' message metadata in memory, so that listing a
// mailbox (IMAP SELECT, FETCH 1:* FLAGS, POP3 login) costs a copy instead
// of a scan of every row: reading 100k rows through SQLite takes hundreds
// of milliseconds, copying them a few.
//
// It is filled by readers (Messages) and kept current by the change feed:
// publish, which runs on the writer goroutine after each commit and in
// commit order, applies every change here first. A reader's listing is
// installed only if no change was published while it read, so the index
// never holds a state older than one the feed already announced.
type index struct {
	mu    sync.Mutex
	gen   uint64 // counts applied changes
	max   int
	size  int // messages held
	tick  uint64
	boxes map[int64]*indexEntry
}

type indexEntry struct {
	metas []MessageMeta // ascending UID
	used  uint64        // tick of the last use, for eviction
}

func newIndex(max int) *index { return &index{max: max, boxes: map[int64]*indexEntry{}} }

// get returns a copy of a cached mailbox's listing.
func (x *index) get(mailbox int64) ([]MessageMeta, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.use(mailbox)
	if e == nil {
		return nil, false
	}
	return slices.Clone(e.metas), true
}

// lookup returns the metadata of the given UIDs of a cached mailbox, in
// the order given, leaving out those it does not hold; false when the
// mailbox is not cached. It copies only what it returns.
func (x *index) lookup(mailbox int64, uids []uint32) ([]MessageMeta, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.use(mailbox)
	if e == nil {
		return nil, false
	}
	return pick(e.metas, uids), true
}

// use returns a cached mailbox's entry, marked as just used (for
// eviction); nil when it is not cached. x.mu is held.
func (x *index) use(mailbox int64) *indexEntry {
	e := x.boxes[mailbox]
	if e != nil {
		x.tick++
		e.used = x.tick
	}
	return e
}

// findUID finds uid in metas (ascending UID).
func findUID(metas []MessageMeta, uid uint32) (int, bool) {
	return slices.BinarySearchFunc(metas, uid, func(m MessageMeta, u uint32) int { return cmp.Compare(m.UID, u) })
}

// pick copies the entries of metas (ascending UID) with the given UIDs,
// in the order given, leaving out UIDs it does not hold.
func pick(metas []MessageMeta, uids []uint32) []MessageMeta {
	out := make([]MessageMeta, 0, len(uids))
	for _, u := range uids {
		if i, ok := findUID(metas, u); ok {
			out = append(out, metas[i])
		}
	}
	return out
}

// generation is read before a listing is loaded and handed to put.
func (x *index) generation() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.gen
}

// put installs a listing loaded from the database when nothing changed
// since gen, evicting the least recently used mailboxes to stay under max.
func (x *index) put(mailbox int64, metas []MessageMeta, gen uint64) {
	if len(metas) > x.max {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen != gen || x.boxes[mailbox] != nil {
		return
	}
	for x.size+len(metas) > x.max {
		var victim int64
		var oldest uint64 = ^uint64(0)
		for id, e := range x.boxes {
			if e.used < oldest {
				victim, oldest = id, e.used
			}
		}
		x.drop(victim)
	}
	x.tick++
	x.boxes[mailbox] = &indexEntry{metas: slices.Clone(metas), used: x.tick}
	x.size += len(metas)
}

func (x *index) drop(mailbox int64) {
	if e := x.boxes[mailbox]; e != nil {
		x.size -= len(e.metas)
		delete(x.boxes, mailbox)
	}
}

// apply brings cached listings up to date with committed changes.
func (x *index) apply(changes []Change) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range changes {
		x.gen++
		e := x.boxes[c.Mailbox]
		if e == nil {
			continue
		}
		switch c.Kind {
		case Added:
			if len(c.Metas) != len(c.UIDs) {
				x.drop(c.Mailbox)
				continue
			}
			// UIDs only grow (RFC 9051 2.3.1.1); anything else means the
			// listing is not what we think: forget it.
			if n := len(e.metas); n > 0 && len(c.Metas) > 0 && c.Metas[0].UID <= e.metas[n-1].UID ||
				!slices.IsSortedFunc(c.Metas, func(a, b MessageMeta) int { return int(int64(a.UID) - int64(b.UID)) }) {
				x.drop(c.Mailbox)
				continue
			}
			e.metas = append(e.metas, c.Metas...)
			x.size += len(c.Metas)
		case FlagsChanged:
			for _, m := range c.Metas {
				if i, ok := findUID(e.metas, m.UID); ok {
					e.metas[i] = m
				}
			}
		case Expunged:
			gone := make(map[uint32]bool, len(c.UIDs))
			for _, u := range c.UIDs {
				gone[u] = true
			}
			n := len(e.metas)
			e.metas = slices.DeleteFunc(e.metas, func(m MessageMeta) bool { return gone[m.UID] })
			x.size -= n - len(e.metas)
		case MailboxDeleted:
			x.drop(c.Mailbox)
		}
	}
}
