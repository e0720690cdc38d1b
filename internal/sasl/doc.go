// Package sasl implements the server side of the SASL mechanisms that Posta's
// SMTP, IMAP and POP3 servers share: PLAIN (RFC 4616), LOGIN
// (draft-murchison-sasl-login), SCRAM-SHA-256 and SCRAM-SHA-256-PLUS
// (RFC 5802, RFC 7677, channel bindings from RFC 5929 and RFC 9266).
//
// A protocol server asks Mechanisms what to advertise, starts a conversation
// with NewServer for the name the client chose, and then feeds each client
// response (already base64-decoded) to Server.Next, sending back each
// challenge (to be base64-encoded) until Next reports done or an error. The
// package does no I/O, keeps no deadlines and writes no logs: framing, the
// client's "*" abort, base64 and the final reply belong to the protocol layer,
// which maps the errors here (ErrInvalidCredentials, ErrMalformed, ...) to its
// own replies with errors.Is.
//
// Passwords are checked through the Credentials interface, which the directory
// package implements. SCRAM works from stored keys (RFC 5802 3: salt,
// iteration count, StoredKey, ServerKey), never from a plaintext password;
// SCRAMSHA256Keys computes those keys when a password is set.
//
// SCRAM is written here rather than taken from github.com/xdg-go/scram
// (whose client the tests use as an independent implementation), because its
// server conversation does not fit what Posta needs:
//   - it binds to exactly one channel binding type, while on TLS 1.2 we serve
//     both tls-unique (the RFC 5802 6.1 default) and tls-exporter (RFC 9266);
//   - it does not know whether the client chose the -PLUS mechanism name, so it
//     accepts "n" under SCRAM-SHA-256-PLUS and "p=" under SCRAM-SHA-256;
//   - its credential lookup takes no context and returns no canonical account
//     name, and it reports unknown users at once (e=unknown-user), where we
//     answer with a decoy salt so SCRAM does not reveal which users exist;
//   - its errors are untyped strings (one carries the expected binding data in
//     hex), and we need errors.Is classes for the protocol replies.
//
// The whole server side is a few hundred lines of parsing and three HMACs;
// the RFC 7677 test vector and the xdg-go client keep it honest.
//
// Import rule: this package must not import any protocol server
// (smtpserver, imapserver, pop3server, ...) nor the directory package; it
// depends only on the standard library and golang.org/x/text. The test
// TestImportRule enforces that.
package sasl
