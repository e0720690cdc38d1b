package smtpserver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"posta/internal/delivery"
	"posta/internal/sasl"
)

var receivedAt = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

func TestReceivedHeader(t *testing.T) {
	base := func() *delivery.Envelope {
		return &delivery.Envelope{
			HELO: "client.example.net", RemoteHost: "ptr.example.net", RemoteIP: netip.MustParseAddr("192.0.2.7"),
			ESMTP: true, ID: "abc123", ReceivedAt: receivedAt,
			Recipients: []delivery.Recipient{{Address: "bob@example.test"}},
		}
	}
	cases := []struct {
		name string
		mod  func(*delivery.Envelope)
		want string
	}{
		{"ESMTP", func(*delivery.Envelope) {},
			"Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"ESMTPSA with TLS comment, two recipients", func(e *delivery.Envelope) {
			e.TLS, e.Auth, e.Account = "TLS1.3 TLS_AES_128_GCM_SHA256", true, "alice@example.test"
			e.Recipients = append(e.Recipients, delivery.Recipient{Address: "carol@example.test"})
		}, "Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\t(using TLS1.3)\r\n\tby mail.example.test with ESMTPSA id abc123\r\n\ttls TLS_AES_128_GCM_SHA256; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"HELO, no rDNS, IPv6", func(e *delivery.Envelope) {
			e.ESMTP, e.RemoteHost, e.RemoteIP = false, "", netip.MustParseAddr("2001:db8::1")
		}, "Received: from client.example.net (unknown [IPv6:2001:db8::1])\r\n\tby mail.example.test with SMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"v4-mapped shown as IPv4", func(e *delivery.Envelope) { e.RemoteIP = netip.MustParseAddr("::ffff:192.0.2.9") },
			"Received: from client.example.net (ptr.example.net [192.0.2.9])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"injection in HELO", func(e *delivery.Envelope) { e.HELO = "evil\r\nX-Injected: yes" },
			"Received: from evil??X-Injected:?yes (ptr.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"comment breakers in HELO", func(e *delivery.Envelope) { e.HELO = "a(b)c;d\\e" },
			"Received: from a?b?c?d?e (ptr.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"address literal HELO kept", func(e *delivery.Envelope) { e.HELO = "[192.0.2.7]" },
			"Received: from [192.0.2.7] (ptr.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"bad rDNS dropped", func(e *delivery.Envelope) { e.RemoteHost = "x\r\ny" },
			"Received: from client.example.net (unknown [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"UTF8SMTPSA", func(e *delivery.Envelope) {
			e.SMTPUTF8, e.TLS, e.Auth = true, "TLS1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", true
			e.Recipients = []delivery.Recipient{{Address: "jörg@exämple.test"}}
		}, "Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\t(using TLS1.2)\r\n\tby mail.example.test with UTF8SMTPSA id abc123\r\n\tfor <jörg@exämple.test>\r\n\ttls TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"non-ASCII recipient without SMTPUTF8 omitted", func(e *delivery.Envelope) {
			e.Recipients = []delivery.Recipient{{Address: "jörg@example.test"}}
		}, "Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTP id abc123; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"ESMTPS", func(e *delivery.Envelope) { e.TLS = "TLS1.3 TLS_AES_256_GCM_SHA384" },
			"Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\t(using TLS1.3)\r\n\tby mail.example.test with ESMTPS id abc123\r\n\tfor <bob@example.test>\r\n\ttls TLS_AES_256_GCM_SHA384; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"unknown suite as hex, junk dropped", func(e *delivery.Envelope) { e.TLS = "TLS1.3 0x13FF" },
			"Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\t(using TLS1.3)\r\n\tby mail.example.test with ESMTPS id abc123\r\n\tfor <bob@example.test>\r\n\ttls 0x13FF; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
		{"cipher junk dropped from the clause", func(e *delivery.Envelope) { e.TLS = "TLS1.3 A;B" },
			"Received: from client.example.net (ptr.example.net [192.0.2.7])\r\n\t(using TLS1.3 with cipher A?B)\r\n\tby mail.example.test with ESMTPS id abc123\r\n\tfor <bob@example.test>; Tue, 04 Mar 2025 05:06:07 +0100\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base()
			tc.mod(e)
			if got := receivedHeader(e, testHostname); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestCheckMailbox(t *testing.T) {
	for _, tc := range []struct {
		addr string
		utf8 bool
		want error
	}{
		{"bob@example.test", false, nil},
		{"bob+tag@sub.example.test", false, nil},
		{"bob@[192.0.2.1]", false, nil},
		{"bob@[IPv6:2001:db8::1]", false, nil},
		{"bob@[IPv6:1.2.3.4]", false, errAddrSyntax},
		{"bob@[300.1.1.1]", false, errAddrSyntax},
		{"bob", false, errAddrSyntax},
		{"@example.test", false, errAddrSyntax},
		{"bob@", false, errAddrSyntax},
		{"bob@-example.test", false, errAddrSyntax},
		{"bob@example..test", false, errAddrSyntax},
		{"bob@exa mple.test", false, errAddrSyntax},
		{"b\rob@example.test", false, errAddrSyntax},
		{"bob@example.test\x00", false, errAddrSyntax},
		{strings.Repeat("a", 64) + "@example.test", false, nil},
		{strings.Repeat("a", 65) + "@example.test", false, errAddrSyntax},
		// RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets.
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 60), false, nil},
		{"ab@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 60), false, errAddrSyntax},
		{"jörg@example.test", false, errAddrNonASCII},
		{"jörg@exämple.test", true, nil},
		{"j\xffrg@example.test", true, errAddrSyntax},
	} {
		if got := checkMailbox(tc.addr, tc.utf8); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("checkMailbox(%q, %v) = %v, want %v", tc.addr, tc.utf8, got, tc.want)
		}
	}
}

