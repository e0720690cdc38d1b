package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func encode(t *testing.T, utf8 bool, f func(e *Encoder) error) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	e := NewEncoder(w)
	e.SetUTF8(utf8)
	err := f(e)
	if ferr := e.Flush(); ferr != nil {
		t.Fatal(ferr)
	}
	return buf.String(), err
}

func TestEncoderResponses(t *testing.T) {
	envelope := []byte(`("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) NIL NIL NIL NIL NIL NIL "<B27397-0100000@cac.washington.edu>")`)
	body := []byte(`("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)`)
	date := time.Date(1996, 7, 17, 2, 44, 25, 0, time.FixedZone("", -7*3600))
	tests := []struct {
		name string
		utf8 bool
		f    func(e *Encoder) error
		want string
	}{
		// Status responses (RFC 9051 7.1).
		{"tagged", false, func(e *Encoder) error { return e.Tagged("A142", OK, CodeReadWrite, "SELECT completed") }, "A142 OK [READ-WRITE] SELECT completed\r\n"},
		{"tagged no text", false, func(e *Encoder) error { return e.Tagged("a2", NO, CodeTryCreate, "") }, "a2 NO [TRYCREATE] failed\r\n"},
		{"tagged CRLF in text", false, func(e *Encoder) error { return e.Tagged("a3", BAD, "", "one\r\ntwo\x00") }, "a3 BAD one  two \r\n"},
		{"8-bit text", false, func(e *Encoder) error { return e.Tagged("a4", NO, "", "Größe") }, "a4 NO Gr??e\r\n"},
		{"8-bit text UTF8", true, func(e *Encoder) error { return e.Tagged("a4", NO, "", "Größe\xff") }, "a4 NO Größe?\r\n"},
		{"untagged", false, func(e *Encoder) error { return e.Untagged(OK, CodeUIDValidity(3857529045), "UIDs valid") }, "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"},
		{"bye", false, func(e *Encoder) error { return e.Untagged(BYE, "", "IMAP4rev2 Server logging out") }, "* BYE IMAP4rev2 Server logging out\r\n"},
		{"preauth", false, func(e *Encoder) error { return e.Untagged(PREAUTH, CodeCapability("IMAP4rev2", "IDLE"), "welcome") }, "* PREAUTH [CAPABILITY IMAP4rev2 IDLE] welcome\r\n"},
		{"continue", false, func(e *Encoder) error { return e.Continue("Ready for literal data") }, "+ Ready for literal data\r\n"},
		{"continue empty", false, func(e *Encoder) error { return e.Continue("") }, "+ Ready\r\n"},
		{"sasl empty", false, func(e *Encoder) error { return e.ContinueBase64(nil) }, "+ \r\n"},
		{"sasl", false, func(e *Encoder) error { return e.ContinueBase64([]byte("hi")) }, "+ aGk=\r\n"},
		// Untagged data.
		{"capability", false, func(e *Encoder) error {
			return e.Capability("IMAP4rev2", "STARTTLS", "AUTH=PLAIN", "APPENDLIMIT=52428800")
		},
			"* CAPABILITY IMAP4rev2 STARTTLS AUTH=PLAIN APPENDLIMIT=52428800\r\n"},
		{"enabled", false, func(e *Encoder) error { return e.Enabled("CONDSTORE", "QRESYNC") }, "* ENABLED CONDSTORE QRESYNC\r\n"},
		{"enabled none", false, func(e *Encoder) error { return e.Enabled() }, "* ENABLED\r\n"},
		{"flags", false, func(e *Encoder) error {
			return e.Flags(`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`, `$Forwarded`)
		},
			"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"},
		{"exists", false, func(e *Encoder) error { return e.Exists(172) }, "* 172 EXISTS\r\n"},
		{"recent", false, func(e *Encoder) error { return e.Recent(1) }, "* 1 RECENT\r\n"},
		{"expunge", false, func(e *Encoder) error { return e.Expunge(22) }, "* 22 EXPUNGE\r\n"},
		{"vanished", false, func(e *Encoder) error { return e.Vanished(mustSeq("41,43:116,118,120:211,214:540"), true) },
			"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"},
		{"vanished now", false, func(e *Encoder) error { return e.Vanished(mustSeq("405,407,410,425"), false) }, "* VANISHED 405,407,410,425\r\n"},
		{"list", false, func(e *Encoder) error {
			return e.List(ListData{Attrs: []string{`\HasNoChildren`, `\Sent`}, Delim: '/', Mailbox: "Sent"})
		}, "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"},
		{"list quoted", false, func(e *Encoder) error { return e.List(ListData{Delim: '.', Mailbox: "Sent Items"}) }, "* LIST () \".\" \"Sent Items\"\r\n"},
		{"list NIL name", false, func(e *Encoder) error { return e.List(ListData{Mailbox: "NIL"}) }, "* LIST () NIL \"NIL\"\r\n"},
		{"list backslash delimiter", false, func(e *Encoder) error { return e.List(ListData{Delim: '\\', Mailbox: "a"}) }, "* LIST () \"\\\\\" a\r\n"},
		{"list mUTF-7", false, func(e *Encoder) error { return e.List(ListData{Delim: '/', Mailbox: "~peter/mail/台北/日本語"}) },
			"* LIST () \"/\" ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n"},
		{"list UTF-8", true, func(e *Encoder) error { return e.List(ListData{Delim: '/', Mailbox: "台北"}) }, "* LIST () \"/\" \"台北\"\r\n"},
		{"list wildcard name", false, func(e *Encoder) error { return e.List(ListData{Delim: '/', Mailbox: "a*b"}) }, "* LIST () \"/\" \"a*b\"\r\n"},
		{"list childinfo", false, func(e *Encoder) error {
			return e.List(ListData{Delim: '/', Mailbox: "Foo", ChildInfo: []string{"SUBSCRIBED"}})
		}, "* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"},
		{"list oldname", false, func(e *Encoder) error {
			return e.List(ListData{Delim: '/', Mailbox: "INBOX", OldName: "inbox", Attrs: []string{}})
		}, "* LIST () \"/\" INBOX (\"OLDNAME\" (inbox))\r\n"},
		{"list both", false, func(e *Encoder) error {
			return e.List(ListData{Delim: '/', Mailbox: "a", ChildInfo: []string{"SUBSCRIBED"}, OldName: "b c"})
		}, "* LIST () \"/\" a (\"CHILDINFO\" (\"SUBSCRIBED\") \"OLDNAME\" (\"b c\"))\r\n"},
		{"lsub", false, func(e *Encoder) error {
			return e.Lsub(ListData{Attrs: []string{`\Noselect`}, Delim: '.', Mailbox: "#news.comp.mail"})
		},
			"* LSUB (\\Noselect) \".\" #news.comp.mail\r\n"},
		{"status", false, func(e *Encoder) error {
			return e.MailboxStatus("blurdybloop", []StatusValue{{Item: StatusMessages, Value: 231}, {Item: StatusUIDNext, Value: 44292}})
		}, "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"},
		{"status all", false, func(e *Encoder) error {
			return e.MailboxStatus("Entwürfe", []StatusValue{{StatusUIDValidity, 3857529045, false}, {StatusUnseen, 0, false}, {StatusDeleted, 1, false},
				{StatusSize, 9223372036854775807, false}, {StatusRecent, 2, false}, {StatusHighestModSeq, 715194045007, false},
				{StatusAppendLimit, 0, true}, {StatusDeletedStorage, 5, false}})
		}, "* STATUS Entw&APw-rfe (UIDVALIDITY 3857529045 UNSEEN 0 DELETED 1 SIZE 9223372036854775807 RECENT 2 HIGHESTMODSEQ 715194045007 APPENDLIMIT NIL DELETED-STORAGE 5)\r\n"},
		{"search", false, func(e *Encoder) error { return e.Search([]uint32{2, 84, 882}, 0) }, "* SEARCH 2 84 882\r\n"},
		{"search none", false, func(e *Encoder) error { return e.Search(nil, 917162500) }, "* SEARCH\r\n"},
		{"search modseq", false, func(e *Encoder) error { return e.Search([]uint32{2, 5, 6}, 917162500) }, "* SEARCH 2 5 6 (MODSEQ 917162500)\r\n"},
		{"esearch", false, func(e *Encoder) error {
			return e.ESearch(ESearchData{Tag: "A282", Return: ReturnMin | ReturnCount, Min: 2, Count: 3})
		}, "* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\r\n"},
		{"esearch uid", false, func(e *Encoder) error {
			return e.ESearch(ESearchData{Tag: "A285", UID: true, Return: ReturnMin | ReturnMax | ReturnSave, Min: 7, Max: 3800})
		}, "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n"},
		{"esearch all", false, func(e *Encoder) error {
			return e.ESearch(ESearchData{Tag: "A283", Return: ReturnAll, All: mustSeq("2,10:11")})
		}, "* ESEARCH (TAG \"A283\") ALL 2,10:11\r\n"},
		{"esearch empty", false, func(e *Encoder) error {
			return e.ESearch(ESearchData{Tag: "A284", Return: ReturnMin | ReturnAll | ReturnCount})
		}, "* ESEARCH (TAG \"A284\") COUNT 0\r\n"},
		{"esearch modseq", false, func(e *Encoder) error {
			return e.ESearch(ESearchData{Tag: "a1", Return: ReturnMin, Min: 2, ModSeq: 917162488})
		}, "* ESEARCH (TAG \"a1\") MIN 2 MODSEQ 917162488\r\n"},
		{"id", false, func(e *Encoder) error {
			return e.ID([]IDField{{Name: "name", Value: "Posta"}, {Name: "support-url", Nil: true}})
		}, "* ID (\"name\" \"Posta\" \"support-url\" NIL)\r\n"},
		{"id nil", false, func(e *Encoder) error { return e.ID(nil) }, "* ID NIL\r\n"},
		{"namespace", false, func(e *Encoder) error { return e.Namespace([]NamespaceDescr{{"", '/'}}, nil, nil) }, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"},
		{"namespace all", false, func(e *Encoder) error {
			return e.Namespace([]NamespaceDescr{{"", '/'}}, []NamespaceDescr{{"~", '/'}}, []NamespaceDescr{{"#shared/", '/'}, {"#public/", 0}})
		}, "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" NIL))\r\n"},
		{"quota", false, func(e *Encoder) error { return e.Quota("", []QuotaResource{{"STORAGE", 10, 512}, {"MESSAGE", 5, 100}}) },
			"* QUOTA \"\" (STORAGE 10 512 MESSAGE 5 100)\r\n"},
		{"quotaroot", false, func(e *Encoder) error { return e.QuotaRoot("INBOX", "") }, "* QUOTAROOT INBOX \"\"\r\n"},
		{"quotaroot none", false, func(e *Encoder) error { return e.QuotaRoot("comp.mail.mime") }, "* QUOTAROOT comp.mail.mime\r\n"},
		{"raw", false, func(e *Encoder) error { return e.Raw("X-THING 1") }, "* X-THING 1\r\n"},
		// FETCH, item by item (RFC 9051 7.5.2).
		{"fetch", false, func(e *Encoder) error {
			fw := e.Fetch(12)
			fw.Flags(`\Seen`)
			fw.InternalDate(date)
			fw.RFC822Size(4286)
			fw.Envelope(envelope)
			fw.BodyStructure(body, false)
			fw.UID(4827313)
			fw.ModSeq(12121231000)
			return fw.Close()
		}, "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE " + string(envelope) +
			" BODY " + string(body) + " UID 4827313 MODSEQ (12121231000))\r\n"},
		{"fetch date padding", false, func(e *Encoder) error {
			fw := e.Fetch(1)
			fw.InternalDate(time.Date(1994, 2, 7, 1, 2, 3, 0, time.UTC))
			fw.BodyStructure(body, true)
			return fw.Close()
		}, "* 1 FETCH (INTERNALDATE \"07-Feb-1994 01:02:03 +0000\" BODYSTRUCTURE " + string(body) + ")\r\n"},
		{"fetch quoted", false, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Peek: true, Section: Section{Spec: SpecHeaderFields, Fields: []string{"Subject"}}}, []byte(`Re: "a\b"`))
			return fw.Close()
		}, "* 2 FETCH (BODY[HEADER.FIELDS (Subject)] \"Re: \\\"a\\\\b\\\"\")\r\n"},
		{"fetch literal for CRLF", false, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Section: Section{Spec: SpecHeader}}, []byte("Subject: x\r\n\r\n"))
			return fw.Close()
		}, "* 2 FETCH (BODY[HEADER] {14}\r\nSubject: x\r\n\r\n)\r\n"},
		{"fetch literal for 8-bit", false, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{1}}}, []byte("Grüße"))
			return fw.Close()
		}, "* 2 FETCH (BODY[1] {7}\r\nGrüße)\r\n"},
		{"fetch quoted 8-bit after UTF8=ACCEPT", true, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{1}}}, []byte("Grüße"))
			return fw.Close()
		}, "* 2 FETCH (BODY[1] \"Grüße\")\r\n"},
		{"fetch literal for invalid UTF-8", true, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{1}}}, []byte("\xff"))
			return fw.Close()
		}, "* 2 FETCH (BODY[1] {1}\r\n\xff)\r\n"},
		{"fetch literal when long", false, func(e *Encoder) error {
			fw := e.Fetch(2)
			fw.Section(FetchItem{Attr: FetchBodySection, Section: Section{Spec: SpecText}}, bytes.Repeat([]byte("a"), 1025))
			return fw.Close()
		}, "* 2 FETCH (BODY[TEXT] {1025}\r\n" + strings.Repeat("a", 1025) + ")\r\n"},
		{"fetch partial and peek", false, func(e *Encoder) error {
			fw := e.Fetch(3)
			fw.Section(FetchItem{Attr: FetchBodySection, Peek: true, Partial: &Partial{100, 4}}, []byte("abcd"))
			fw.SectionNil(FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{9}, Spec: SpecMIME}})
			fw.Section(FetchItem{Attr: FetchRFC822Header}, []byte(""))
			return fw.Close()
		}, "* 3 FETCH (BODY[]<100> \"abcd\" BODY[9.MIME] NIL RFC822.HEADER \"\")\r\n"},
		{"fetch binary", false, func(e *Encoder) error {
			fw := e.Fetch(4)
			fw.Section(FetchItem{Attr: FetchBinary, Peek: true, Section: Section{Part: []int{2}}}, []byte("a\x00b"))
			fw.Section(FetchItem{Attr: FetchBinary, Section: Section{Part: []int{1}}, Partial: &Partial{0, 10}}, []byte("plain"))
			fw.BinarySize([]int{2}, 3)
			return fw.Close()
		}, "* 4 FETCH (BINARY[2] ~{3}\r\na\x00b BINARY[1]<0> \"plain\" BINARY.SIZE[2] 3)\r\n"},
		{"fetch streamed", false, func(e *Encoder) error {
			fw := e.Fetch(5)
			fw.UID(9)
			fw.SectionReader(FetchItem{Attr: FetchBodySection, Peek: true}, 11, strings.NewReader("hello world and more"))
			fw.SectionReader(FetchItem{Attr: FetchBinary, Section: Section{Part: []int{1}}}, 2, strings.NewReader("\x00\x01"))
			return fw.Close()
		}, "* 5 FETCH (UID 9 BODY[] {11}\r\nhello world BINARY[1] ~{2}\r\n\x00\x01)\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encode(t, tc.utf8, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEncoderCodes(t *testing.T) {
	for _, tc := range []struct {
		code Code
		want string
	}{
		{CodeAlert, "ALERT"}, {CodeBadCharset, "BADCHARSET"}, {CodeBadCharsets("UTF-8", "US-ASCII", "x y"), `BADCHARSET (UTF-8 US-ASCII "x y")`},
		{CodeCapability("IMAP4rev2", "AUTH=PLAIN"), "CAPABILITY IMAP4rev2 AUTH=PLAIN"}, {CodeParse, "PARSE"},
		{CodePermanentFlags(`\Deleted`, `\Seen`, `\*`), `PERMANENTFLAGS (\Deleted \Seen \*)`}, {CodePermanentFlags(), "PERMANENTFLAGS ()"},
		{CodeReadOnly, "READ-ONLY"}, {CodeReadWrite, "READ-WRITE"}, {CodeTryCreate, "TRYCREATE"},
		{CodeUIDNext(4392), "UIDNEXT 4392"}, {CodeUIDValidity(3857529045), "UIDVALIDITY 3857529045"}, {CodeUnseen(12), "UNSEEN 12"},
		{CodeAppendUID(38505, SeqSetOf(3955)), "APPENDUID 38505 3955"}, {CodeAppendUID(38505, SeqSetOf(3955, 3956, 3957)), "APPENDUID 38505 3955:3957"},
		{CodeCopyUID(38505, mustSeq("304,319:320"), mustSeq("3956:3958")), "COPYUID 38505 304,319:320 3956:3958"},
		{CodeUIDNotSticky, "UIDNOTSTICKY"}, {CodeHighestModSeq(715194045007), "HIGHESTMODSEQ 715194045007"}, {CodeNoModSeq, "NOMODSEQ"},
		{CodeModified(mustSeq("7,9")), "MODIFIED 7,9"}, {CodeClosed, "CLOSED"}, {CodeNotSaved, "NOTSAVED"}, {CodeUnavailable, "UNAVAILABLE"},
		{CodeAuthenticationFailed, "AUTHENTICATIONFAILED"}, {CodeAuthorizationFailed, "AUTHORIZATIONFAILED"}, {CodeExpired, "EXPIRED"},
		{CodePrivacyRequired, "PRIVACYREQUIRED"}, {CodeContactAdmin, "CONTACTADMIN"}, {CodeNoPerm, "NOPERM"}, {CodeInUse, "INUSE"},
		{CodeExpungeIssued, "EXPUNGEISSUED"}, {CodeCorruption, "CORRUPTION"}, {CodeServerBug, "SERVERBUG"}, {CodeClientBug, "CLIENTBUG"},
		{CodeCannot, "CANNOT"}, {CodeLimit, "LIMIT"}, {CodeOverQuota, "OVERQUOTA"}, {CodeAlreadyExists, "ALREADYEXISTS"},
		{CodeNonExistent, "NONEXISTENT"}, {CodeTooBig, "TOOBIG"}, {CodeCompressionActive, "COMPRESSIONACTIVE"}, {CodeUseAttr, "USEATTR"},
		{CodeHasChildren, "HASCHILDREN"}, {CodeUnknownCTE, "UNKNOWN-CTE"},
	} {
		got, err := encode(t, false, func(e *Encoder) error { return e.Tagged("t", NO, tc.code, "x") })
		if want := "t NO [" + tc.want + "] x\r\n"; err != nil || got != want {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
	}
}

func TestEncoderRejects(t *testing.T) {
	for name, f := range map[string]func(e *Encoder) error{
		"tag with space":     func(e *Encoder) error { return e.Tagged("a b", OK, "", "x") },
		"empty tag":          func(e *Encoder) error { return e.Tagged("", OK, "", "x") },
		"tagged BYE":         func(e *Encoder) error { return e.Tagged("a", BYE, "", "x") },
		"code with bracket":  func(e *Encoder) error { return e.Untagged(OK, "X]Y", "x") },
		"code with CRLF":     func(e *Encoder) error { return e.Untagged(OK, "X\r\nY", "x") },
		"bad status":         func(e *Encoder) error { return e.Untagged("MAYBE", "", "x") },
		"flag with space":    func(e *Encoder) error { return e.Flags(`\Seen`, "a b") },
		"bare star flag":     func(e *Encoder) error { return e.Flags("*") },
		"expunge 0":          func(e *Encoder) error { return e.Expunge(0) },
		"vanished star":      func(e *Encoder) error { return e.Vanished(mustSeq("1:*"), false) },
		"esearch $":          func(e *Encoder) error { return e.ESearch(ESearchData{Return: ReturnAll, All: SeqSet{Saved: true}}) },
		"status bad item":    func(e *Encoder) error { return e.MailboxStatus("a", []StatusValue{{Item: "FOO"}}) },
		"status NIL":         func(e *Encoder) error { return e.MailboxStatus("a", []StatusValue{{Item: StatusMessages, Nil: true}}) },
		"list 8-bit delim":   func(e *Encoder) error { return e.List(ListData{Delim: 'ü', Mailbox: "a"}) },
		"raw CRLF":           func(e *Encoder) error { return e.Raw("A\r\n* B") },
		"quota bad resource": func(e *Encoder) error { return e.Quota("", []QuotaResource{{"A B", 1, 2}}) },
		"fetch seq 0":        func(e *Encoder) error { fw := e.Fetch(0); fw.UID(1); return fw.Close() },
		"fetch no items":     func(e *Encoder) error { return e.Fetch(1).Close() },
		"fetch uid 0":        func(e *Encoder) error { fw := e.Fetch(1); fw.UID(0); return fw.Close() },
		"fetch modseq 0":     func(e *Encoder) error { fw := e.Fetch(1); fw.ModSeq(0); return fw.Close() },
		"fetch modseq 2^63":  func(e *Encoder) error { fw := e.Fetch(1); fw.ModSeq(1 << 63); return fw.Close() },
		"fetch not a section": func(e *Encoder) error {
			fw := e.Fetch(1)
			fw.Section(FetchItem{Attr: FetchUID}, nil)
			return fw.Close()
		},
	} {
		got, err := encode(t, false, f)
		if err == nil {
			t.Errorf("%s: accepted, wrote %q", name, got)
		}
		if strings.Contains(got, "\r\n") && !strings.HasPrefix(name, "fetch") {
			t.Errorf("%s: wrote %q despite the error", name, got)
		}
	}
	// A short reader breaks a streamed literal: the error says so.
	_, err := encode(t, false, func(e *Encoder) error {
		fw := e.Fetch(1)
		fw.SectionReader(FetchItem{Attr: FetchBodySection}, 100, strings.NewReader("short"))
		return fw.Close()
	})
	if err == nil || !errors.Is(err, io.EOF) {
		t.Errorf("short literal: %v", err)
	}
}

func TestFetchItemNames(t *testing.T) {
	for _, tc := range []struct {
		it         FetchItem
		req, resp  string
		sectionStr string
	}{
		{FetchItem{Attr: FetchBodySection, Peek: true, Section: Section{Spec: SpecHeaderFields, Fields: []string{"From", "X Y"}}, Partial: &Partial{0, 1024}},
			`BODY.PEEK[HEADER.FIELDS (From "X Y")]<0.1024>`, `BODY[HEADER.FIELDS (From "X Y")]<0>`, `HEADER.FIELDS (From "X Y")`},
		{FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{1, 2, 3}, Spec: SpecMIME}}, "BODY[1.2.3.MIME]", "BODY[1.2.3.MIME]", "1.2.3.MIME"},
		{FetchItem{Attr: FetchBodySection, Section: Section{Part: []int{4}, Spec: SpecHeaderFieldsNot, Fields: []string{"Received"}}},
			"BODY[4.HEADER.FIELDS.NOT (Received)]", "BODY[4.HEADER.FIELDS.NOT (Received)]", "4.HEADER.FIELDS.NOT (Received)"},
		{FetchItem{Attr: FetchBinary, Peek: true, Section: Section{Part: []int{1}}}, "BINARY.PEEK[1]", "BINARY[1]", "1"},
		{FetchItem{Attr: FetchBinarySize}, "BINARY.SIZE[]", "BINARY.SIZE[]", ""},
		{FetchItem{Attr: FetchRFC822Text}, "RFC822.TEXT", "RFC822.TEXT", ""},
	} {
		if got := tc.it.String(); got != tc.req {
			t.Errorf("String: %q, want %q", got, tc.req)
		}
		if got := tc.it.ResponseName(); got != tc.resp {
			t.Errorf("ResponseName: %q, want %q", got, tc.resp)
		}
		if got := tc.it.Section.String(); got != tc.sectionStr {
			t.Errorf("Section.String: %q, want %q", got, tc.sectionStr)
		}
		// Decode(String) gives the item back.
		c, err := decodeOne(t, "a FETCH 1 ("+tc.it.String()+")\r\n")
		if err != nil || len(c.Fetch.Items) != 1 || c.Fetch.Items[0].String() != tc.req {
			t.Errorf("%s does not decode back: %v %v", tc.req, c, err)
		}
	}
}

