package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/mailauth"
)

const (
	ourHost = "mail.example.test" // the Verifier's authserv-id
	goodIP  = "192.0.2.10"        // authorized by every sending domain's SPF record
	badIP   = "198.51.100.66"     // authorized by none
)

// fakeDNS answers TXT queries from a map; everything else does not exist.
// Read-only once built (the DKIM library looks keys up in parallel).
type fakeDNS map[string][]string

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if t, ok := f[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return t, nil
	}
	return nil, notFound(name)
}

func (fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, notFound(name)
}
func (fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	return nil, notFound(host)
}
func (fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, notFound(addr)
}

var (
	keysOnce sync.Once
	keysVal  mailauth.Keys
	keysErr  error
)

// testKeys: one key pair for the test binary, RSA generation being slow.
func testKeys(t testing.TB) mailauth.Keys {
	t.Helper()
	keysOnce.Do(func() { keysVal, keysErr = mailauth.GenerateKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

// staticKeys is a KeySource with the same keys for every domain.
type staticKeys mailauth.Keys

func (s staticKeys) Get(context.Context, string) (mailauth.Keys, error) { return mailauth.Keys(s), nil }

// world publishes, for each sending domain, SPF authorizing goodIP, the
// DKIM keys of Records, and a DMARC policy: rj.test reject, qu.test
// quarantine.
func world(t testing.TB) fakeDNS {
	keys := testKeys(t)
	f := fakeDNS{}
	for d, policy := range map[string]string{"rj.test": "reject", "qu.test": "quarantine"} {
		f[d] = []string{"v=spf1 ip4:" + goodIP + " -all"}
		f["_dmarc."+d] = []string{"v=DMARC1; p=" + policy}
		for _, r := range mailauth.Records(d, "mx."+d, keys) {
			if r.Type == "TXT" && strings.Contains(r.Name, "._domainkey.") {
				f[strings.TrimSuffix(r.Name, ".")] = []string{r.Value}
			}
		}
	}
	return f
}

// withVerifier gives the fixture's Delivery a Verifier on the fake DNS.
func (f *fixture) withVerifier(t *testing.T, maxSize int64) *fixture {
	f.d = New(Options{Directory: f.dir, Store: f.store, Queue: f.queue, MaxSize: maxSize, SenderMustOwn: true,
		Verifier: &mailauth.Verifier{Hostname: ourHost, Resolver: world(t)}})
	return f
}

// signed returns msg with DKIM signatures of domain prepended.
func signed(t *testing.T, domain, msg string) string {
	t.Helper()
	sigs, err := mailauth.NewSigner(staticKeys(testKeys(t))).Sign(context.Background(), domain, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return string(sigs) + msg
}

// received is what the SMTP server puts above every message it passes on.
const received = "Received: from mx.sender.test ([198.51.100.66])\r\n\tby mail.example.test with ESMTP id abc; Mon, 13 Jul 2026 10:00:00 +0000\r\n"

func authorMessage(from, subject string) string {
	return "From: " + from + "\r\nTo: bob@example.test\r\nSubject: " + subject + "\r\n" +
		"Date: Mon, 13 Jul 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@sender.test>\r\n\r\nHello Bob.\r\n"
}

// mxEnv is unauthenticated mail on the MX listener.
func mxEnv(ip, from string, rcpts ...string) *Envelope {
	env := &Envelope{MailFrom: from, Listener: "smtp", RemoteIP: netip.MustParseAddr(ip), HELO: "mx.sender.test",
		ESMTP: true, ReceivedAt: time.Unix(1700000000, 0), ID: "t1"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, Recipient{Address: r})
	}
	return env
}

// mailbox returns the bodies stored in one mailbox of account.
func (f *fixture) mailbox(t *testing.T, account, name string) []string {
	t.Helper()
	mb, err := f.store.Mailbox(f.ctx, account, name)
	if err != nil {
		return nil
	}
	metas, err := f.store.Messages(f.ctx, mb.ID)
	must(t, err)
	var bodies []string
	for _, m := range metas {
		full, err := f.store.Message(f.ctx, mb.ID, m.UID)
		must(t, err)
		r, err := f.store.OpenBody(f.ctx, full.Body)
		must(t, err)
		b, _ := io.ReadAll(r)
		r.Close()
		bodies = append(bodies, string(b))
	}
	return bodies
}

// splitAR checks that stored starts with returnPath and then our
// Authentication-Results field, and returns that field and the rest.
func splitAR(t *testing.T, stored, returnPath string) (ar, rest string) {
	t.Helper()
	s, ok := strings.CutPrefix(stored, returnPath)
	if !ok {
		t.Fatalf("stored message does not start with %q: %.200q", returnPath, stored)
	}
	if !strings.HasPrefix(s, "Authentication-Results: "+ourHost+";") {
		t.Fatalf("no Authentication-Results of ours right after Return-Path: %.300q", s)
	}
	end := 0
	for {
		i := strings.Index(s[end:], "\r\n")
		if i < 0 {
			t.Fatalf("unterminated Authentication-Results: %.300q", s)
		}
		end += i + 2
		if end >= len(s) || s[end] != ' ' && s[end] != '\t' {
			return s[:end], s[end:]
		}
	}
}

// resultsOf returns the result words of method in an Authentication-Results
// field ("dkim=pass ..." -> "pass"), one per resinfo.
func resultsOf(ar, method string) []string {
	var out []string
	for _, part := range strings.Split(ar, ";") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, method+"="); ok {
			out = append(out, strings.Fields(v)[0])
		}
	}
	return out
}

func contains(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// blobFiles lists the files under the blob store, temp files included.
func (f *fixture) blobFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(f.store.Blobs().Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	must(t, err)
	return files
}

func TestMXPassGetsAuthenticationResults(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	// DKIM alone makes DMARC pass: the client IP is not in rj.test's SPF.
	msg := received + signed(t, "rj.test", authorMessage("News <news@rj.test>", "pass"))
	env := mxEnv(badIP, "news@rj.test", "alice@example.test")
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))

	inbox := f.mailbox(t, "alice@example.test", "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX has %d messages", len(inbox))
	}
	ar, rest := splitAR(t, inbox[0], "Return-Path: <news@rj.test>\r\n")
	if rest != msg {
		t.Fatalf("message after the header not stored byte-exact:\n%q\nwant\n%q", rest, msg)
	}
	if !contains(resultsOf(ar, "dkim"), "pass") || !contains(resultsOf(ar, "dmarc"), "pass") ||
		!contains(resultsOf(ar, "spf"), "fail") {
		t.Fatalf("Authentication-Results %q: want dkim=pass, dmarc=pass, spf=fail", ar)
	}
	if strings.Count(inbox[0], "Authentication-Results:") != 1 {
		t.Fatalf("more than one Authentication-Results: %q", inbox[0])
	}
}

