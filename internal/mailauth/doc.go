// Package mailauth authenticates mail: DKIM keys and signatures for what
// Posta sends (RFC 6376, RFC 8463), SPF, DKIM and DMARC checks with an
// Authentication-Results header for what it receives (RFC 7208, RFC 7489,
// RFC 8601), and the DNS records an operator publishes for a domain (MX,
// SPF, DKIM, DMARC, MTA-STS, TLS-RPT, RFC 6186 SRV).
//
// The queue signs with a Signer, delivery checks with a Verifier, and
// `posta domain dns` prints Records. Every DNS query goes through the
// Resolver interface, which *net.Resolver satisfies, so tests answer from a
// map or from a DNS server on 127.0.0.1.
//
// It imports internal/database and the chosen mail-authentication libraries
// (go-msgauth, blitiri.com.ar/go/spf) only: no protocol server, no store. It
// never logs, and never copies a message body anywhere but into the hashes.
package mailauth
