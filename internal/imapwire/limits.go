package imapwire

// Limits bound what one command may make the Decoder read, buffer and skip. A zero or negative
// field takes its default: zero never means unlimited.
type Limits struct {
	// MaxLine is the longest line of command text, in octets, not counting literal data or the
	// CRLF. RFC 9051 7.1.5 shows "* BAD Command line too long"; RFC 7162 4 asks servers to
	// accept lines of at least 8192 octets. Default 64 KiB.
	MaxLine int
	// MaxCommand bounds the octets buffered for one command: the text of all its lines plus the
	// data of its (non-APPEND) literals. Default 256 KiB.
	MaxCommand int
	// MaxLiteral is the largest literal accepted outside APPEND message data (a LOGIN password,
	// a SEARCH string, a mailbox name). Default 64 KiB.
	MaxLiteral int64
	// MaxAppend is the largest APPEND message literal: the APPENDLIMIT (RFC 7889). It is never
	// buffered; the data is streamed to the server. Default 50 MiB.
	MaxAppend int64
	// MaxArgs bounds the elements of one command: search keys, fetch items, flags, patterns,
	// status items, header field names, ID fields, ... Default 1000.
	MaxArgs int
	// MaxDepth bounds nesting: parenthesized lists and the NOT/OR search keys. Default 64.
	MaxDepth int
	// MaxSkip is how many octets the Decoder will read and throw away to find the start of the
	// next command after it rejected one: the rest of a line plus non-synchronizing literals the
	// client sends anyway (RFC 7888 4, first choice). Past it the error is Fatal and the server
	// says BYE (the second choice). Default 1 MiB.
	MaxSkip int64
}

// Default limits.
const (
	DefaultMaxLine    = 64 << 10
	DefaultMaxCommand = 256 << 10
	DefaultMaxLiteral = 64 << 10
	DefaultMaxAppend  = 50 << 20
	DefaultMaxArgs    = 1000
	DefaultMaxDepth   = 64
	DefaultMaxSkip    = 1 << 20
)

// maxNonSyncLiteral is the largest non-synchronizing literal under LITERAL- and IMAP4rev2:
// RFC 9051 4.3 and RFC 7888 5 ("MUST NOT be larger than 4096 bytes").
const maxNonSyncLiteral = 4096

// DefaultLimits returns the limits used for fields left zero.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:    DefaultMaxLine,
		MaxCommand: DefaultMaxCommand,
		MaxLiteral: DefaultMaxLiteral,
		MaxAppend:  DefaultMaxAppend,
		MaxArgs:    DefaultMaxArgs,
		MaxDepth:   DefaultMaxDepth,
		MaxSkip:    DefaultMaxSkip,
	}
}

// WithDefaults returns l with every zero or negative field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxCommand <= 0 {
		l.MaxCommand = d.MaxCommand
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = d.MaxLiteral
	}
	if l.MaxAppend <= 0 {
		l.MaxAppend = d.MaxAppend
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = d.MaxArgs
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxSkip <= 0 {
		l.MaxSkip = d.MaxSkip
	}
	return l
}

// LiteralInfo describes a literal the client announced, for the ContinueFunc.
type LiteralInfo struct {
	Tag     string // tag of the command being read
	Command string // its name, e.g. "APPEND", "LOGIN", "UID SEARCH"
	Size    int64  // announced octet count
	Sync    bool   // synchronizing "{n}": the client waits for a continuation request
	Binary  bool   // literal8 "~{n}" (RFC 3516, APPEND only)
	Append  bool   // APPEND message data (limited by MaxAppend and streamed)
}

// ContinueFunc is the server's hook called before the data of every literal, after the
// Decoder's own checks (limits, LITERAL-) passed. For a synchronizing literal the hook must write
// and flush a continuation request ("+ Ready", RFC 9051 7.5) before it returns nil. For a
// non-synchronizing literal ({n+}, RFC 7888) it must not write anything: the data is already on
// its way. A non-nil error refuses the literal: the Decoder returns a *SyntaxError wrapping it,
// the server answers the tagged NO or BAD it chooses (RFC 9051 7.5: the client then abandons the
// command), and the Decoder skips whatever the client still sends of that command.
type ContinueFunc func(LiteralInfo) error

// Option configures a Decoder.
type Option func(*Decoder)

// WithContinue sets the hook called before each literal. Without it every literal is accepted and
// no continuation request is written, which suits tests that feed whole transcripts.
func WithContinue(f ContinueFunc) Option { return func(d *Decoder) { d.cont = f } }

// WithLiteralPlus makes non-synchronizing literals of any size (up to the limits) acceptable, as
// when LITERAL+ is advertised (RFC 7888 3). Without it the LITERAL- / IMAP4rev2 rule applies:
// a {n+} literal over 4096 octets is rejected with BAD [TOOBIG] (RFC 7888 5, RFC 9051 4.3).
func WithLiteralPlus() Option { return func(d *Decoder) { d.literalPlus = true } }

// WithUTF8 starts the Decoder in UTF-8 mode, as SetUTF8(true) does.
func WithUTF8() Option { return func(d *Decoder) { d.utf8 = true } }