func TestMXDMARCRejectStoresNothing(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	for _, size := range []int{0, 300 << 10} {
		// Unsigned, From rj.test, from an IP its SPF does not allow; to an
		// alias with local and remote members, so neither side may keep it.
		msg := received + authorMessage("Bank <security@rj.test>", "forged") + strings.Repeat("x", size)
		env := mxEnv(badIP, "security@rj.test", "team@example.test")
		err := f.d.Deliver(f.ctx, env, strings.NewReader(msg))
		var re *DMARCRejectError
		if !errors.Is(err, ErrDMARCReject) || !errors.As(err, &re) || !strings.Contains(re.Reason, "rj.test") {
			t.Fatalf("size %d: Deliver = %v, want a DMARCRejectError naming rj.test", size, err)
		}
		for _, acc := range []string{"alice@example.test", "bob@example.test"} {
			for _, mb := range []string{"INBOX", "Junk"} {
				if b := f.mailbox(t, acc, mb); len(b) != 0 {
					t.Fatalf("size %d: %s %s holds %d messages", size, acc, mb, len(b))
				}
			}
		}
		if qs, err := f.queue.List(f.ctx); err != nil || len(qs) != 0 {
			t.Fatalf("size %d: queued %+v, %v", size, qs, err)
		}
		if files := f.blobFiles(t); len(files) != 0 {
			t.Fatalf("size %d: files left in the blob store: %v", size, files)
		}
	}
}

