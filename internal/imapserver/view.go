package imapserver

import (
	"slices"
	"sort"

	"posta/internal/mailstore"
)

// view is one session's picture of its selected mailbox: the UIDs it has
// announced, in sequence-number order (sequence number n is uids[n-1]).
// Changes from the store's feed are queued and announced only when the
// session may send them; until then sequence numbers keep meaning what the
// client was told (RFC 9051 2.3.1.2: they change only through EXPUNGE or
// EXISTS the client has seen).
type view struct {
	mailbox int64
	uids    []uint32
	// Queued, not yet announced:
	expunged map[uint32]bool
	added    []uint32
	flags    map[uint32]mailstore.MessageMeta
}

func newView(mailbox int64, metas []mailstore.MessageMeta) *view {
	v := &view{mailbox: mailbox, uids: make([]uint32, len(metas)),
		expunged: map[uint32]bool{}, flags: map[uint32]mailstore.MessageMeta{}}
	for i, m := range metas {
		v.uids[i] = m.UID
	}
	return v
}

// seq returns the sequence number of uid, or 0 if the client was not told of it.
func (v *view) seq(uid uint32) int {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return i + 1
}

// uid returns the UID at sequence number n (1-based), or 0.
func (v *view) uid(n int) uint32 {
	if n < 1 || n > len(v.uids) {
		return 0
	}
	return v.uids[n-1]
}

// exists is the message count the client knows.
func (v *view) exists() int { return len(v.uids) }

// queue takes changes from the feed for this mailbox.
func (v *view) queue(changes []mailstore.Change) {
	for _, c := range changes {
		if c.Mailbox != v.mailbox {
			continue
		}
		switch c.Kind {
		case mailstore.Added:
			v.added = append(v.added, c.UIDs...)
		case mailstore.Expunged:
			for _, u := range c.UIDs {
				// A message added and expunged before the client heard of
				// it is simply never announced.
				if i := slices.Index(v.added, u); i >= 0 {
					v.added = slices.Delete(v.added, i, i+1)
					continue
				}
				v.expunged[u] = true
				delete(v.flags, u)
			}
		case mailstore.FlagsChanged:
			for _, m := range c.Metas {
				if !v.expunged[m.UID] {
					v.flags[m.UID] = m
				}
			}
		}
	}
}

// updateKind says what one untagged response announces.
type updateKind int

const (
	updExpunge updateKind = iota + 1 // EXPUNGE Seq (or VANISHED UID under QRESYNC)
	updExists                        // EXISTS Count
	updFetch                         // FETCH Seq (FLAGS ...) for Meta
)

type update struct {
	Kind  updateKind
	Seq   int
	UID   uint32
	Count int
	Meta  mailstore.MessageMeta
}

// flush returns the untagged responses to send now and applies them to the
// view. allowExpunge is false during FETCH, STORE and SEARCH by sequence
// number (RFC 9051 7.5.1: an EXPUNGE then would change the numbers the
// command is using); expunges then stay queued, the numbering keeps the
// expunged messages, and only EXISTS and FLAGS changes go out.
func (v *view) flush(allowExpunge bool) []update {
	var out []update
	if allowExpunge && len(v.expunged) > 0 {
		// Highest sequence number first: each EXPUNGE renumbers only the
		// messages after it, so every number sent is right when sent.
		gone := make([]int, 0, len(v.expunged))
		for u := range v.expunged {
			if n := v.seq(u); n > 0 {
				gone = append(gone, n)
			}
		}
		sort.Sort(sort.Reverse(sort.IntSlice(gone)))
		for _, n := range gone {
			out = append(out, update{Kind: updExpunge, Seq: n, UID: v.uids[n-1]})
			v.uids = slices.Delete(v.uids, n-1, n)
		}
		clear(v.expunged)
	}
	if len(v.added) > 0 {
		slices.Sort(v.added)
		for _, u := range v.added {
			// UIDs only grow (RFC 9051 2.3.1.1), so appending keeps order.
			if len(v.uids) == 0 || u > v.uids[len(v.uids)-1] {
				v.uids = append(v.uids, u)
			}
		}
		v.added = v.added[:0]
		out = append(out, update{Kind: updExists, Count: len(v.uids)})
	}
	if len(v.flags) > 0 {
		uids := make([]uint32, 0, len(v.flags))
		for u := range v.flags {
			uids = append(uids, u)
		}
		slices.Sort(uids)
		for _, u := range uids {
			if n := v.seq(u); n > 0 {
				out = append(out, update{Kind: updFetch, Seq: n, UID: u, Meta: v.flags[u]})
			}
		}
		clear(v.flags)
	}
	return out
}
