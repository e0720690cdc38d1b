// Package pop3server serves POP3 (RFC 1939) for Posta: port 110 with STLS
// (RFC 2595, listener "pop3") and port 995 with implicit TLS (RFC 8314,
// listener "pop3s"). It is written in-house; no library is involved.
//
// Layout:
//
//   - wire.go: the grammar. Command lines in (bounded, parsed into Command
//     values), dot-stuffed multi-line bodies out. No net.Conn, deadline, log
//     or store; fuzzed directly.
//   - server.go, conn.go: accept loop, admission through internal/guard,
//     implicit TLS, deadlines, idle/busy tracking and graceful shutdown.
//   - commands.go: the one table of verbs with their flags, and the
//     dispatcher that enforces them (state, TLS before passwords, bad-command
//     and pre-login counts, panics).
//   - auth.go: CAPA, STLS, USER/PASS, AUTH (RFC 5034) through internal/sasl.
//   - maildrop.go: the maildrop (INBOX) fixed at login, STAT/LIST/UIDL/TOP/
//     RETR/DELE/RSET, and the UPDATE state.
//   - locks.go: the per-account maildrop lock shared by both listeners
//     (RFC 2449 8.1.2 IN-USE) and the LOGIN-DELAY record.
//   - reply.go: ReplyError and replyFor, the one place errors become -ERR
//     lines; no internal error text reaches a client.
//
// Decisions (see the comments where each is implemented):
//
//   - Sizes in STAT/LIST and "+OK n octets" are the stored octet counts.
//     Posta stores mail with CRLF line endings (smtpserver refuses bare LF),
//     so that is exactly what the client has after removing the byte-stuffing,
//     which RFC 1939 11 says is not counted.
//   - RETR marks the message \Seen, as Dovecot does; the flags of a whole
//     session are written in one store change when the session ends (QUIT,
//     drop, timeout or shutdown), so RETR itself costs no fsync. TOP does not
//     mark \Seen.
//   - DELE only marks. After QUIT (the UPDATE state) the marked messages are
//     expunged from the shared store (or moved to Trash with
//     Policy.DeletedToTrash); a session that ends any other way deletes
//     nothing (RFC 1939 3, 6).
//   - UIDL is "%08X%08X" of UID and UIDVALIDITY, which is Dovecot's default
//     pop3_uidl_format (%08Xu%08Xv): stable and unique for the life of the
//     message.
//   - EXPIRE NEVER unless Policy.ExpireDays is set (RFC 2449 6.7).
//   - APOP is not offered: it needs the plaintext password on the server,
//     and the directory keeps only argon2id hashes and SCRAM keys.
//   - UTF8 (RFC 6856) is not offered: a server that announces it must keep
//     internationalized headers from clients that did not enable it
//     (downgrading, RFC 6857/6858), which Posta does not implement. Messages
//     are sent as stored, as Dovecot does.
//
// What a session may use of the rest of Posta is narrow: the Store interface
// declared here (internal/mailstore implements it), sasl.Credentials
// (internal/directory implements it), the guard and the TLS manager.
//
// Import rule: this package must not import internal/server (which imports
// it to register the protocol) or another protocol server; a test checks.
package pop3server
