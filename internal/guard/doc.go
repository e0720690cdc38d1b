// Package guard decides, for every protocol server, whether a peer may connect and how long a failed login must
// wait: it caps concurrent connections per IP (IPv6 per prefix, /64 by default) and in total, grows a delay with
// each failed authentication, bans an IP that fails too often within a window, and slows (never locks out) a
// username that is being guessed from many addresses.
//
// Every protocol calls it at accept (Admit, then release on close) and around each authentication attempt
// (Banned before, AuthFailed or AuthSucceeded after). One Guard is shared by all listeners, so a peer banned over
// IMAP is refused by SMTP, POP3, FTP and SFTP too.
//
// State is a mutex and a few maps, each bounded: an attacker spraying from many addresses or usernames evicts the
// stalest records rather than growing memory. Time comes from a Clock so tests drive it by hand.
//
// The package imports only the standard library and no protocol server (ARCHITECTURE.md: arrows point down); a
// test checks the import list.
package guard
