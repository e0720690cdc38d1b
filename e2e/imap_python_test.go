package e2e

// Python's imaplib against the IMAP server: testdata/imap_imaplib.py runs
// a session over implicit TLS and one over STARTTLS and prints what it saw
// as JSON; this test checks it and the store afterwards.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"posta/internal/postatest"
)

// imapPyResult is an imaplib (typ, data) pair.
type imapPyResult struct {
	Typ  string
	Data []string
}

func (r *imapPyResult) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 2 {
		return fmt.Errorf("imaplib result %s: %v", b, err)
	}
	if err := json.Unmarshal(raw[0], &r.Typ); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &r.Data)
}

func TestIMAPPythonImaplib(t *testing.T) {
	py := requireTool(t, "python3")
	in := postatest.Start(t)
	m1 := "From: a@remote.test\r\nTo: bob@example.test\r\nSubject: first\r\n\r\nOne.\r\n"
	m2 := "From: b@remote.test\r\nTo: bob@example.test\r\nSubject: second\r\n\r\nTwo.\r\n"
	imapDeliver(t, in, imapBob, m1, 1)
	msgs := imapDeliver(t, in, imapBob, m2, 2)
	r := rawIMAPLogin(t, in, imapBob)
	st := imapStatus(t, r, "INBOX", "UIDVALIDITY")
	var list []string
	for _, u := range r.ok(`LIST "" *`) {
		list = append(list, strings.TrimPrefix(u, "LIST "))
	}
	r.ok("LOGOUT")

	cmd := exec.Command(py, "testdata/imap_imaplib.py", fmt.Sprint(in.Port(t, "imap")), fmt.Sprint(in.Port(t, "imaps")),
		in.CertFile(), imapBob, postatest.Users[imapBob])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var out struct {
		Welcome          string       `json:"welcome"`
		BadLogin         *string      `json:"bad_login"`
		Login            imapPyResult `json:"login"`
		Capability       imapPyResult `json:"capability"`
		List             imapPyResult `json:"list"`
		Select           imapPyResult `json:"select"`
		UIDValidity      []string     `json:"uidvalidity"`
		SearchSubject    imapPyResult `json:"search_subject"`
		SearchAll        imapPyResult `json:"search_all"`
		UIDSearchUnseen  imapPyResult `json:"uid_search_unseen"`
		Fetch            []struct{ Head, Body string }
		FlagsAfterPeek   []string     `json:"flags_after_peek"`
		FlagsAfterRFC822 []string     `json:"flags_after_rfc822"`
		Store            imapPyResult `json:"store"`
		Create           imapPyResult `json:"create"`
		Copy             imapPyResult `json:"copy"`
		StoreSilent      imapPyResult `json:"store_silent"`
		Expunge          imapPyResult `json:"expunge"`
		StatusKept       imapPyResult `json:"status_kept"`
		Close            imapPyResult `json:"close"`
		Logout           imapPyResult `json:"logout"`
		CapsPlain        []string     `json:"caps_plain"`
		LoginPlain       *string      `json:"login_plain"`
		StartTLS         imapPyResult `json:"starttls"`
		CapsTLS          []string     `json:"caps_tls"`
		LoginTLS         imapPyResult `json:"login_tls"`
		Examine          imapPyResult `json:"examine"`
		ExamineFetch     []string     `json:"examine_fetch"`
		LogoutTLS        imapPyResult `json:"logout_tls"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("python output %q: %v", stdout, err)
	}
	check := func(what string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %#v", what, got)
		}
	}
	ok := func(r imapPyResult, data ...string) bool { return r.Typ == "OK" && slices.Equal(r.Data, data) }
	okPrefix := func(r imapPyResult, prefix string) bool {
		return r.Typ == "OK" && len(r.Data) == 1 && strings.HasPrefix(r.Data[0], prefix)
	}

	check("welcome", strings.HasPrefix(out.Welcome, "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ") && strings.HasSuffix(out.Welcome, "] mail.example.test Posta IMAP ready"), out.Welcome)
	check("wrong password", out.BadLogin != nil && strings.Contains(*out.BadLogin, "[AUTHENTICATIONFAILED]"), out.BadLogin)
	check("login", okPrefix(out.Login, "[CAPABILITY IMAP4rev1 IMAP4rev2 "), out.Login)
	// imaplib collects the CAPABILITY of LOGIN's OK with the command's own.
	check("CAPABILITY", out.Capability.Typ == "OK" && len(out.Capability.Data) > 0 && !slices.ContainsFunc(out.Capability.Data,
		func(c string) bool { return !slices.Equal(imapCapsOf(t, "CAPABILITY "+c), imapCapsAuthed) }), out.Capability)
	check("LIST", ok(out.List, list...), out.List)
	check("SELECT", ok(out.Select, "2"), out.Select)
	check("UIDVALIDITY", slices.Equal(out.UIDValidity, []string{fmt.Sprint(st["UIDVALIDITY"])}), out.UIDValidity)
	check("SEARCH SUBJECT", ok(out.SearchSubject, "2"), out.SearchSubject)
	check("SEARCH ALL", ok(out.SearchAll, "1 2"), out.SearchAll)
	check("UID SEARCH UNSEEN", ok(out.UIDSearchUnseen, "1 2"), out.UIDSearchUnseen)
	check("FETCH count", len(out.Fetch) == 2, out.Fetch)
	for i, f := range out.Fetch {
		if i >= len(msgs) {
			break
		}
		body, _ := base64.StdEncoding.DecodeString(f.Body)
		check(fmt.Sprintf("FETCH %d head", i+1), f.Head == fmt.Sprintf("%d (UID %d RFC822.SIZE %d BODY[] {%d}", i+1, i+1, len(msgs[i]), len(msgs[i])), f.Head)
		check(fmt.Sprintf("FETCH %d body", i+1), bytes.Equal(body, msgs[i]), string(body))
	}
	check("FLAGS after BODY.PEEK", slices.Equal(out.FlagsAfterPeek, []string{"1 (FLAGS ())"}), out.FlagsAfterPeek)
	check("FETCH RFC822 sets \\Seen", len(out.FlagsAfterRFC822) == 2 && out.FlagsAfterRFC822[0] == fmt.Sprintf("2 (RFC822 {%d}", len(msgs[1])) &&
		out.FlagsAfterRFC822[1] == ` FLAGS (\Seen))`, out.FlagsAfterRFC822)
	check("STORE", ok(out.Store, `1 (FLAGS (\Flagged $Label))`), out.Store)
	check("CREATE", out.Create.Typ == "OK", out.Create)
	check("COPY", okPrefix(out.Copy, "[COPYUID "), out.Copy)
	check("STORE .SILENT", ok(out.StoreSilent), out.StoreSilent)
	check("EXPUNGE", ok(out.Expunge, "2"), out.Expunge)
	check("STATUS Kept", ok(out.StatusKept, `Kept (MESSAGES 2 UNSEEN 1)`), out.StatusKept)
	check("CLOSE", out.Close.Typ == "OK", out.Close)
	check("LOGOUT", out.Logout.Typ == "BYE", out.Logout)

	check("capabilities before STARTTLS", slices.Contains(out.CapsPlain, "STARTTLS") && slices.Contains(out.CapsPlain, "LOGINDISABLED") &&
		!slices.ContainsFunc(out.CapsPlain, func(c string) bool { return strings.HasPrefix(c, "AUTH=") }), out.CapsPlain)
	check("LOGIN before STARTTLS", out.LoginPlain != nil && strings.Contains(*out.LoginPlain, "[PRIVACYREQUIRED]"), out.LoginPlain)
	check("STARTTLS", out.StartTLS.Typ == "OK", out.StartTLS)
	check("capabilities after STARTTLS", !slices.Contains(out.CapsTLS, "STARTTLS") && !slices.Contains(out.CapsTLS, "LOGINDISABLED") &&
		slices.Contains(out.CapsTLS, "AUTH=PLAIN"), out.CapsTLS)
	check("LOGIN after STARTTLS", out.LoginTLS.Typ == "OK", out.LoginTLS)
	check("EXAMINE", ok(out.Examine, "1"), out.Examine)
	check("FETCH after EXPUNGE", slices.Equal(out.ExamineFetch, []string{`1 (UID 1 FLAGS (\Flagged $Label))`}), out.ExamineFetch)
	check("LOGOUT after STARTTLS", out.LogoutTLS.Typ == "BYE", out.LogoutTLS)

	// The store agrees: INBOX keeps message 1, Kept has both.
	if got := in.Messages(t, imapBob, "INBOX"); len(got) != 1 || !bytes.Equal(got[0], msgs[0]) {
		t.Errorf("INBOX in the store: %d messages", len(got))
	}
	if got := in.Messages(t, imapBob, "Kept"); len(got) != 2 || !bytes.Equal(got[0], msgs[0]) || !bytes.Equal(got[1], msgs[1]) {
		t.Errorf("Kept in the store: %d messages", len(got))
	}
}