// TestReplyFor checks the single mapping: every class its code, wrapped or
// not, and unknown errors a 451 without their text.
func TestReplyFor(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("layer: %w", fmt.Errorf("deeper: %w", err)) }
	for _, tc := range []struct {
		err      error
		code     int
		enh      smtp.EnhancedCode
		internal bool
	}{
		{delivery.ErrNoSuchUser, 550, smtp.EnhancedCode{5, 1, 1}, false},
		{delivery.ErrRelayDenied, 550, smtp.EnhancedCode{5, 7, 1}, false},
		{delivery.ErrBadAddress, 553, smtp.EnhancedCode{5, 1, 3}, false},
		{delivery.ErrMailboxFull, 452, smtp.EnhancedCode{4, 2, 2}, false},
		{delivery.ErrQuotaExceeded, 552, smtp.EnhancedCode{5, 2, 2}, false},
		{delivery.ErrSenderNotOwned, 550, smtp.EnhancedCode{5, 7, 1}, false},
		{delivery.ErrMessageTooBig, 552, smtp.EnhancedCode{5, 3, 4}, false},
		{delivery.ErrDMARCReject, 550, smtp.EnhancedCode{5, 7, 1}, false},
		{&delivery.DMARCRejectError{Reason: "dmarc fail for rj.test"}, 550, smtp.EnhancedCode{5, 7, 1}, false},
		{smtp.ErrDataTooLarge, 552, smtp.EnhancedCode{5, 3, 4}, false},
		{sasl.ErrInvalidCredentials, 535, smtp.EnhancedCode{5, 7, 8}, false},
		{sasl.ErrBindingMismatch, 535, smtp.EnhancedCode{5, 7, 8}, false},
		{sasl.ErrMalformed, 501, smtp.EnhancedCode{5, 5, 2}, false},
		{sasl.ErrUnsupportedMechanism, 504, smtp.EnhancedCode{5, 5, 4}, false},
		{errBareLineEnding, 554, smtp.EnhancedCode{5, 6, 0}, false},
		{errAuthRequired, 530, smtp.EnhancedCode{5, 7, 0}, false},
		{&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "x"}, 554, smtp.EnhancedCode{5, 0, 0}, false},
		{errors.New("database is locked"), 451, smtp.EnhancedCode{4, 3, 0}, true},
	} {
		for _, err := range []error{tc.err, wrap(tc.err)} {
			r, internal := classify(err)
			if r.Code != tc.code || r.EnhancedCode != tc.enh || internal != tc.internal {
				t.Errorf("classify(%v) = %v %v internal=%v, want %d %v internal=%v", err, r.Code, r.EnhancedCode, internal,
					tc.code, tc.enh, tc.internal)
			}
			if tc.internal && strings.Contains(r.Message, "database") {
				t.Errorf("internal text in reply: %q", r.Message)
			}
		}
	}
	// The DMARC reason is shown, on one line of printable ASCII: its
	// domain comes from the message's From field.
	r := replyFor(fmt.Errorf("deliver: %w", &delivery.DMARCRejectError{Reason: "dmarc fail for \xc3\xa9vil.test\r\n250 ok: policy reject"}))
	if r.Message != "dmarc fail for ?vil.test??250 ok: policy reject" {
		t.Errorf("DMARC reject text %q", r.Message)
	}
	if replyFor(nil) != nil {
		t.Error("replyFor(nil) != nil")
	}
}

