package imapwire

import (
	"encoding/base64"
	"strings"
)

// Command is one decoded client command. Name says which argument field is set; commands without
// arguments (CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, UNSELECT, EXPUNGE, IDLE,
// NAMESPACE) set none.
type Command struct {
	Tag  string
	Name string // upper case; "UID FETCH" etc. for the UID forms (RFC 9051 6.4.9)
	UID  bool   // Name starts with "UID "
	// UTF8 records that mailbox names were read as UTF-8 (SetUTF8), not as modified UTF-7.
	// String encodes them the same way.
	UTF8 bool

	Auth     *Authenticate // AUTHENTICATE
	Login    *Login        // LOGIN
	Enable   []string      // ENABLE: capability names, upper-cased (RFC 5161 3.1)
	Select   *Select       // SELECT, EXAMINE
	Create   *Create       // CREATE
	Rename   *Rename       // RENAME
	List     *List         // LIST, LSUB
	Status   *StatusCmd    // STATUS
	Search   *Search       // SEARCH, UID SEARCH
	Fetch    *Fetch        // FETCH, UID FETCH
	Store    *Store        // STORE, UID STORE
	Copy     *Copy         // COPY, MOVE, UID COPY, UID MOVE
	Quota    *Quota        // GETQUOTA, SETQUOTA
	ID       []IDField     // ID: nil for "ID NIL" and "ID ()" (RFC 2971 3.1)
	Expunge  *SeqSet       // UID EXPUNGE (RFC 4315 2.1)
	Compress string        // COMPRESS: the algorithm, upper-cased (RFC 4978 3)
	// Mailbox is the argument of DELETE, SUBSCRIBE, UNSUBSCRIBE and GETQUOTAROOT, and the target
	// of APPEND (whose messages come from Decoder.NextMessage).
	Mailbox string
}

// Authenticate is AUTHENTICATE auth-type [SP initial-resp] (RFC 9051 6.2.2, RFC 4959 7).
type Authenticate struct {
	Mechanism string // upper-cased SASL mechanism name
	// Initial is the decoded SASL-IR initial response: nil when absent, empty (not nil) for "=".
	Initial []byte
}

// Login is LOGIN userid SP password (RFC 9051 6.2.3).
type Login struct {
	Username, Password string
}

// Select is SELECT or EXAMINE mailbox [select-params] (RFC 9051 6.3.2, RFC 4466 2.1, RFC 7162).
type Select struct {
	Mailbox   string
	CondStore bool     // CONDSTORE parameter (RFC 7162 3.1.8)
	QResync   *QResync // QRESYNC parameter (RFC 7162 3.2.5)
}

// QResync is "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")" (RFC 7162 7). Absent sets are empty.
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   SeqSet
	KnownSeqs   SeqSet // seq-match-data: known-sequence-set
	KnownSeqUID SeqSet // seq-match-data: known-uid-set
}

// Create is CREATE mailbox [create-params] (RFC 9051 6.3.4, RFC 6154 5.3).
type Create struct {
	Mailbox string
	Use     []string // USE (\Drafts \Sent ...): special-use attributes as sent (CREATE-SPECIAL-USE)
}

// Rename is RENAME mailbox SP mailbox (RFC 9051 6.3.6).
type Rename struct {
	From, To string
}

// List is LIST (RFC 9051 6.3.9, RFC 5258, RFC 5819, RFC 6154) or LSUB (RFC 3501 6.3.9).
type List struct {
	Reference string
	Patterns  []string // one for the basic form; several with LIST-EXTENDED patterns
	// Extended is set when the LIST-EXTENDED syntax was used: selection options (even "()"),
	// a parenthesized pattern list, or RETURN options (RFC 5258 3).
	Extended bool

	SelectSubscribed     bool // SUBSCRIBED (RFC 5258 3.1)
	SelectRemote         bool // REMOTE
	SelectRecursiveMatch bool // RECURSIVEMATCH
	SelectSpecialUse     bool // SPECIAL-USE (RFC 6154 5.2)

	ReturnSubscribed bool         // RETURN (SUBSCRIBED) (RFC 5258 3.2)
	ReturnChildren   bool         // RETURN (CHILDREN)
	ReturnSpecialUse bool         // RETURN (SPECIAL-USE) (RFC 6154 5.2)
	ReturnStatus     []StatusItem // RETURN (STATUS (...)) (RFC 5819 2); nil if not asked
}

