package imapwire

import "testing"

func TestUTF7(t *testing.T) {
	for _, tc := range []struct{ utf8, utf7 string }{
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, // RFC 3501 5.1.3
		{"&", "&-"},
		{"R&D", "R&-D"},
		{"", ""},
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"Été", "&AMk-t&AOk-"},
		{"☺&☺", "&Jjo-&-&Jjo-"},
		{"😀", "&2D3eAA-"}, // U+1F600 as a surrogate pair
		{"a\tb", "a&AAk-b"},
		{"日本語 Mail", "&ZeVnLIqe- Mail"},
	} {
		if got := EncodeUTF7(tc.utf8); got != tc.utf7 {
			t.Errorf("EncodeUTF7(%q) = %q, want %q", tc.utf8, got, tc.utf7)
		}
		if got, err := DecodeUTF7(tc.utf7); err != nil || got != tc.utf8 {
			t.Errorf("DecodeUTF7(%q) = %q, %v; want %q", tc.utf7, got, err, tc.utf8)
		}
	}
	for _, bad := range []string{
		"&",                  // no shift back
		"&U,BTFw",            // unterminated run
		"&AGE-",              // "a" encoded though it can represent itself
		"&ACY-",              // "&" encoded
		"&U,BTFw-&ZeVnLIqe-", // null shift: adjacent runs
		"&Jj-",               // an odd number of octets
		"&2D0-",              // lone high surrogate
		"&3gA-",              // lone low surrogate
		"&U,BTF/-",           // "/" is not modified BASE64
		"&AAA=-",             // padding
		"&Jjp-",              // non-zero padding bits
		"\x80",               // 8-bit
		"a\tb",               // a control character that must be encoded
		"&&-",                // "&" inside a run
		"&\r-",               // CR in a run (encoding/base64 skips CR and LF)
		"&Jj\no-",            // LF in a run
	} {
		if got, err := DecodeUTF7(bad); err == nil {
			t.Errorf("DecodeUTF7(%q) accepted: %q", bad, got)
		}
	}
	// Invalid UTF-8 input is encoded as U+FFFD.
	if got := EncodeUTF7("a\xffb"); got != "a&,,0-b" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func TestMailboxHelpers(t *testing.T) {
	if !IsInbox("iNbOx") || IsInbox("INBOX/x") || IsInbox("INBOXES") {
		t.Error("IsInbox")
	}
	if CanonicalMailbox("inbox") != "INBOX" || CanonicalMailbox("Inbox.Sent") != "Inbox.Sent" {
		t.Error("CanonicalMailbox")
	}
	for _, bad := range []string{"", "a\x00b", "a\x7fb", "a\u0085b", "a\u2028b", "\xff"} {
		if CheckMailboxName(bad) == nil {
			t.Errorf("CheckMailboxName(%q) accepted", bad)
		}
	}
	if err := CheckMailboxName("Entwürfe/台北"); err != nil {
		t.Error(err)
	}
}
