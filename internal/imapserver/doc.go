// Package imapserver is Posta's IMAP server (IMAP4rev1 and IMAP4rev2 with
// the extensions modern clients rely on) over internal/mailstore, on the
// grammar of internal/imapwire.
//
// This first part is the session's view of a selected mailbox (view.go):
// the sequence-number-to-UID map every command and untagged response goes
// through, kept in step with the store's change feed at the moments RFC 9051
// allows. It imports no other protocol server.
package imapserver
