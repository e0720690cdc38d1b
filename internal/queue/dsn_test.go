package queue

import (
	"strings"
	"testing"
	"time"
)

func TestDSNStatus(t *testing.T) {
	for _, tc := range []struct {
		r    dsnRcpt
		want string
	}{
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Code: 550, Enhanced: "5.7.1"}}, "5.7.1"},
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Code: 550}}, "5.0.0"},
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Enhanced: "5.1.10"}}, "5.1.10"}, // null MX, RFC 7505 4.1
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Code: 550, Enhanced: "bogus"}}, "5.0.0"},
		// Expired: the last problem met, else X.4.7 (RFC 3463 3.5).
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Expired: true, Code: 452, Enhanced: "4.2.2"}}, "4.2.2"},
		{dsnRcpt{Action: "failed", RecipientStatus: RecipientStatus{Expired: true, Text: "connection refused"}}, "4.4.7"},
		{dsnRcpt{Action: "delayed", RecipientStatus: RecipientStatus{Code: 421}}, "4.0.0"},
		{dsnRcpt{Action: "relayed", RecipientStatus: RecipientStatus{Code: 250, Enhanced: "2.1.5"}}, "2.1.5"},
		{dsnRcpt{Action: "relayed", RecipientStatus: RecipientStatus{Code: 250}}, "2.0.0"},
	} {
		if got := dsnStatus(tc.r); got != tc.want {
			t.Errorf("dsnStatus(%+v) = %s; want %s", tc.r, got, tc.want)
		}
	}
}

// A remote reply cannot add fields to the report: CR and LF become spaces.
func TestDSNFieldsStayOneLine(t *testing.T) {
	in := dsnInput{Hostname: "mail.example.test", Now: t0, Msg: Message{MailFrom: "a@example.test", Created: t0},
		Recipients: []dsnRcpt{{Action: "failed", RecipientStatus: RecipientStatus{
			Recipient: Recipient{Address: "b@remote.test"}, Code: 550,
			Text: "no\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822; evil@x", RemoteMTA: "mx\r\nX: y"}}}}
	raw, err := buildDSN(in)
	if err != nil {
		t.Fatal(err)
	}
	d := parseDSN(t, raw)
	if len(d.Recipients) != 1 {
		t.Fatalf("%d recipient groups:\n%s", len(d.Recipients), raw)
	}
	wantFields(t, "DSN", d.Recipients[0], map[string]string{
		"Action": "failed", "Diagnostic-Code": "smtp; 550 no Action: delivered Final-Recipient: rfc822; evil@x",
		"Remote-MTA": "dns; mx X: y", "X": "",
	})
	if d.OrigType != "" {
		t.Fatalf("no original available, yet a third part %s", d.OrigType)
	}
}

// A message sent with SMTPUTF8 gets the RFC 6533 report types.
func TestDSNGlobal(t *testing.T) {
	body := "Subject: héllo\r\n\r\nbody\r\n"
	in := dsnInput{Hostname: "mail.example.test", Now: t0.Add(time.Hour),
		Msg: Message{MailFrom: "アリス@example.test", Created: t0, SMTPUTF8: true, Ret: "HDRS", Size: int64(len(body))},
		Recipients: []dsnRcpt{{Action: "failed", RecipientStatus: RecipientStatus{
			Recipient: Recipient{Address: "bøb@remote.test", ORCPT: "utf-8;bøb@remote.test"}, Text: "no MX answered"}}},
		Original: strings.NewReader(body)}
	raw, err := buildDSN(in)
	if err != nil {
		t.Fatal(err)
	}
	d := parseDSN(t, raw)
	if d.StatusType != "message/global-delivery-status" || d.OrigType != "message/global-headers" {
		t.Fatalf("types %s, %s", d.StatusType, d.OrigType)
	}
	wantFields(t, "DSN", d.Recipients[0], map[string]string{
		"Final-Recipient": "utf-8; bøb@remote.test", "Original-Recipient": "utf-8;bøb@remote.test",
		"Diagnostic-Code": "X-Posta; no MX answered", "Status": "5.0.0", "Remote-MTA": "",
	})
	if d.Orig != "Subject: héllo\r\n" {
		t.Fatalf("headers returned: %q", d.Orig)
	}
}
