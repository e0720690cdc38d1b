// Package mailstore keeps every account's mailboxes and messages: UIDs and
// UIDVALIDITY, one MODSEQ counter per account, flags and keywords,
// tombstones of expunged messages (for QRESYNC VANISHED), quota usage, and a
// change feed sessions subscribe to. Bodies live in internal/blob; the
// metadata lives in posta.db.
//
// Every change goes through one writer goroutine that commits whatever is
// waiting in one transaction (group commit), so one fsync serves many
// deliveries; a change is reported done only after its commit, and durable
// then, except a change of flags alone, whose fsync may wait up to
// DeferFlagSync's delay (flagsync.go). Readers query the database directly
// (WAL lets them run beside the writer).
//
// IMAP, POP3 and delivery use it; it imports no protocol server. Message
// structure (envelope, bodystructure) arrives as opaque bytes computed by
// internal/message, so this package never parses MIME.
package mailstore
