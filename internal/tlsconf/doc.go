// Package tlsconf owns the server certificate and hands every TLS listener its
// own *tls.Config.
//
// The certificate comes from one of two places:
//
//   - PEM files named in the config (e.g. certbot's fullchain.pem and
//     privkey.pem). They are re-read when they change, so a renewal is served
//     without a restart. Two triggers: a handshake notices it (at most one stat
//     of the files per Options.CheckInterval, default one minute, never blocking
//     a handshake behind another's check), or Manager.Reload is called (e.g. on
//     SIGHUP). A renewal caught half-written (new certificate, old key) is
//     logged and ignored; the old pair is served until the files agree again.
//
//   - Nothing configured: an ECDSA P-256 self-signed certificate generated once
//     in <data>/tls and reused on later starts. It is replaced, with the reason
//     logged, when it is missing, unparsable, within 30 days of expiry, or does
//     not cover the configured hostname.
//
// # One tls.Config per listener
//
// Manager.ServerConfig returns a new config on every call, and each listener
// should call it once. A config carries its own session ticket keys, so:
//
//   - FTPS data connections must be served with the same *tls.Config as their
//     control connection: clients such as FileZilla and curl resume the control
//     connection's TLS session on the data connection, and a server may insist
//     on it (RFC 4217 10.2: "reasonable for the server to insist that the data
//     connection uses a TLS cached session"), which is how it knows the data
//     connection comes from the client that logged in. A ticket only decrypts
//     under the config that issued it.
//   - Different protocols do not share ticket keys, so a session from the IMAP
//     port cannot be resumed on the SMTP port.
//
// # ALPN
//
// Go's server aborts with no_application_protocol whenever the client offers
// ALPN and none of the names match (crypto/tls negotiateALPN; the only
// exception is http/1.1 against h2). Mail clients mostly send no ALPN at all,
// which Go accepts; a client that offers unrelated names (a library default)
// would be cut off. ServerConfig therefore tolerates a mismatch by answering
// without ALPN, unless the client offers an HTTP protocol: that is what a
// browser sends when an attacker redirects it to a mail port (the ALPACA
// cross-protocol attack), and there the abort is the point, so we keep it.
//
// This package must not import config, a protocol server or the store: callers
// translate their config into Options.
package tlsconf
