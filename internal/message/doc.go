// Package message computes, once when a message is delivered, everything IMAP FETCH needs about its MIME
// structure, so that ENVELOPE, BODYSTRUCTURE, BODY and BODY[section] are answered from a stored blob without
// reading the body again.
//
// Parse streams the raw message (CRLF as stored; bare LF and a missing final line break are accepted) through a
// fixed window, keeping only the current part's header and the open boundaries, and returns a Message: byte
// offsets and line counts of every part's header and body, the parsed MIME fields, and the envelope of the
// message and of every message/rfc822 part. MarshalBinary/UnmarshalBinary give the store a compact, versioned
// form that decodes in a few allocations. IMAPEnvelope and IMAPBodyStructure render the exact bytes of the RFC
// 9051 7.5.2 FETCH items; ParseSection and Message.Section turn a BODY[section] spec (RFC 9051 6.4.5) into a
// byte span of the raw message, and Header helps with HEADER.FIELDS and, for SEARCH, decoded field values.
//
// Malformed input never fails a parse: the answers follow Dovecot 2.3's, which clients have been tested against,
// and testdata/mime holds Dovecot's answers for a corpus of real and broken messages (golden_test.go). Limits on
// nesting depth, part count and header size bound the work; reaching one still yields a usable Message together
// with an error wrapping ErrLimit.
//
// What is in-house and why: the boundary scanner (go-message's multipart reader exposes no byte offsets, buffers
// whole parts in places, and stops at malformed input); header field splitting and the structured-field lexer
// for Content-Type parameters (RFC 2045, RFC 2231 joining), addresses (RFC 5322) and encoded words (RFC 2047),
// because IMAP must report broken values the way Dovecot does where net/mail, mime.ParseMediaType and go-message
// return an error. go-message's charset package converts legacy charsets to UTF-8 (DecodeText, ParamValue).
//
// The package imports no protocol server and not the store (ARCHITECTURE.md: arrows point down).
package message
