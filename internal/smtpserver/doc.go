// Package smtpserver serves SMTP for Posta on top of github.com/emersion/go-smtp:
// the MX listener (port 25, "smtp"), submission with STARTTLS (587,
// "submission", RFC 6409) and submission with implicit TLS (465,
// "submissions", RFC 8314).
//
// go-smtp owns the wire: command parsing and dispatch, the EHLO reply, DATA
// dot-unstuffing, BDAT chunking, SIZE/RCPT limits and the STARTTLS upgrade.
// This package adds what Posta needs around it:
//
//   - connection admission through internal/guard (421 at connect), and one
//     net.Conn wrapper per TCP connection that knows whether the session is
//     idle or busy, so Shutdown can say 421 to idle sessions at once and let
//     a message in flight finish (go-smtp's own Shutdown only waits);
//   - the implicit-TLS handshake before go-smtp sees the connection, so a
//     session is only ever handed over with its TLS state known;
//   - AUTH through internal/sasl, adapted to go-sasl's Server interface, with
//     SCRAM's server-final data sent as a 334 challenge (RFC 4954 4; go-smtp
//     would drop it), guard delays and bans;
//   - address and parameter checks go-smtp does not make (control bytes,
//     lengths, non-ASCII without SMTPUTF8), relay and recipient policy through
//     the Deliverer, and the Received header (RFC 5321 4.4);
//   - rejection of bare CR and bare LF in message data (SMTP smuggling, RFC
//     5321 2.3.8), which go-smtp v0.25.1 passes through;
//   - one reply shape (ReplyError) and one mapping (replyFor), so no internal
//     error text ever reaches a client and our own faults are 4xx.
//
// What the session may use of the rest of Posta is narrow: the Deliverer
// interface declared here (internal/delivery implements it), sasl.Credentials
// (internal/directory implements it), the guard and the TLS manager.
//
// Import rule: this package must not import internal/server (which imports
// it to register the protocol), another protocol server, or the mail store.
package smtpserver