func TestMXQuarantineGoesToJunk(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	// bob's \Junk mailbox is called Spam: the special use decides, not the name.
	must(t, f.store.EnsureAccount(f.ctx, "bob@example.test"))
	must(t, f.store.RenameMailbox(f.ctx, "bob@example.test", "Junk", "Spam"))
	msg := received + authorMessage("Promo <promo@qu.test>", "quarantine")
	env := mxEnv(badIP, "promo@qu.test", "team@example.test")
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))

	for acc, junk := range map[string]string{"alice@example.test": "Junk", "bob@example.test": "Spam"} {
		if b := f.mailbox(t, acc, "INBOX"); len(b) != 0 {
			t.Fatalf("%s INBOX holds %d messages", acc, len(b))
		}
		b := f.mailbox(t, acc, junk)
		if len(b) != 1 {
			t.Fatalf("%s %s holds %d messages", acc, junk, len(b))
		}
		ar, rest := splitAR(t, b[0], "Return-Path: <promo@qu.test>\r\n")
		if rest != msg || !contains(resultsOf(ar, "dmarc"), "fail") {
			t.Fatalf("%s: stored %q", acc, b[0])
		}
	}
	// The alias's remote member gets it as usual, our header included.
	qs, err := f.queue.List(f.ctx)
	must(t, err)
	if len(qs) != 1 || len(qs[0].Recipients) != 1 || qs[0].Recipients[0].Address != "partner@remote.test" {
		t.Fatalf("queue %+v", qs)
	}
	r, err := f.store.Blobs().Open(qs[0].Blob)
	must(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	queued := string(b[qs[0].BodyOffset:])
	if !strings.HasPrefix(queued, "Authentication-Results: "+ourHost+";") || !strings.HasSuffix(queued, msg) {
		t.Fatalf("queued body %q", queued)
	}
}

func TestMXForgedAuthenticationResultsRenamed(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	forged := []string{
		"Authentication-Results: mail.example.test; dkim=pass header.d=rj.test; dmarc=pass header.from=rj.test\r\n",
		// Another case, folded, with a comment and a version.
		"authentication-results :\r\n  (our server) MAIL.Example.Test. 1;\r\n\tspf=pass smtp.mailfrom=rj.test\r\n",
	}
	foreign := "Authentication-Results: mx.elsewhere.test; spf=pass smtp.mailfrom=qu.test\r\n"
	for _, size := range []int{0, 300 << 10} {
		body := "From: news@rj.test\r\n" + forged[0] + "Subject: forged results\r\n" + foreign + forged[1] +
			"\r\nbody\r\n" + strings.Repeat("Authentication-Results: mail.example.test; in the body, untouched\r\n", 1+size/70)
		msg := received + body
		env := mxEnv(goodIP, "news@rj.test", "bob@example.test")
		must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))
		inbox := f.mailbox(t, "bob@example.test", "INBOX")
		ar, rest := splitAR(t, inbox[len(inbox)-1], "Return-Path: <news@rj.test>\r\n")
		want := received + "From: news@rj.test\r\n" + "X-Original-" + forged[0] + "Subject: forged results\r\n" + foreign +
			"X-Original-Authentication-Results" + strings.TrimPrefix(forged[1], "authentication-results") +
			"\r\nbody\r\n" + strings.Repeat("Authentication-Results: mail.example.test; in the body, untouched\r\n", 1+size/70)
		if rest != want {
			t.Fatalf("size %d: stored\n%.600q\nwant\n%.600q", size, rest, want)
		}
		// SPF passes (good IP), so DMARC passes: the verdict is ours, not the forged one's.
		if !contains(resultsOf(ar, "dmarc"), "pass") || !contains(resultsOf(ar, "dkim"), "none") {
			t.Fatalf("size %d: header %q", size, ar)
		}
	}
}