// StatusItem is a status-att (RFC 9051 9, RFC 7162, RFC 7889, RFC 9208).
type StatusItem string

const (
	StatusMessages       StatusItem = "MESSAGES"
	StatusUIDNext        StatusItem = "UIDNEXT"
	StatusUIDValidity    StatusItem = "UIDVALIDITY"
	StatusUnseen         StatusItem = "UNSEEN"
	StatusDeleted        StatusItem = "DELETED"         // RFC 9051, RFC 9208 4.2
	StatusSize           StatusItem = "SIZE"            // RFC 9051 6.3.11 (STATUS=SIZE)
	StatusRecent         StatusItem = "RECENT"          // RFC 3501 only
	StatusHighestModSeq  StatusItem = "HIGHESTMODSEQ"   // RFC 7162 3.1.9
	StatusAppendLimit    StatusItem = "APPENDLIMIT"     // RFC 7889 3
	StatusDeletedStorage StatusItem = "DELETED-STORAGE" // RFC 9208 4.2
)

var statusItems = map[string]StatusItem{}

func init() {
	for _, s := range []StatusItem{StatusMessages, StatusUIDNext, StatusUIDValidity, StatusUnseen, StatusDeleted,
		StatusSize, StatusRecent, StatusHighestModSeq, StatusAppendLimit, StatusDeletedStorage} {
		statusItems[string(s)] = s
	}
}

// StatusCmd is STATUS mailbox SP "(" status-att *(SP status-att) ")" (RFC 9051 6.3.11).
type StatusCmd struct {
	Mailbox string
	Items   []StatusItem
}

// Copy is COPY or MOVE sequence-set SP mailbox (RFC 9051 6.4.7, 6.4.8; RFC 6851).
type Copy struct {
	Seq     SeqSet
	Mailbox string
}

// Quota is GETQUOTA quota-root-name or SETQUOTA quota-root-name SP setquota-list (RFC 9208 4).
type Quota struct {
	Root   string
	Limits []QuotaLimit // SETQUOTA only; may be empty ("()" removes all limits)
}

// QuotaLimit is setquota-resource = resource-name SP resource-limit (RFC 9208 7).
type QuotaLimit struct {
	Resource string // upper-cased: STORAGE, MESSAGE, MAILBOX, ANNOTATION-STORAGE or an extension
	Limit    uint64
}

// IDField is one field-value pair of ID (RFC 2971 3.1).
type IDField struct {
	Name  string
	Value string
	Nil   bool // the value was NIL
}

// commandParsers maps a command name to the function that reads its arguments and final CRLF.
var commandParsers = map[string]func(*Decoder, *Command){
	// RFC 9051 6.1: command-any
	"CAPABILITY": noArgs, "NOOP": noArgs, "LOGOUT": noArgs,
	"ENABLE": parseEnable, // RFC 5161 4, RFC 9051 6.3.1
	"ID":     parseID,     // RFC 2971 4
	// RFC 9051 6.2: command-nonauth
	"STARTTLS": noArgs, "AUTHENTICATE": parseAuthenticate, "LOGIN": parseLogin,
	// RFC 9051 6.3: command-auth
	"SELECT": parseSelect, "EXAMINE": parseSelect, "CREATE": parseCreate,
	"DELETE": parseMailboxArg, "RENAME": parseRename, "SUBSCRIBE": parseMailboxArg,
	"UNSUBSCRIBE": parseMailboxArg, "LIST": parseList, "LSUB": parseLsub, "NAMESPACE": noArgs,
	"STATUS": parseStatus, "APPEND": parseAppend, "IDLE": noArgs,
	"COMPRESS":     parseCompress,   // RFC 4978 5
	"GETQUOTA":     parseGetQuota,   // RFC 9208 7
	"GETQUOTAROOT": parseMailboxArg, // RFC 9208 7
	"SETQUOTA":     parseSetQuota,   // RFC 9208 7
	// RFC 9051 6.4: command-select
	"CHECK": noArgs, "CLOSE": noArgs, "UNSELECT": noArgs, "EXPUNGE": noArgs,
	"SEARCH": parseSearch, "FETCH": parseFetch, "STORE": parseStore,
	"COPY": parseCopy, "MOVE": parseCopy,
	"UID SEARCH": parseSearch, "UID FETCH": parseFetch, "UID STORE": parseStore,
	"UID COPY": parseCopy, "UID MOVE": parseCopy,
	"UID EXPUNGE": parseUIDExpunge, // RFC 4315 2.1
}

