package guard

import "time"

// table is a map capped at max entries whose nodes also sit on a list ordered by last touch. Because the guard's
// clock only moves forward, the stalest entry is always at the front: expired entries are pruned from there at O(1)
// each (no scan of the whole map under the lock), and when the table is full the stalest live entry is the one
// given up, so an attacker spraying new keys cannot grow memory and an active offender, being recent, is the last
// to be forgotten.
type table[K comparable, V any] struct {
	m       map[K]*node[K, V]
	root    node[K, V] // sentinel: root.next is the stalest entry, root.prev the freshest
	max     int
	evicted uint64 // live entries dropped because the table was full
}

type node[K comparable, V any] struct {
	key        K
	at         time.Duration // last touch on the guard's clock; for bans, the end of the ban
	val        V
	prev, next *node[K, V]
}

// newTable returns a pointer because the sentinel links to itself: a copied table would corrupt its list.
func newTable[K comparable, V any](max int) *table[K, V] {
	t := &table[K, V]{m: make(map[K]*node[K, V]), max: max}
	t.root.next, t.root.prev = &t.root, &t.root
	return t
}

func (t *table[K, V]) len() int { return len(t.m) }

func (t *table[K, V]) get(k K) *node[K, V] { return t.m[k] }

// insert adds k, which must be absent, as the freshest entry. When the table is full the stalest entry's node is
// reused (saving an allocation per sprayed key); its val is left as it was, so the caller must reset it.
func (t *table[K, V]) insert(k K, at time.Duration) (n *node[K, V], evicted bool) {
	if len(t.m) >= t.max {
		n = t.root.next
		t.remove(n)
		t.evicted++
		evicted = true
	} else {
		n = new(node[K, V])
	}
	n.key, n.at = k, at
	t.m[k] = n
	t.pushBack(n)
	return n, evicted
}

// touch marks n as the freshest entry.
func (t *table[K, V]) touch(n *node[K, V], at time.Duration) {
	t.unlink(n)
	n.at = at
	t.pushBack(n)
}

func (t *table[K, V]) remove(n *node[K, V]) {
	t.unlink(n)
	delete(t.m, n.key)
}

// pruneThrough removes entries from the front while their at is <= cutoff.
func (t *table[K, V]) pruneThrough(cutoff time.Duration) {
	for n := t.root.next; n != &t.root && n.at <= cutoff; n = t.root.next {
		t.remove(n)
	}
}

func (t *table[K, V]) pushBack(n *node[K, V]) {
	n.prev, n.next = t.root.prev, &t.root
	t.root.prev.next = n
	t.root.prev = n
}

func (t *table[K, V]) unlink(n *node[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}
