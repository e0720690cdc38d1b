package imapwire

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustSeq(s string) SeqSet {
	set, err := ParseSeqSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func decodeOne(t *testing.T, in string, opts ...Option) (*Command, error) {
	t.Helper()
	d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{}, opts...)
	return d.ReadCommand()
}

// TestDecodeCommands decodes one example of every command form and compares every field.
func TestDecodeCommands(t *testing.T) {
	tests := decodeTests
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			in := tc.in
			if !strings.HasSuffix(in, "\n") {
				in += "\r\n"
			}
			var opts []Option
			if tc.utf8 {
				opts = append(opts, WithUTF8())
			}
			got, err := decodeOne(t, in, opts...)
			if err != nil {
				t.Fatalf("ReadCommand: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", *got, tc.want)
			}
			checkRoundTrip(t, "table", got)
		})
	}
}

var hdrFields = []string{"From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Priority", "X-Priority",
	"References", "Newsgroups", "In-Reply-To", "Content-Type", "Reply-To"}

// decodeTests is one example of every command form, with every field it decodes to. The inputs
// also seed FuzzReadCommand.
var decodeTests = []struct {
	in   string
	want Command
	utf8 bool
}{
	// RFC 9051 6.1: command-any
	{in: "a1 CAPABILITY", want: Command{Tag: "a1", Name: "CAPABILITY"}},
	{in: "a2 noop", want: Command{Tag: "a2", Name: "NOOP"}},
	{in: "A023 LOGOUT", want: Command{Tag: "A023", Name: "LOGOUT"}},
	{in: "t2 ENABLE CONDSTORE X-GOOD-IDEA", want: Command{Tag: "t2", Name: "ENABLE", Enable: []string{"CONDSTORE", "X-GOOD-IDEA"}}},
	{in: "a1 enable qresync utf8=accept", want: Command{Tag: "a1", Name: "ENABLE", Enable: []string{"QRESYNC", "UTF8=ACCEPT"}}},
	{in: `a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)`, want: Command{Tag: "a023", Name: "ID",
		ID: []IDField{{Name: "name", Value: "sodr"}, {Name: "version", Value: "19.34"}, {Name: "vendor", Nil: true}}}},
	{in: "a042 ID NIL", want: Command{Tag: "a042", Name: "ID"}},
	// RFC 9051 6.2: command-nonauth
	{in: "efgh STARTTLS", want: Command{Tag: "efgh", Name: "STARTTLS"}},
	{in: "A01 AUTHENTICATE PLAIN", want: Command{Tag: "A01", Name: "AUTHENTICATE", Auth: &Authenticate{Mechanism: "PLAIN"}}},
	{in: "A01 AUTHENTICATE plain dGVzdAB0ZXN0AHRlc3Q=", want: Command{Tag: "A01", Name: "AUTHENTICATE",
		Auth: &Authenticate{Mechanism: "PLAIN", Initial: []byte("test\x00test\x00test")}}},
	{in: "A01 AUTHENTICATE EXTERNAL =", want: Command{Tag: "A01", Name: "AUTHENTICATE", Auth: &Authenticate{Mechanism: "EXTERNAL", Initial: []byte{}}}},
	{in: "a001 LOGIN SMITH SESAME", want: Command{Tag: "a001", Name: "LOGIN", Login: &Login{Username: "SMITH", Password: "SESAME"}}},
	{in: `b LOGIN "fred" "p\"w \\x"`, want: Command{Tag: "b", Name: "LOGIN", Login: &Login{Username: "fred", Password: `p"w \x`}}},
	{in: "A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man", want: Command{Tag: "A001", Name: "LOGIN", Login: &Login{Username: "FRED FOOBAR", Password: "fat man"}}},
	{in: "A001 LOGIN {11}\r\nFRED FOOBAR {0}\r\n\r\n", want: Command{Tag: "A001", Name: "LOGIN", Login: &Login{Username: "FRED FOOBAR", Password: ""}}},
	// RFC 9051 6.3: command-auth
	{in: "A142 SELECT INBOX", want: Command{Tag: "A142", Name: "SELECT", Select: &Select{Mailbox: "INBOX"}}},
	{in: "A142 select inbox (CONDSTORE)", want: Command{Tag: "A142", Name: "SELECT", Select: &Select{Mailbox: "inbox", CondStore: true}}},
	{in: "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))", want: Command{Tag: "A02", Name: "SELECT",
		Select: &Select{Mailbox: "INBOX", QResync: &QResync{UIDValidity: 67890007, ModSeq: 20050715194045000, KnownUIDs: mustSeq("41,43:211,214:541")}}}},
	{in: "B04 EXAMINE INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 1:29997 (5000,7500 15000,22500)))", want: Command{Tag: "B04", Name: "EXAMINE",
		Select: &Select{Mailbox: "INBOX", CondStore: true, QResync: &QResync{UIDValidity: 67890007, ModSeq: 90060115194045000,
			KnownUIDs: mustSeq("1:29997"), KnownSeqs: mustSeq("5000,7500"), KnownSeqUID: mustSeq("15000,22500")}}}},
	{in: "C1 SELECT INBOX (QRESYNC (1 2 (3 4)))", want: Command{Tag: "C1", Name: "SELECT",
		Select: &Select{Mailbox: "INBOX", QResync: &QResync{UIDValidity: 1, ModSeq: 2, KnownSeqs: mustSeq("3"), KnownSeqUID: mustSeq("4")}}}},
	{in: "A003 CREATE owatagusiam/", want: Command{Tag: "A003", Name: "CREATE", Create: &Create{Mailbox: "owatagusiam/"}}},
	{in: `t2 CREATE MySpecial (USE (\Drafts \sent))`, want: Command{Tag: "t2", Name: "CREATE", Create: &Create{Mailbox: "MySpecial", Use: []string{`\Drafts`, `\Sent`}}}},
	{in: `t3 CREATE "INBOX.Sent Mail" (USE ())`, want: Command{Tag: "t3", Name: "CREATE", Create: &Create{Mailbox: "INBOX.Sent Mail", Use: []string{}}}},
	{in: "A683 DELETE blurdybloop", want: Command{Tag: "A683", Name: "DELETE", Mailbox: "blurdybloop"}},
	{in: "A683 RENAME blurdybloop sarasoop", want: Command{Tag: "A683", Name: "RENAME", Rename: &Rename{From: "blurdybloop", To: "sarasoop"}}},
	{in: "A002 SUBSCRIBE #news.comp.mail.mime", want: Command{Tag: "A002", Name: "SUBSCRIBE", Mailbox: "#news.comp.mail.mime"}},
	{in: `A002 UNSUBSCRIBE "#news.comp.mail.mime"`, want: Command{Tag: "A002", Name: "UNSUBSCRIBE", Mailbox: "#news.comp.mail.mime"}},
	{in: `A682 LIST "" *`, want: Command{Tag: "A682", Name: "LIST", List: &List{Reference: "", Patterns: []string{"*"}}}},
	{in: `A202 LIST ~/Mail/ %`, want: Command{Tag: "A202", Name: "LIST", List: &List{Reference: "~/Mail/", Patterns: []string{"%"}}}},
	{in: `C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`, want: Command{Tag: "C04", Name: "LIST", List: &List{
		Patterns: []string{"%"}, Extended: true, SelectSubscribed: true, SelectRecursiveMatch: true, ReturnChildren: true}}},
	{in: `BBB LIST "" ("INBOX" "Drafts" "Sent/%")`, want: Command{Tag: "BBB", Name: "LIST", List: &List{
		Patterns: []string{"INBOX", "Drafts", "Sent/%"}, Extended: true}}},
	{in: `A01 LIST (REMOTE SPECIAL-USE) "" % RETURN (SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))`, want: Command{Tag: "A01", Name: "LIST", List: &List{
		Patterns: []string{"%"}, Extended: true, SelectRemote: true, SelectSpecialUse: true, ReturnSubscribed: true, ReturnSpecialUse: true,
		ReturnStatus: []StatusItem{StatusMessages, StatusUnseen, StatusSize}}}},
	{in: `a LIST "" "*" RETURN ()`, want: Command{Tag: "a", Name: "LIST", List: &List{Patterns: []string{"*"}, Extended: true}}},
	{in: `A003 LSUB "#news." "comp.%"`, want: Command{Tag: "A003", Name: "LSUB", List: &List{Reference: "#news.", Patterns: []string{"comp.%"}}}},
	{in: "A001 NAMESPACE", want: Command{Tag: "A001", Name: "NAMESPACE"}},
	{in: "A042 STATUS blurdybloop (UIDNEXT MESSAGES)", want: Command{Tag: "A042", Name: "STATUS", Status: &StatusCmd{Mailbox: "blurdybloop", Items: []StatusItem{StatusUIDNext, StatusMessages}}}},
	{in: "s STATUS INBOX (messages uidnext uidvalidity unseen deleted size recent highestmodseq appendlimit deleted-storage)", want: Command{Tag: "s", Name: "STATUS",
		Status: &StatusCmd{Mailbox: "INBOX", Items: []StatusItem{StatusMessages, StatusUIDNext, StatusUIDValidity, StatusUnseen, StatusDeleted, StatusSize,
			StatusRecent, StatusHighestModSeq, StatusAppendLimit, StatusDeletedStorage}}}},
	{in: "A003 APPEND saved-messages", want: Command{Tag: "A003", Name: "APPEND", Mailbox: "saved-messages"}},
	{in: "A002 IDLE", want: Command{Tag: "A002", Name: "IDLE"}},
	{in: "c COMPRESS deflate", want: Command{Tag: "c", Name: "COMPRESS", Compress: "DEFLATE"}},
	{in: `G0001 GETQUOTA "!partition/sda4"`, want: Command{Tag: "G0001", Name: "GETQUOTA", Quota: &Quota{Root: "!partition/sda4"}}},
	{in: "G0002 GETQUOTAROOT INBOX", want: Command{Tag: "G0002", Name: "GETQUOTAROOT", Mailbox: "INBOX"}},
	{in: `S0001 SETQUOTA "#user/alice" (STORAGE 510 message 9223372036854775807)`, want: Command{Tag: "S0001", Name: "SETQUOTA",
		Quota: &Quota{Root: "#user/alice", Limits: []QuotaLimit{{"STORAGE", 510}, {"MESSAGE", 9223372036854775807}}}}},
	{in: `S0002 SETQUOTA "" ()`, want: Command{Tag: "S0002", Name: "SETQUOTA", Quota: &Quota{Root: "", Limits: []QuotaLimit{}}}},
	// RFC 9051 6.4: command-select
	{in: "FXXZ CHECK", want: Command{Tag: "FXXZ", Name: "CHECK"}},
	{in: "A341 CLOSE", want: Command{Tag: "A341", Name: "CLOSE"}},
	{in: "A342 UNSELECT", want: Command{Tag: "A342", Name: "UNSELECT"}},
	{in: "A202 EXPUNGE", want: Command{Tag: "A202", Name: "EXPUNGE"}},
	{in: "A003 UID EXPUNGE 3000:3002", want: Command{Tag: "A003", Name: "UID EXPUNGE", UID: true, Expunge: ptr(mustSeq("3000:3002"))}},
	{in: "A004 COPY 2:4 meeting", want: Command{Tag: "A004", Name: "COPY", Copy: &Copy{Seq: mustSeq("2:4"), Mailbox: "meeting"}}},
	{in: `E283 COPY $ "Other Messages"`, want: Command{Tag: "E283", Name: "COPY", Copy: &Copy{Seq: SeqSet{Saved: true}, Mailbox: "Other Messages"}}},
	{in: "a UID MOVE 42:69 foo", want: Command{Tag: "a", Name: "UID MOVE", UID: true, Copy: &Copy{Seq: mustSeq("42:69"), Mailbox: "foo"}}},
	{in: "a MOVE 1,3 Trash", want: Command{Tag: "a", Name: "MOVE", Copy: &Copy{Seq: mustSeq("1,3"), Mailbox: "Trash"}}},
	{in: "a UID COPY 305:310 meeting", want: Command{Tag: "a", Name: "UID COPY", UID: true, Copy: &Copy{Seq: mustSeq("305:310"), Mailbox: "meeting"}}},
	{in: `A003 STORE 2:4 +FLAGS (\Deleted)`, want: Command{Tag: "A003", Name: "STORE", Store: &Store{Seq: mustSeq("2:4"), Op: StoreAdd, Flags: []string{`\Deleted`}}}},
	{in: `F284 STORE $ +FLAGS.Silent (\Deleted)`, want: Command{Tag: "F284", Name: "STORE", Store: &Store{Seq: SeqSet{Saved: true}, Op: StoreAdd, Silent: true, Flags: []string{`\Deleted`}}}},
	{in: `a STORE 1 FLAGS \seen \Flagged $Label1`, want: Command{Tag: "a", Name: "STORE", Store: &Store{Seq: mustSeq("1"), Flags: []string{`\Seen`, `\Flagged`, `$Label1`}}}},
	{in: `a STORE 1:* -flags ()`, want: Command{Tag: "a", Name: "STORE", Store: &Store{Seq: mustSeq("1:*"), Op: StoreRemove, Flags: []string{}}}},
	{in: `a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) -FLAGS.SILENT (\Deleted)`, want: Command{Tag: "a103", Name: "UID STORE", UID: true,
		Store: &Store{Seq: mustSeq("4,6,8"), Op: StoreRemove, Silent: true, Flags: []string{`\Deleted`}, UnchangedSince: 12121230045, HasUnchangedSince: true}}},
	{in: `a102 STORE 12 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)`, want: Command{Tag: "a102", Name: "STORE",
		Store: &Store{Seq: mustSeq("12"), Op: StoreAdd, Silent: true, Flags: []string{`$MDNSent`}, HasUnchangedSince: true}}},
	{in: "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])", want: Command{Tag: "A654", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("2:4"), Items: []FetchItem{
		{Attr: FetchFlags}, {Attr: FetchBodySection, Section: Section{Spec: SpecHeaderFields, Fields: []string{"DATE", "FROM"}}}}}}},
	{in: "A003 FETCH 4 ALL", want: Command{Tag: "A003", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("4"), Items: []FetchItem{
		{Attr: FetchFlags}, {Attr: FetchInternalDate}, {Attr: FetchRFC822Size}, {Attr: FetchEnvelope}}}}},
	{in: "a FETCH 1 fast", want: Command{Tag: "a", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("1"), Items: []FetchItem{
		{Attr: FetchFlags}, {Attr: FetchInternalDate}, {Attr: FetchRFC822Size}}}}},
	{in: "a003 fetch 12 full", want: Command{Tag: "a003", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("12"), Items: []FetchItem{
		{Attr: FetchFlags}, {Attr: FetchInternalDate}, {Attr: FetchRFC822Size}, {Attr: FetchEnvelope}, {Attr: FetchBody}}}}},
	{in: "A999 UID FETCH 4827313:4828442 FLAGS", want: Command{Tag: "A999", Name: "UID FETCH", UID: true, Fetch: &Fetch{Seq: mustSeq("4827313:4828442"), Items: []FetchItem{{Attr: FetchFlags}}}}},
	{in: "a fetch 1 body[]", want: Command{Tag: "a", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("1"), Items: []FetchItem{{Attr: FetchBodySection}}}}},
	{in: "a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ " +
		"BODY[] BODY[1.2.HEADER] BODY.PEEK[HEADER.FIELDS (From To)]<0.1024> BODY[header.fields.not (Received)] BODY[TEXT] " +
		"BODY[2.MIME] BODY[3.1.TEXT]<10.5> BODY.PEEK[4] BINARY[1]<0.100> BINARY.PEEK[] BINARY.SIZE[2.1])",
		want: Command{Tag: "a", Name: "FETCH", Fetch: &Fetch{Seq: mustSeq("1"), Items: []FetchItem{
			{Attr: FetchEnvelope}, {Attr: FetchFlags}, {Attr: FetchInternalDate}, {Attr: FetchRFC822}, {Attr: FetchRFC822Header},
			{Attr: FetchRFC822Size}, {Attr: FetchRFC822Text}, {Attr: FetchBody}, {Attr: FetchBodyStructure}, {Attr: FetchUID}, {Attr: FetchModSeq},
			{Attr: FetchBodySection},
			{Attr: FetchBodySection, Section: Section{Part: []int{1, 2}, Spec: SpecHeader}},
			{Attr: FetchBodySection, Peek: true, Section: Section{Spec: SpecHeaderFields, Fields: []string{"From", "To"}}, Partial: &Partial{0, 1024}},
			{Attr: FetchBodySection, Section: Section{Spec: SpecHeaderFieldsNot, Fields: []string{"Received"}}},
			{Attr: FetchBodySection, Section: Section{Spec: SpecText}},
			{Attr: FetchBodySection, Section: Section{Part: []int{2}, Spec: SpecMIME}},
			{Attr: FetchBodySection, Section: Section{Part: []int{3, 1}, Spec: SpecText}, Partial: &Partial{10, 5}},
			{Attr: FetchBodySection, Peek: true, Section: Section{Part: []int{4}}},
			{Attr: FetchBinary, Section: Section{Part: []int{1}}, Partial: &Partial{0, 100}},
			{Attr: FetchBinary, Peek: true},
			{Attr: FetchBinarySize, Section: Section{Part: []int{2, 1}}},
		}}}},
	{in: "a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])",
		want: Command{Tag: "a1", Name: "UID FETCH", UID: true, Fetch: &Fetch{Seq: mustSeq("1:*"), Items: []FetchItem{
			{Attr: FetchUID}, {Attr: FetchRFC822Size}, {Attr: FetchFlags},
			{Attr: FetchBodySection, Peek: true, Section: Section{Spec: SpecHeaderFields, Fields: hdrFields}}}}}},
	{in: "s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)", want: Command{Tag: "s100", Name: "UID FETCH", UID: true,
		Fetch: &Fetch{Seq: mustSeq("300:500"), Items: []FetchItem{{Attr: FetchFlags}}, ChangedSince: 12345, Vanished: true}}},
	{in: "a FETCH 1:3 (MODSEQ) (CHANGEDSINCE 9223372036854775807)", want: Command{Tag: "a", Name: "FETCH",
		Fetch: &Fetch{Seq: mustSeq("1:3"), Items: []FetchItem{{Attr: FetchModSeq}}, ChangedSince: 9223372036854775807}}},
	{in: "A284 SEARCH TEXT \"string not in mailbox\"", want: Command{Tag: "A284", Name: "SEARCH", Search: &Search{
		Keys: []SearchKey{{Op: SearchText, Value: "string not in mailbox"}}}}},
	{in: "a UID SEARCH UNDELETED SINCE 1-Feb-1994", want: Command{Tag: "a", Name: "UID SEARCH", UID: true, Search: &Search{
		Keys: []SearchKey{{Op: SearchUndeleted}, {Op: SearchSince, Date: day(1994, 2, 1)}}}}},
	{in: "A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE \"01-Feb-1994\" NOT FROM \"Smith\"", want: Command{Tag: "A282", Name: "SEARCH", Search: &Search{
		ESearch: true, Return: ReturnMin | ReturnCount,
		Keys: []SearchKey{{Op: SearchFlagged}, {Op: SearchSince, Date: day(1994, 2, 1)}, {Op: SearchNot, Keys: []SearchKey{{Op: SearchFrom, Value: "Smith"}}}}}}},
	{in: "A283 UID SEARCH RETURN () 1:5000", want: Command{Tag: "A283", Name: "UID SEARCH", UID: true, Search: &Search{
		ESearch: true, Keys: []SearchKey{{Op: SearchSeqSet, Seq: mustSeq("1:5000")}}}}},
	{in: "C286 SEARCH RETURN (MAX SAVE MIN COUNT ALL) SEEN", want: Command{Tag: "C286", Name: "SEARCH", Search: &Search{
		ESearch: true, Return: ReturnMin | ReturnMax | ReturnAll | ReturnCount | ReturnSave, Keys: []SearchKey{{Op: SearchSeen}}}}},
	{in: "P283 SEARCH CHARSET UTF-8 (OR $ 1,3000:3021) TEXT {8+}\r\nмать", want: Command{Tag: "P283", Name: "SEARCH", Search: &Search{
		Charset: "UTF-8", Keys: []SearchKey{
			{Op: SearchAnd, Keys: []SearchKey{{Op: SearchOr, Keys: []SearchKey{{Op: SearchSeqSet, Seq: SeqSet{Saved: true}}, {Op: SearchSeqSet, Seq: mustSeq("1,3000:3021")}}}}},
			{Op: SearchText, Value: "мать"}}}}},
	{in: `a SEARCH MODSEQ "/flags/\\draft" all 620162338`, want: Command{Tag: "a", Name: "SEARCH", Search: &Search{
		Keys: []SearchKey{{Op: SearchModSeq, ModSeqEntry: `/flags/\draft`, ModSeqType: "all", Number: 620162338}}}}},
	{in: `a SEARCH HEADER "X Spam Flag" "" HEADER {3+}` + "\r\nA\"B \"x\\\\y\"", want: Command{Tag: "a", Name: "SEARCH", Search: &Search{
		Keys: []SearchKey{{Op: SearchHeader, Field: "X Spam Flag", Value: ""}, {Op: SearchHeader, Field: `A"B`, Value: `x\y`}}}}},
	{in: "t SEARCH OR NOT MODSEQ 720162338 LARGER 50000", want: Command{Tag: "t", Name: "SEARCH", Search: &Search{
		Keys: []SearchKey{{Op: SearchOr, Keys: []SearchKey{{Op: SearchNot, Keys: []SearchKey{{Op: SearchModSeq, Number: 720162338}}}, {Op: SearchLarger, Number: 50000}}}}}}},
	{in: "a SEARCH ALL ANSWERED BCC b BEFORE 1-Feb-1994 BODY \"x y\" CC c DELETED DRAFT FLAGGED FROM f HEADER Message-ID <a@b> " +
		"KEYWORD $Junk LARGER 9223372036854775807 NEW OLD ON 29-Feb-2024 RECENT SEEN SENTBEFORE 2-Jan-2000 SENTON 3-Mar-2001 " +
		"SENTSINCE 31-Dec-1999 SMALLER 0 SUBJECT s TEXT t TO to UID 1:5,7 UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD Work " +
		"UNSEEN *:4 (SEEN (DELETED)) $",
		want: Command{Tag: "a", Name: "SEARCH", Search: &Search{Keys: []SearchKey{
			{Op: SearchAll}, {Op: SearchAnswered}, {Op: SearchBcc, Value: "b"}, {Op: SearchBefore, Date: day(1994, 2, 1)},
			{Op: SearchBody, Value: "x y"}, {Op: SearchCc, Value: "c"}, {Op: SearchDeleted}, {Op: SearchDraft}, {Op: SearchFlagged},
			{Op: SearchFrom, Value: "f"}, {Op: SearchHeader, Field: "Message-ID", Value: "<a@b>"}, {Op: SearchKeyword, Value: "$Junk"},
			{Op: SearchLarger, Number: 9223372036854775807}, {Op: SearchNew}, {Op: SearchOld}, {Op: SearchOn, Date: day(2024, 2, 29)},
			{Op: SearchRecent}, {Op: SearchSeen}, {Op: SearchSentBefore, Date: day(2000, 1, 2)}, {Op: SearchSentOn, Date: day(2001, 3, 3)},
			{Op: SearchSentSince, Date: day(1999, 12, 31)}, {Op: SearchSmaller, Number: 0}, {Op: SearchSubject, Value: "s"},
			{Op: SearchText, Value: "t"}, {Op: SearchTo, Value: "to"}, {Op: SearchUID, Seq: mustSeq("1:5,7")}, {Op: SearchUnanswered},
			{Op: SearchUndeleted}, {Op: SearchUndraft}, {Op: SearchUnflagged}, {Op: SearchUnkeyword, Value: "Work"}, {Op: SearchUnseen},
			{Op: SearchSeqSet, Seq: SeqSet{Ranges: []SeqRange{{4, Star}}}},
			{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSeen}, {Op: SearchAnd, Keys: []SearchKey{{Op: SearchDeleted}}}}},
			{Op: SearchSeqSet, Seq: SeqSet{Saved: true}},
		}}}},
	// Mailbox names: modified UTF-7 by default (RFC 3501 5.1.3), UTF-8 after ENABLE (RFC 6855 3).
	{in: `a SELECT "~peter/mail/&U,BTFw-/&ZeVnLIqe-"`, want: Command{Tag: "a", Name: "SELECT", Select: &Select{Mailbox: "~peter/mail/台北/日本語"}}},
	{in: `a CREATE "R&-D"`, want: Command{Tag: "a", Name: "CREATE", Create: &Create{Mailbox: "R&D"}}},
	{in: `a SELECT "Entwürfe"`, utf8: true, want: Command{Tag: "a", Name: "SELECT", UTF8: true, Select: &Select{Mailbox: "Entwürfe"}}},
	{in: `a SELECT "&U,BTFw-"`, utf8: true, want: Command{Tag: "a", Name: "SELECT", UTF8: true, Select: &Select{Mailbox: "&U,BTFw-"}}},
	{in: `a LIST "" "&ZeVnLIqe-/*"`, want: Command{Tag: "a", Name: "LIST", List: &List{Patterns: []string{"日本語/*"}}}},
	// Tags: any ASTRING-CHAR but "+" (RFC 9051 9), so "]" and "." are fine.
	{in: "a]b.c NOOP", want: Command{Tag: "a]b.c", Name: "NOOP"}},
	// A bare LF ends a line too.
	{in: "lf NOOP\n", want: Command{Tag: "lf", Name: "NOOP"}},
}

func ptr[T any](v T) *T { return &v }

// TestDecodeSequence checks that one decoder reads a pipelined stream in order.
func TestDecodeSequence(t *testing.T) {
	in := "\r\n\r\na NOOP\r\n\nb CHECK\r\nc LOGOUT\r\n"
	d := NewDecoder(bufio.NewReader(strings.NewReader(in)), Limits{})
	for _, want := range []string{"a NOOP", "b CHECK", "c LOGOUT"} {
		c, err := d.ReadCommand()
		if err != nil || c.String() != want {
			t.Fatalf("got %v, %v; want %s", c, err, want)
		}
	}
	if _, err := d.ReadCommand(); err == nil || err.Error() != "EOF" {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}