func noArgs(d *Decoder, c *Command) { d.expectEOL() }

// RFC 5161 4: command-any =/ "ENABLE" 1*(SP capability)
func parseEnable(d *Decoder, c *Command) {
	c.Enable = []string{}
	for d.err == nil {
		d.expectSP()
		if d.arg() {
			c.Enable = append(c.Enable, strings.ToUpper(d.atom("a capability name")))
		}
		if !d.peekIs(' ') {
			break
		}
	}
	d.expectEOL()
}

// RFC 2971 4: id ::= "ID" SPACE id_params_list; id_params_list ::= "(" #(string SPACE nstring) ")" / nil
func parseID(d *Decoder, c *Command) {
	d.expectSP()
	if d.peekIs('(') {
		d.list(true, func() {
			f := IDField{Name: d.string()}
			d.expectSP()
			var ok bool
			f.Value, ok = d.nstring()
			f.Nil = !ok
			c.ID = append(c.ID, f)
		})
	} else if d.keyword() != "NIL" && d.err == nil {
		d.fail("expected a parenthesized list or NIL")
	}
	d.expectEOL()
}

// RFC 9051 9: authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp] *(CRLF base64);
// initial-resp = (base64 / "=") (RFC 4959 7).
func parseAuthenticate(d *Decoder, c *Command) {
	a := &Authenticate{}
	d.expectSP()
	a.Mechanism = strings.ToUpper(d.atom("a SASL mechanism"))
	if d.sp() {
		ir := d.token(&base64Char)
		switch {
		case d.err != nil:
		case ir == "=":
			a.Initial = []byte{}
		default:
			b, err := decodeBase64(ir)
			if err != nil || ir == "" {
				d.fail("invalid base64 in initial response")
			}
			a.Initial = b
			if a.Initial == nil {
				a.Initial = []byte{}
			}
		}
	}
	d.expectEOL()
	c.Auth = a
}

// RFC 9051 9: login = "LOGIN" SP userid SP password; userid = astring; password = astring
func parseLogin(d *Decoder, c *Command) {
	l := &Login{}
	d.expectSP()
	l.Username = d.astring("a user name")
	d.expectSP()
	l.Password = d.astring("a password")
	d.expectEOL()
	c.Login = l
}

// RFC 4978 5: compress = "COMPRESS" SP algorithm
func parseCompress(d *Decoder, c *Command) {
	d.expectSP()
	c.Compress = strings.ToUpper(d.atom("a compression algorithm"))
	d.expectEOL()
}

// RFC 9208 7: getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring
func parseGetQuota(d *Decoder, c *Command) {
	d.expectSP()
	c.Quota = &Quota{Root: d.astring("a quota root")}
	d.expectEOL()
}

// RFC 9208 7: setquota = "SETQUOTA" SP quota-root-name SP setquota-list;
// setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")";
// setquota-resource = resource-name SP resource-limit; resource-limit = number64
func parseSetQuota(d *Decoder, c *Command) {
	q := &Quota{Root: "", Limits: []QuotaLimit{}}
	d.expectSP()
	q.Root = d.astring("a quota root")
	d.expectSP()
	d.list(true, func() {
		var l QuotaLimit
		l.Resource = d.keyword()
		if l.Resource == "" && d.err == nil {
			d.fail("expected a resource name")
		}
		d.expectSP()
		l.Limit = d.number64()
		q.Limits = append(q.Limits, l)
	})
	d.expectEOL()
	c.Quota = q
}

// RFC 4315 4: uid-expunge = "UID" SP "EXPUNGE" SP sequence-set
func parseUIDExpunge(d *Decoder, c *Command) {
	d.expectSP()
	set := d.seqSet()
	d.expectEOL()
	c.Expunge = &set
}

// String returns the command in wire form without the final CRLF; a string that cannot be quoted
// becomes a literal ("{n+}" CRLF data, or "{n}" over 4096 octets), so String of a decoded
// command decodes to an equal Command. APPEND renders only up to the mailbox name (see
// AppendMessage.String). It shows passwords: don't log it.
func (c *Command) String() string {
	b := []byte(c.Tag)
	b = append(b, ' ')
	b = append(b, c.Name...)
	w := cmdWriter{b: b, utf8: c.UTF8}
	c.appendArgs(&w)
	return string(w.b)
}