func TestMXLargeMessage(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	line := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
	big := authorMessage("News <news@rj.test>", "large") + strings.Repeat(line, (300<<10)/len(line))
	msg := received + signed(t, "rj.test", big)
	env := mxEnv(badIP, "news@rj.test", "bob@example.test", "team@example.test")
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))

	mb, err := f.store.Mailbox(f.ctx, "bob@example.test", "INBOX")
	must(t, err)
	full, err := f.store.Message(f.ctx, mb.ID, 1)
	must(t, err)
	if strings.HasPrefix(string(full.Body), "i") {
		t.Fatalf("a %d-byte message was kept inline", len(msg))
	}
	for _, acc := range []string{"alice@example.test", "bob@example.test"} {
		inbox := f.mailbox(t, acc, "INBOX")
		if len(inbox) != 1 {
			t.Fatalf("%s INBOX holds %d messages", acc, len(inbox))
		}
		ar, rest := splitAR(t, inbox[0], "Return-Path: <news@rj.test>\r\n")
		if rest != msg {
			t.Fatalf("%s: large message not stored byte-exact after the header (%d bytes, want %d)", acc, len(rest), len(msg))
		}
		if !contains(resultsOf(ar, "dkim"), "pass") || !contains(resultsOf(ar, "dmarc"), "pass") {
			t.Fatalf("%s: header %q", acc, ar)
		}
		if full.Size != int64(len(inbox[0])) {
			t.Fatalf("size %d, body %d bytes", full.Size, len(inbox[0]))
		}
	}
	qs, err := f.queue.List(f.ctx)
	must(t, err)
	if len(qs) != 1 {
		t.Fatalf("queue %+v", qs)
	}
	r, err := f.store.Blobs().Open(qs[0].Blob)
	must(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	if queued := string(b[qs[0].BodyOffset:]); !strings.HasPrefix(queued, "Authentication-Results: ") || !strings.HasSuffix(queued, msg) {
		t.Fatal("queued large body differs")
	}
	// Only the committed body files remain: the scratch copy is gone.
	if files := f.blobFiles(t); len(files) != 2 {
		t.Fatalf("blob files %v, want the mailbox's and the queue's", files)
	}
}

func TestSubmissionNotChecked(t *testing.T) {
	f := newFixture(t).withVerifier(t, 1<<20)
	msg := received + authorMessage("Alice <alice@example.test>", "submitted")
	for _, listener := range []string{"submission", "submissions", "smtp"} {
		// AUTH on port 25 counts as submission too.
		env := &Envelope{MailFrom: "alice@example.test", Account: "alice@example.test", Auth: true, Listener: listener,
			RemoteIP: netip.MustParseAddr(badIP), Recipients: []Recipient{{Address: "bob@example.test"}}}
		must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))
	}
	inbox := f.mailbox(t, "bob@example.test", "INBOX")
	if len(inbox) != 3 {
		t.Fatalf("INBOX holds %d messages", len(inbox))
	}
	for _, b := range inbox {
		if b != "Return-Path: <alice@example.test>\r\n"+msg {
			t.Fatalf("submitted mail changed: %q", b)
		}
	}
}

func TestVerifierErrorStillDelivers(t *testing.T) {
	// A header section over mailauth's 1 MiB bound is an error, not a
	// verdict: the message is delivered, marked temperror, even from a
	// p=reject domain.
	f := newFixture(t).withVerifier(t, 4<<20)
	var hdr bytes.Buffer
	for hdr.Len() < 1100<<10 {
		hdr.WriteString("X-Filler: " + strings.Repeat("f", 70) + "\r\n")
	}
	msg := received + "From: ceo@rj.test\r\n" + hdr.String() + "\r\nbody\r\n"
	must(t, f.d.Deliver(f.ctx, mxEnv(badIP, "ceo@rj.test", "bob@example.test"), strings.NewReader(msg)))
	inbox := f.mailbox(t, "bob@example.test", "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX holds %d messages", len(inbox))
	}
	ar, rest := splitAR(t, inbox[0], "Return-Path: <ceo@rj.test>\r\n")
	if rest != msg || !contains(resultsOf(ar, "dmarc"), "temperror") {
		t.Fatalf("header %q, message intact %v", ar, rest == msg)
	}
}

