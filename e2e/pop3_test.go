package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"posta/internal/mailstore"
	"posta/internal/postatest"
)

// startPOP3 starts a whole Posta; its pop3 and pop3s listeners are the
// built-in ones.
func startPOP3(t *testing.T, opts ...postatest.Option) *postatest.Instance {
	t.Helper()
	return postatest.Start(t, opts...)
}

// Messages delivered over SMTP for the POP3 tests: dot-stuffing on both
// sides, 8-bit text, a long body.
var pop3Mail = []string{
	"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: first\r\n\r\nHello Bob.\r\n",
	eightBit,
	"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: long\r\n\r\n" +
		strings.Repeat("A line of the long body, seventy-odd octets of plain text here.\r\n.\r\n", 3000),
}

// deliverSMTP sends each body to bob over the MX port with go-smtp's client
// and returns the messages as stored (Return-Path and Received added).
func deliverSMTP(t *testing.T, in *postatest.Instance, bodies ...string) [][]byte {
	t.Helper()
	c, err := gosmtp.Dial(in.Addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range bodies {
		if err := c.SendMail("sender@remote.test", []string{"bob@example.test"}, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := in.WaitMessages(t, "bob@example.test", "INBOX", len(bodies))
	for i, m := range msgs {
		if _, rest := stored(t, m); string(rest) != bodies[i] {
			t.Fatalf("message %d stored as %q", i, rest)
		}
	}
	return msgs
}

func curlRun(t *testing.T, in *postatest.Instance, args ...string) (string, error) {
	t.Helper()
	curl := requireTool(t, "curl")
	cmd := exec.Command(curl, append([]string{"-sS", "--cacert", in.CertFile(), "--max-time", "30"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestCurlPOP3(t *testing.T) {
	requireTool(t, "curl")
	in := startPOP3(t)
	msgs := deliverSMTP(t, in, pop3Mail...)
	pop3 := fmt.Sprintf("pop3://localhost:%d/", in.Port(t, "pop3"))
	pop3s := fmt.Sprintf("pop3s://localhost:%d/", in.Port(t, "pop3s"))
	user := "bob@example.test:" + postatest.Users["bob@example.test"]

	// LIST over STLS, TLS required: sizes are the stored octets.
	out, err := curlRun(t, in, "--ssl-reqd", "-u", user, pop3)
	if err != nil {
		t.Fatalf("curl LIST: %v\n%s", err, out)
	}
	var want strings.Builder
	for i, m := range msgs {
		fmt.Fprintf(&want, "%d %d\r\n", i+1, len(m))
	}
	if out != want.String() {
		t.Fatalf("LIST: %q, want %q", out, want.String())
	}
	// RETR over implicit TLS: byte-exact, dot-stuffing undone by curl.
	for i, m := range msgs {
		out, err := curlRun(t, in, "-u", user, pop3s+fmt.Sprint(i+1))
		if err != nil {
			t.Fatalf("curl RETR %d: %v\n%s", i+1, err, out)
		}
		if out != string(m) {
			t.Fatalf("RETR %d: got %d octets, want %d\n%q", i+1, len(out), len(m), out[:min(len(out), 300)])
		}
	}
	// UIDL: stable ids, the same on both ports.
	u1, err := curlRun(t, in, "--ssl-reqd", "-u", user, "-X", "UIDL", pop3)
	if err != nil {
		t.Fatalf("curl UIDL: %v\n%s", err, u1)
	}
	u2, _ := curlRun(t, in, "-u", user, "-X", "UIDL", pop3s)
	lines := strings.Split(strings.TrimSuffix(u1, "\r\n"), "\r\n")
	if u1 != u2 || len(lines) != 3 || !strings.HasPrefix(lines[0], "1 ") || len(lines[0]) != 2+16 {
		t.Fatalf("UIDL %q / %q", u1, u2)
	}
	// TOP 1 0: the header and the blank line.
	out, err = curlRun(t, in, "-u", user, "-X", "TOP 1 0", pop3s)
	if err != nil {
		t.Fatalf("curl TOP: %v\n%s", err, out)
	}
	head, _, _ := strings.Cut(string(msgs[0]), "\r\n\r\n")
	if out != head+"\r\n\r\n" {
		t.Fatalf("TOP 1 0: %q, want %q", out, head+"\r\n\r\n")
	}
	// A wrong password: curl's login failure (67).
	out, err = curlRun(t, in, "--ssl-reqd", "-u", "bob@example.test:wrong", pop3)
	if exitCode(err) != 67 {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}
	// Without TLS no login is offered: curl cannot log in, and never sent
	// the password.
	out, err = curlRun(t, in, "-u", user, pop3)
	if err == nil {
		t.Fatalf("plaintext login accepted: %s", out)
	}
	// DELE (curl sends QUIT after it): gone from the shared store.
	out, err = curlRun(t, in, "-u", user, "-X", "DELE", "-I", pop3s+"2")
	if err != nil {
		t.Fatalf("curl DELE: %v\n%s", err, out)
	}
	left := in.Messages(t, "bob@example.test", "INBOX")
	if len(left) != 2 || !bytes.Equal(left[0], msgs[0]) || !bytes.Equal(left[1], msgs[2]) {
		t.Fatalf("after DELE: %d messages", len(left))
	}
	// The RETRs marked the messages \Seen.
	mb, err := in.Mail.Mailbox(t.Context(), "bob@example.test", "INBOX")
	if err != nil || mb.Unseen != 0 {
		t.Fatalf("unseen %d, %v", mb.Unseen, err)
	}
}

const poplibScript = `
import json, poplib, ssl, sys
port, port_s, cafile, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
out = {}

def err_of(f):
    try:
        f()
    except poplib.error_proto as e:
        return e.args[0].decode()
    return None

p = poplib.POP3("localhost", port, timeout=30)
out["welcome"] = p.getwelcome().decode()
out["capa_plain"] = sorted(p.capa().keys())
out["user_plain"] = err_of(lambda: p.user(user))
p.stls(ctx)
out["capa"] = {k: v for k, v in p.capa().items()}
out["bad_pass"] = err_of(lambda: (p.user(user), p.pass_("wrong")))
p.user(user)
out["login"] = p.pass_(password).decode()

# A second session meanwhile: IN-USE (RFC 2449 8.1.2).
q = poplib.POP3_SSL("localhost", port_s, context=ctx, timeout=30)
q.user(user)
out["in_use"] = err_of(lambda: q.pass_(password))
q.quit()

out["stat"] = list(p.stat())
resp, lines, octets = p.list()
out["list"] = [l.decode() for l in lines]
resp, lines, octets = p.uidl()
out["uidl"] = [l.decode() for l in lines]
resp, lines, octets = p.top(1, 0)
out["top"] = [l.decode() for l in lines]
out["retr"] = []
for i in range(1, len(out["list"]) + 1):
    resp, lines, octets = p.retr(i)
    out["retr"].append({"resp": resp.decode(), "octets": octets, "body": (b"\r\n".join(lines) + b"\r\n").decode("utf-8")})
p.dele(1)
p.dele(2)
out["stat_after_dele"] = list(p.stat())
p.rset()
out["stat_after_rset"] = list(p.stat())
p.dele(2)
out["quit"] = p.quit().decode()

# A session that deletes and drops the connection without QUIT deletes
# nothing (RFC 1939 6).
d = poplib.POP3_SSL("localhost", port_s, context=ctx, timeout=30)
d.user(user)
d.pass_(password)
d.dele(1)
d.sock.close()

print(json.dumps(out))
`

// TestPythonPoplib drives both listeners with Python's poplib: STLS, CAPA,
// login failures, STAT/LIST/UIDL/TOP/RETR of SMTP-delivered mail (byte for
// byte), DELE+RSET, DELE+QUIT, IN-USE, a dropped session; and checks that the
// deletion reaches the store and its change feed (what IMAP sessions see).
func TestPythonPoplib(t *testing.T) {
	py := requireTool(t, "python3")
	in := startPOP3(t)
	msgs := deliverSMTP(t, in, pop3Mail...)
	mb, err := in.Mail.Mailbox(t.Context(), "bob@example.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	before, err := in.Mail.Messages(t.Context(), mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	sub := in.Mail.Subscribe("bob@example.test")
	defer sub.Close()

	script := filepath.Join(t.TempDir(), "pop.py")
	if err := os.WriteFile(script, []byte(poplibScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, fmt.Sprint(in.Port(t, "pop3")), fmt.Sprint(in.Port(t, "pop3s")), in.CertFile(),
		"bob@example.test", postatest.Users["bob@example.test"])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var out struct {
		Welcome    string              `json:"welcome"`
		CapaPlain  []string            `json:"capa_plain"`
		UserPlain  *string             `json:"user_plain"`
		Capa       map[string][]string `json:"capa"`
		BadPass    *string             `json:"bad_pass"`
		Login      string              `json:"login"`
		InUse      *string             `json:"in_use"`
		Stat       []int               `json:"stat"`
		List, UIDL []string
		Top        []string `json:"top"`
		Retr       []struct {
			Resp   string `json:"resp"`
			Octets int    `json:"octets"`
			Body   string `json:"body"`
		} `json:"retr"`
		StatAfterDele []int  `json:"stat_after_dele"`
		StatAfterRset []int  `json:"stat_after_rset"`
		Quit          string `json:"quit"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("python output %q: %v", stdout, err)
	}
	total := 0
	for _, m := range msgs {
		total += len(m)
	}
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %+v", what, out)
		}
	}
	check("welcome", out.Welcome == "+OK mail.example.test Posta POP3 server ready")
	check("CAPA before STLS", slices.Contains(out.CapaPlain, "STLS") && !slices.Contains(out.CapaPlain, "USER") &&
		!slices.Contains(out.CapaPlain, "SASL"))
	check("USER before STLS", out.UserPlain != nil && *out.UserPlain == "-ERR Authentication requires TLS: use STLS first")
	check("CAPA after STLS", slices.Equal(out.Capa["SASL"], []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"}) &&
		slices.Equal(out.Capa["EXPIRE"], []string{"NEVER"}) && out.Capa["USER"] != nil && out.Capa["RESP-CODES"] != nil &&
		out.Capa["STLS"] == nil)
	check("wrong password", out.BadPass != nil && *out.BadPass == "-ERR [AUTH] Authentication failed")
	check("login", out.Login == fmt.Sprintf("+OK Logged in, 3 messages (%d octets)", total))
	check("IN-USE", out.InUse != nil && strings.HasPrefix(*out.InUse, "-ERR [IN-USE] "))
	check("STAT", slices.Equal(out.Stat, []int{3, total}))
	for i, m := range msgs {
		check(fmt.Sprintf("LIST %d", i+1), out.List[i] == fmt.Sprintf("%d %d", i+1, len(m)))
		check(fmt.Sprintf("UIDL %d", i+1), out.UIDL[i] == fmt.Sprintf("%d %08X%08X", i+1, before[i].UID, mb.UIDValidity))
		r := out.Retr[i]
		// poplib's octet count is what it received after un-stuffing:
		// exactly LIST's size.
		check(fmt.Sprintf("RETR %d", i+1), r.Resp == fmt.Sprintf("+OK %d octets", len(m)) && r.Octets == len(m) &&
			r.Body == string(m))
	}
	head, _, _ := strings.Cut(string(msgs[0]), "\r\n\r\n")
	check("TOP", strings.Join(out.Top, "\r\n") == head+"\r\n")
	check("STAT after DELE", slices.Equal(out.StatAfterDele, []int{1, len(msgs[2])}))
	check("STAT after RSET", slices.Equal(out.StatAfterRset, []int{3, total}))
	check("QUIT", out.Quit == "+OK Bye, 1 messages deleted")

	// Only message 2 is gone from the store; the dropped session deleted
	// nothing (once the maildrop can be locked again, its end is complete).
	waitMaildropFree(t, in, "bob@example.test")
	left := in.Messages(t, "bob@example.test", "INBOX")
	if len(left) != 2 || !bytes.Equal(left[0], msgs[0]) || !bytes.Equal(left[1], msgs[2]) {
		t.Fatalf("INBOX holds %d messages", len(left))
	}
	// The change feed carried the expunge: what IMAP sessions will see.
	var expunged []uint32
	deadline := time.Now().Add(10 * time.Second)
	for len(expunged) == 0 {
		select {
		case <-sub.C:
		case <-time.After(time.Until(deadline)):
			t.Fatal("no Expunged change on the feed")
		}
		changes, _ := sub.Take()
		for _, ch := range changes {
			if ch.Kind == mailstore.Expunged && ch.Mailbox == mb.ID {
				expunged = append(expunged, ch.UIDs...)
			}
		}
	}
	if !slices.Equal(expunged, []uint32{before[1].UID}) {
		t.Fatalf("expunged %v, want [%d]", expunged, before[1].UID)
	}
	// Every RETR'd message is \Seen, the deleted one included (it is gone).
	after, _ := in.Mail.Messages(t.Context(), mb.ID)
	for _, m := range after {
		if m.Flags.System&mailstore.Seen == 0 {
			t.Errorf("message %d not \\Seen after RETR", m.UID)
		}
	}
}

// waitMaildropFree polls until a POP3 login of user succeeds, that is until
// no other session holds its maildrop ([IN-USE], RFC 2449 8.1.2).
func waitMaildropFree(t *testing.T, in *postatest.Instance, user string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", in.Addr(t, "pop3s"), in.ClientTLS())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n')
		fmt.Fprintf(c, "USER %s\r\nPASS %s\r\n", user, postatest.Users[user])
		r.ReadString('\n')
		reply, err := r.ReadString('\n')
		if err == nil && strings.HasPrefix(reply, "+OK") {
			fmt.Fprintf(c, "QUIT\r\n")
			r.ReadString('\n')
			c.Close()
			return
		}
		c.Close()
		if !strings.HasPrefix(reply, "-ERR [IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("login of %s: %q %v", user, reply, err)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}