func TestSearchKeyString(t *testing.T) {
	// Decode(String) of search keys, including values that need quoting or a literal.
	keys := []SearchKey{
		{Op: SearchSubject, Value: "hello world"},
		{Op: SearchText, Value: "line\r\nbreak"},
		{Op: SearchFrom, Value: ""},
		{Op: SearchHeader, Field: "X-Spam", Value: "NIL"},
		{Op: SearchOr, Keys: []SearchKey{{Op: SearchSeen}, {Op: SearchNot, Keys: []SearchKey{{Op: SearchUID, Seq: mustSeq("1:*")}}}}},
		{Op: SearchSentSince, Date: day(5, 1, 2)},
		{Op: SearchModSeq, ModSeqEntry: `/flags/\seen`, ModSeqType: "priv", Number: 0},
	}
	want := []string{`SUBJECT "hello world"`, "TEXT {11+}\r\nline\r\nbreak", `FROM ""`, `HEADER X-Spam "NIL"`, "OR SEEN NOT UID 1:*",
		"SENTSINCE 2-Jan-0005", `MODSEQ "/flags/\\seen" priv 0`}
	for i, k := range keys {
		if got := k.String(); got != want[i] {
			t.Errorf("String: %q, want %q", got, want[i])
		}
		c, err := decodeOne(t, "a SEARCH "+k.String()+"\r\n")
		if err != nil || len(c.Search.Keys) != 1 || c.Search.Keys[0].String() != want[i] {
			t.Errorf("%q does not decode back: %v %v", want[i], c, err)
		}
	}
}