// checkReceived is the header-injection property the fuzzer checks: line
// breaks only where the builder folds, no control characters, bounded
// lines, UTF-8 only when the message is SMTPUTF8.
func checkReceived(t *testing.T, h string, utf8OK bool) {
	t.Helper()
	if !strings.HasPrefix(h, "Received: from ") || !strings.HasSuffix(h, "\r\n") {
		t.Fatalf("malformed header %q", h)
	}
	lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
	for i, l := range lines {
		if i > 0 && !strings.HasPrefix(l, "\t") {
			t.Fatalf("line %d not folded: %q", i, h)
		}
		if len(l) > 998 {
			t.Fatalf("line longer than RFC 5322 2.1.1 allows: %q", h)
		}
		for _, r := range strings.TrimPrefix(l, "\t") {
			if r < ' ' || r == 0x7f {
				t.Fatalf("control character %U in %q", r, h)
			}
			if r >= 0x80 && !utf8OK {
				t.Fatalf("non-ASCII in a non-SMTPUTF8 header: %q", h)
			}
		}
	}
	if !utf8.ValidString(h) {
		t.Fatalf("invalid UTF-8: %q", h)
	}
	if strings.Count(h, ";") != 1 {
		t.Fatalf("the date separator must be the only ';': %q", h)
	}
}

func FuzzReceived(f *testing.F) {
	f.Add("client.example.net", "ptr.example.net", "bob@example.test", "TLS1.3 TLS_AES_128_GCM_SHA256", false, uint8(1))
	f.Add("evil\r\nX-Injected: yes", "x\ny", "a\r\n@b", "TLS1.3\r\nX: y", true, uint8(1))
	f.Add("[IPv6:::1]", "", "jörg@exämple.test", "", true, uint8(1))
	f.Add("a(b)c;d", "ptr.", "<x>@y", "a b c", false, uint8(2))
	f.Add(strings.Repeat("h", 2000), strings.Repeat("r", 300), strings.Repeat("x", 300)+"@y", "", false, uint8(1))
	f.Add("\xff\xfe", "\x00", "\xc3", "\u2028", true, uint8(1))
	f.Fuzz(func(t *testing.T, helo, rdns, rcpt, tlsDesc string, utf8OK bool, n uint8) {
		env := &delivery.Envelope{HELO: helo, RemoteHost: rdns, TLS: tlsDesc, SMTPUTF8: utf8OK, ESMTP: true,
			RemoteIP: netip.MustParseAddr("192.0.2.1"), ID: "id", ReceivedAt: receivedAt}
		for range n % 3 {
			env.Recipients = append(env.Recipients, delivery.Recipient{Address: rcpt})
		}
		checkReceived(t, receivedHeader(env, testHostname), utf8OK)
	})
}

func FuzzCheckMailbox(f *testing.F) {
	for _, s := range []string{"bob@example.test", "jörg@exämple.test", "a@[IPv6:::1]", "\"quoted local\"@x.y", "a\r\n@b",
		"@", "a@b@c", "x@[1.2.3.4]"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, addr string, utf8OK bool) {
		if checkMailbox(addr, utf8OK) != nil {
			return
		}
		if len(addr) > maxPath-2 || !strings.Contains(addr, "@") || !utf8.ValidString(addr) {
			t.Fatalf("accepted %q", addr)
		}
		for _, r := range addr {
			if r < ' ' || r == 0x7f || (r >= 0x80 && !utf8OK) {
				t.Fatalf("accepted %q with %U", addr, r)
			}
		}
		// What the RCPT hook accepts may go into a Received header unchanged.
		env := &delivery.Envelope{HELO: "h", RemoteIP: netip.MustParseAddr("192.0.2.1"), ID: "id", ReceivedAt: receivedAt,
			SMTPUTF8: utf8OK, Recipients: []delivery.Recipient{{Address: addr}}}
		checkReceived(t, receivedHeader(env, testHostname), utf8OK)
	})
}
