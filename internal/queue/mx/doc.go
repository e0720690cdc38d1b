// Package mx is Posta's outbound SMTP client: it implements queue.Transport
// by finding the destination's MX hosts (RFC 5321 5.1, null MX RFC 7505),
// connecting to them in order, negotiating STARTTLS (RFC 3207) under the
// destination's DANE (RFC 7672) or MTA-STS (RFC 8461) policy and the
// message's REQUIRETLS (RFC 8689), and running one mail transaction per
// Send, with a result per recipient. Connections are kept a short while for
// the next message to the same domain.
//
// The SMTP framing is github.com/emersion/go-smtp's client, which sends
// commands one at a time (no PIPELINING) and has no BDAT (no CHUNKING,
// hence no BINARYMIME).
//
// It imports internal/queue for its types only, and no protocol server.
package mx