func TestCopyHeader(t *testing.T) {
	long := strings.Repeat("v", 40<<10)
	huge := strings.Repeat("w", maxARField+10)
	for _, tc := range []struct{ name, in, want, body string }{
		{"plain", "A: 1\r\nB: 2\r\n\r\n", "A: 1\r\nB: 2\r\n\r\n", "rest\r\n"},
		{"ours", "Authentication-Results: mail.example.test; none\r\n\r\n",
			"X-Original-Authentication-Results: mail.example.test; none\r\n\r\n", "Authentication-Results: mail.example.test; x\r\n"},
		{"quoted", "AUTHENTICATION-RESULTS: \"mail.example.test\"; spf=pass\r\n\r\n",
			"X-Original-Authentication-Results: \"mail.example.test\"; spf=pass\r\n\r\n", ""},
		{"foreign", "Authentication-Results: mx.other.test; spf=pass (mail.example.test said so)\r\n\r\n",
			"Authentication-Results: mx.other.test; spf=pass (mail.example.test said so)\r\n\r\n", ""},
		{"not the field", "Authentication-Results-Extra: mail.example.test\r\nARC-Authentication-Results: i=1; mail.example.test; x\r\n\r\n",
			"Authentication-Results-Extra: mail.example.test\r\nARC-Authentication-Results: i=1; mail.example.test; x\r\n\r\n", ""},
		{"id on a continuation line", "X: 1\r\nAuthentication-Results:\r\n mail.example.test;\r\n dkim=pass\r\nY: 2\r\n\r\n",
			"X: 1\r\nX-Original-Authentication-Results:\r\n mail.example.test;\r\n dkim=pass\r\nY: 2\r\n\r\n", ""},
		{"long lines", "X: " + long + "\r\nAuthentication-Results: mail.example.test; dkim=pass " + long + "\r\n\r\n",
			"X: " + long + "\r\nX-Original-Authentication-Results: mail.example.test; dkim=pass " + long + "\r\n\r\n", ""},
		{"space before a cut colon", "Authentication-Results" + strings.Repeat(" ", 20<<10) + ": mail.example.test; x\r\n\r\n",
			"X-Original-Authentication-Results" + strings.Repeat(" ", 20<<10) + ": mail.example.test; x\r\n\r\n", ""},
		{"oversized field renamed", "Authentication-Results: mx.other.test; x=" + huge + "\r\n\tmore\r\n\r\n",
			"X-Original-Authentication-Results: mx.other.test; x=" + huge + "\r\n\tmore\r\n\r\n", ""},
		{"bare LF", "Authentication-Results: mail.example.test; x\nB: 2\n\n", "X-Original-Authentication-Results: mail.example.test; x\nB: 2\n\n", "b\n"},
		{"all header", "A: 1\r\nAuthentication-Results: mail.example.test; x", "A: 1\r\nX-Original-Authentication-Results: mail.example.test; x", ""},
		{"no header", "\r\n", "\r\n", "body\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := copyHeader(&out, strings.NewReader(tc.in+tc.body), ourHost)
			if err != nil || n != int64(len(tc.in)) || out.String() != tc.want {
				t.Fatalf("copyHeader = %d, %v:\n%.300q\nwant %d:\n%.300q", n, err, out.String(), len(tc.in), tc.want)
			}
		})
	}
}

// TestMXWithoutVerifier: no Verifier, no checks (the behaviour before
// mailauth, and what tests of other packages get).
func TestMXWithoutVerifier(t *testing.T) {
	f := newFixture(t)
	msg := received + authorMessage("Bank <security@rj.test>", "unchecked")
	must(t, f.d.Deliver(f.ctx, mxEnv(badIP, "security@rj.test", "bob@example.test"), strings.NewReader(msg)))
	if inbox := f.mailbox(t, "bob@example.test", "INBOX"); len(inbox) != 1 || inbox[0] != "Return-Path: <security@rj.test>\r\n"+msg {
		t.Fatalf("INBOX %q", inbox)
	}
}