// cmdWriter renders command arguments the way a client would.
type cmdWriter struct {
	b    []byte
	utf8 bool
}

func (w *cmdWriter) sp()              { w.b = append(w.b, ' ') }
func (w *cmdWriter) raw(s string)     { w.b = append(w.b, s...) }
func (w *cmdWriter) astring(s string) { w.b = appendAString(w.b, s, true, true) }
func (w *cmdWriter) string(s string)  { w.b = appendString(w.b, s, true, true) }
func (w *cmdWriter) mailbox(s string) {
	if !w.utf8 {
		s = EncodeUTF7(s)
	}
	w.astring(s)
}
func (w *cmdWriter) atoms(l []string) {
	w.b = append(w.b, '(')
	for i, s := range l {
		if i > 0 {
			w.sp()
		}
		w.raw(s)
	}
	w.b = append(w.b, ')')
}

func (c *Command) appendArgs(w *cmdWriter) {
	switch {
	case c.Auth != nil:
		w.sp()
		w.raw(c.Auth.Mechanism)
		if c.Auth.Initial != nil {
			w.sp()
			if len(c.Auth.Initial) == 0 {
				w.raw("=")
			} else {
				w.raw(base64.StdEncoding.EncodeToString(c.Auth.Initial))
			}
		}
	case c.Login != nil:
		w.sp()
		w.astring(c.Login.Username)
		w.sp()
		w.astring(c.Login.Password)
	case c.Enable != nil:
		for _, s := range c.Enable {
			w.sp()
			w.raw(s)
		}
	case c.Name == "ID":
		w.sp()
		if len(c.ID) == 0 {
			w.raw("NIL")
			break
		}
		w.raw("(")
		for i, f := range c.ID {
			if i > 0 {
				w.sp()
			}
			w.string(f.Name)
			w.sp()
			if f.Nil {
				w.raw("NIL")
			} else {
				w.string(f.Value)
			}
		}
		w.raw(")")
	case c.Select != nil:
		c.Select.appendTo(w)
	case c.Create != nil:
		w.sp()
		w.mailbox(c.Create.Mailbox)
		if c.Create.Use != nil {
			w.raw(" (USE ")
			w.atoms(c.Create.Use)
			w.raw(")")
		}
	case c.Rename != nil:
		w.sp()
		w.mailbox(c.Rename.From)
		w.sp()
		w.mailbox(c.Rename.To)
	case c.List != nil:
		c.List.appendTo(w, c.Name == "LSUB")
	case c.Status != nil:
		w.sp()
		w.mailbox(c.Status.Mailbox)
		w.sp()
		w.b = appendStatusItems(w.b, c.Status.Items)
	case c.Search != nil:
		c.Search.appendTo(w)
	case c.Fetch != nil:
		c.Fetch.appendTo(w)
	case c.Store != nil:
		c.Store.appendTo(w)
	case c.Copy != nil:
		w.sp()
		w.b = c.Copy.Seq.AppendTo(w.b)
		w.sp()
		w.mailbox(c.Copy.Mailbox)
	case c.Quota != nil:
		w.sp()
		w.astring(c.Quota.Root)
		if c.Name == "SETQUOTA" {
			w.raw(" (")
			for i, l := range c.Quota.Limits {
				if i > 0 {
					w.sp()
				}
				w.raw(l.Resource)
				w.sp()
				w.b = appendUint(w.b, l.Limit)
			}
			w.raw(")")
		}
	case c.Expunge != nil:
		w.sp()
		w.b = c.Expunge.AppendTo(w.b)
	case c.Compress != "":
		w.sp()
		w.raw(c.Compress)
	case c.Mailbox != "" || c.Name == "DELETE" || c.Name == "SUBSCRIBE" || c.Name == "UNSUBSCRIBE" ||
		c.Name == "GETQUOTAROOT" || c.Name == "APPEND":
		w.sp()
		w.mailbox(c.Mailbox)
	}
}

func appendStatusItems(b []byte, items []StatusItem) []byte {
	b = append(b, '(')
	for i, it := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, it...)
	}
	return append(b, ')')
}
