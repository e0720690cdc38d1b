// Package imapwire is Posta's IMAP grammar: it turns the bytes a client sends into typed command
// values and writes server responses, and it does nothing else.
//
// The Decoder reads commands from a *bufio.Reader under a set of Limits (values, with non-zero
// defaults) and returns a *Command or an error; a grammar or limit violation is a *SyntaxError that
// carries the tag (when it was read), a message safe to send to the client, and whether the
// connection can go on. Policy is passed in: a ContinueFunc is called before every literal so the
// server can write "+ Ready" or refuse it; LITERAL+ or LITERAL- and UTF8=ACCEPT are options the
// session sets. APPEND message data is streamed through an io.Reader, never buffered.
//
// The Encoder writes status responses, response codes, untagged data and FETCH responses (item by
// item, with literals streamed from an io.Reader) to a *bufio.Writer.
//
// The rules are those of RFC 9051 section 9 and RFC 3501 section 9, with the ABNF of the extensions
// the server offers: IDLE (RFC 2177), NAMESPACE (2342), ID (2971), CHILDREN (3348), MULTIAPPEND
// (3502), BINARY (3516), UNSELECT (3691), UIDPLUS (4315), collected extensions (4466), ESEARCH
// (4731), SASL-IR (4959), COMPRESS (4978), ENABLE (5161), SEARCHRES (5182), LIST-EXTENDED (5258),
// LIST-STATUS (5819), SPECIAL-USE (6154), MOVE (6851), UTF8=ACCEPT (6855), CONDSTORE/QRESYNC
// (7162), LITERAL+/LITERAL- (7888), APPENDLIMIT (7889) and QUOTA (9208). Each rule is cited beside
// the code that implements it.
//
// What it must not import: net (no net.Conn, no deadlines: the session owns the socket), log or
// log/slog (the session logs), and no Posta package at all (it sits at layer 0 of
// internal/archtest, beside internal/message, so neither may import the other: the Section type
// here mirrors message.Section field for field, with SectionSpec values in the order of
// message.Specifier, so the server converts with a struct literal).
// Only the standard library is used.
package imapwire
