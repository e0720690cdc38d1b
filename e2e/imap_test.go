package e2e

// End-to-end tests of the IMAP server: the helpers every imap*_test.go file
// shares (a raw IMAP session over a real socket, a response tokenizer, a
// SCRAM-SHA-256 client), and the connection-level tests:
// capabilities, TLS, login and authentication, syntax errors.

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"posta/internal/config"
	"posta/internal/postatest"
)

const (
	imapAlice = "alice@example.test"
	imapBob   = "bob@example.test"
)

// imapTimeout bounds every read and write of the raw IMAP helper.
const imapTimeout = 10 * time.Second

// rawIMAP is a hand-driven IMAP session over a real socket, for exact
// responses and for what imapclient cannot send or parse (VANISHED,
// MULTIAPPEND, SEARCHRES, broken syntax).
type rawIMAP struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
	// Greeting is the server's first line.
	Greeting string
}

// dialRawIMAP connects to listener "imaps" (implicit TLS) or "imap" (plain
// until STARTTLS) and reads the greeting.
func dialRawIMAP(t testing.TB, in *postatest.Instance, listener string) *rawIMAP {
	t.Helper()
	var c net.Conn
	var err error
	if listener == "imaps" {
		cfg := in.ClientTLS()
		cfg.NextProtos = []string{"imap"}
		c, err = tls.Dial("tcp", in.Addr(t, listener), cfg)
	} else {
		c, err = net.Dial("tcp", in.Addr(t, listener))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawIMAP{t: t, conn: c, r: bufio.NewReader(c)}
	r.Greeting = r.line()
	return r
}

// rawIMAPLogin is dialRawIMAP("imaps") and LOGIN as user.
func rawIMAPLogin(t testing.TB, in *postatest.Instance, user string) *rawIMAP {
	t.Helper()
	r := dialRawIMAP(t, in, "imaps")
	r.login(user)
	return r
}

// bind makes the session report to t (a subtest) until the returned
// function restores the previous test: defer r.bind(t)().
func (r *rawIMAP) bind(t testing.TB) func() {
	prev := r.t
	r.t = t
	return func() { r.t = prev }
}

// starttls upgrades a plain session.
func (r *rawIMAP) starttls(cfg *tls.Config) {
	r.t.Helper()
	if _, tagged := r.cmd("STARTTLS"); !strings.HasPrefix(tagged, "OK ") {
		r.t.Fatalf("STARTTLS: %s", tagged)
	}
	if r.r.Buffered() > 0 {
		r.t.Fatalf("octets after STARTTLS's OK before the handshake")
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"imap"}
	tc := tls.Client(r.conn, cfg)
	r.conn.SetDeadline(time.Now().Add(imapTimeout))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("STARTTLS handshake: %v", err)
	}
	r.conn = tc
	r.r = bufio.NewReader(tc)
}

// login logs in with LOGIN and fails the test unless it worked.
func (r *rawIMAP) login(user string) {
	r.t.Helper()
	if _, tagged := r.cmd("LOGIN %s %s", imapQuote(user), imapQuote(postatest.Users[user])); !strings.HasPrefix(tagged, "OK ") {
		r.t.Fatalf("LOGIN %s: %s", user, tagged)
	}
}

// write sends octets as they are.
func (r *rawIMAP) write(s string) {
	r.t.Helper()
	r.conn.SetWriteDeadline(time.Now().Add(imapTimeout))
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// line reads one response with its literals inlined: a line ending in {n}
// (or ~{n}) is followed by CRLF, the n octets, and the rest of the
// response, all in the returned string (without the final CRLF).
func (r *rawIMAP) line() string {
	r.t.Helper()
	var b strings.Builder
	for {
		r.conn.SetReadDeadline(time.Now().Add(imapTimeout))
		l, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read after %q: %v", b.String()+l, err)
		}
		if !strings.HasSuffix(l, "\r\n") {
			r.t.Fatalf("response line without CRLF: %q", l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		n, ok := imapLiteralSize(l)
		if !ok {
			return b.String()
		}
		b.WriteString("\r\n")
		buf := make([]byte, n)
		for got := 0; got < n; {
			r.conn.SetReadDeadline(time.Now().Add(imapTimeout))
			m, err := r.r.Read(buf[got:])
			got += m
			if err != nil && got < n {
				r.t.Fatalf("literal of %d octets: %v", n, err)
			}
		}
		b.Write(buf)
	}
}

// imapLiteralSize reports whether a line ends with a literal's {n} (or
// ~{n}, {n+}) and its size.
func imapLiteralSize(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
	return n, err == nil
}

// cmd sends one command with a fresh tag and returns the untagged responses
// (without "* ") and continuation requests (with their "+") before the
// tagged one, and the tagged one without its tag.
func (r *rawIMAP) cmd(format string, args ...any) (untagged []string, tagged string) {
	r.t.Helper()
	tag := r.send(format, args...)
	return r.until(tag)
}

// cmdPrompt is cmd for a command whose tagged response must come without
// the client sending anything more. If nothing comes within 2 seconds the
// test fails, and a NOOP pushes the held-back response out so the session
// can go on.
func (r *rawIMAP) cmdPrompt(format string, args ...any) (untagged []string, tagged string) {
	r.t.Helper()
	tag := r.send(format, args...)
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.r.Peek(1); err != nil {
		r.t.Errorf("%s: no response within 2s (%v); the server holds it until the client sends more",
			strings.SplitN(fmt.Sprintf(format, args...), "\r\n", 2)[0], err)
		r.write("zz NOOP\r\n")
		untagged, tagged = r.until(tag)
		r.until("zz")
		return untagged, tagged
	}
	return r.until(tag)
}

// send writes one command with a fresh tag and returns the tag.
func (r *rawIMAP) send(format string, args ...any) string {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("t%d", r.n)
	r.write(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return tag
}

// until reads responses up to the tagged one of tag.
func (r *rawIMAP) until(tag string) (untagged []string, tagged string) {
	r.t.Helper()
	for {
		l := r.line()
		switch {
		case strings.HasPrefix(l, "* "):
			untagged = append(untagged, l[2:])
		case strings.HasPrefix(l, "+"):
			untagged = append(untagged, l)
		case strings.HasPrefix(l, tag+" "):
			return untagged, l[len(tag)+1:]
		default:
			r.t.Fatalf("unexpected response %q waiting for %s", l, tag)
		}
	}
}

// ok runs a command that must succeed and returns its untagged responses.
func (r *rawIMAP) ok(format string, args ...any) []string {
	r.t.Helper()
	u, tagged := r.cmd(format, args...)
	if !strings.HasPrefix(tagged, "OK") {
		r.t.Fatalf("%s: %s (untagged %q)", strings.SplitN(fmt.Sprintf(format, args...), "\r\n", 2)[0], tagged, u)
	}
	return u
}

// imapQuote makes an IMAP quoted string.
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// imapLiteral makes a non-synchronizing literal (LITERAL+) of s.
func imapLiteral(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// dialIMAPClient logs user in with imapclient over implicit TLS.
func dialIMAPClient(t testing.TB, in *postatest.Instance, user string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(in.Addr(t, "imaps"), &imapclient.Options{TLSConfig: in.ClientTLS(), UnilateralDataHandler: h})
	if err != nil {
		t.Fatalf("imapclient dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, postatest.Users[user]).Wait(); err != nil {
		t.Fatalf("imapclient login %s: %v", user, err)
	}
	return c
}

// imapErr checks that err is an IMAP status response of the given type and
// response code.
func imapErr(t testing.TB, what string, err error, typ imap.StatusResponseType, code imap.ResponseCode) {
	t.Helper()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != typ || ie.Code != code {
		t.Errorf("%s: %v, want %s [%s]", what, err, typ, code)
	}
}

// imapDeliver sends one message over SMTP (net/smtp, the MX listener, no
// TLS) and waits until the recipient's INBOX holds want messages.
func imapDeliver(t testing.TB, in *postatest.Instance, rcpt, body string, want int) [][]byte {
	t.Helper()
	c, err := smtp.Dial(in.Addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return in.WaitMessages(t, rcpt, "INBOX", want)
}

// --- A tokenizer for IMAP responses (literals inlined by rawIMAP.line).

// imapTok is one token of a response: an atom (numbers, NIL, flags and
// things like BODY[HEADER]<0> included), a string (quoted or literal,
// decoded) or a parenthesized list.
type imapTok struct {
	Atom   string
	Str    *string
	List   []imapTok
	IsList bool
}

// S is the token's text: a string's content or an atom; "" for NIL.
func (k imapTok) S() string {
	if k.Str != nil {
		return *k.Str
	}
	if strings.EqualFold(k.Atom, "NIL") {
		return ""
	}
	return k.Atom
}

// Atoms are a list's atoms (flags, attributes).
func (k imapTok) Atoms() []string {
	out := []string{}
	for _, e := range k.List {
		out = append(out, e.S())
	}
	return out
}

// imapTokens splits a response (without "* ") into tokens.
func imapTokens(t testing.TB, s string) []imapTok {
	t.Helper()
	toks, rest, err := imapParseToks(s, false)
	if err != nil || rest != "" {
		t.Fatalf("cannot tokenize %q: %v (rest %q)", s, err, rest)
	}
	return toks
}

func imapParseToks(s string, inList bool) ([]imapTok, string, error) {
	var out []imapTok
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			if inList {
				return nil, s, errors.New("unterminated list")
			}
			return out, s, nil
		}
		switch c := s[0]; {
		case c == ')':
			if !inList {
				return nil, s, errors.New("unbalanced )")
			}
			return out, s[1:], nil
		case c == '(':
			l, rest, err := imapParseToks(s[1:], true)
			if err != nil {
				return nil, rest, err
			}
			out = append(out, imapTok{List: l, IsList: true})
			s = rest
		case c == '"':
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, s, errors.New("unterminated quoted string")
			}
			str := b.String()
			out = append(out, imapTok{Str: &str})
			s = s[i+1:]
		case c == '{' || strings.HasPrefix(s, "~{"):
			i := strings.IndexByte(s, '}')
			j := strings.IndexByte(s, '{')
			n, err := strconv.Atoi(strings.TrimSuffix(s[j+1:i], "+"))
			if err != nil || !strings.HasPrefix(s[i+1:], "\r\n") || len(s) < i+3+n {
				return nil, s, fmt.Errorf("bad literal at %q", s[:min(len(s), 20)])
			}
			str := s[i+3 : i+3+n]
			out = append(out, imapTok{Str: &str})
			s = s[i+3+n:]
		default:
			i := 0
			for i < len(s) && s[i] != ' ' && s[i] != '(' && s[i] != ')' {
				if s[i] == '[' {
					k := strings.IndexByte(s[i:], ']')
					if k < 0 {
						return nil, s, errors.New("unterminated [")
					}
					i += k
				}
				i++
			}
			out = append(out, imapTok{Atom: s[:i]})
			s = s[i:]
		}
	}
}

// imapFetchResp is one parsed "n FETCH (...)" response: items by upper-case
// name.
type imapFetchResp struct {
	Seq   uint32
	Items map[string]imapTok
}

// imapFetches parses the FETCH responses among untagged responses; other
// responses are returned as they are.
func imapFetches(t testing.TB, untagged []string) (fetches []imapFetchResp, other []string) {
	t.Helper()
	for _, u := range untagged {
		f := strings.Fields(u)
		if len(f) < 3 || !strings.EqualFold(f[1], "FETCH") {
			other = append(other, u)
			continue
		}
		toks := imapTokens(t, u)
		seq, err := strconv.ParseUint(toks[0].Atom, 10, 32)
		if err != nil || len(toks) != 3 || !toks[2].IsList || len(toks[2].List)%2 != 0 {
			t.Fatalf("bad FETCH response %q", u)
		}
		fr := imapFetchResp{Seq: uint32(seq), Items: map[string]imapTok{}}
		for i := 0; i < len(toks[2].List); i += 2 {
			fr.Items[strings.ToUpper(toks[2].List[i].Atom)] = toks[2].List[i+1]
		}
		fetches = append(fetches, fr)
	}
	return fetches, other
}

// imapFlagSet renders a flag list as a sorted, comparable string
// (flags are case-insensitive: RFC 9051 2.3.2).
func imapFlagSet(flags []string) string {
	l := make([]string, len(flags))
	for i, f := range flags {
		l[i] = strings.ToLower(f)
	}
	slices.Sort(l)
	return strings.Join(l, " ")
}

// imapClientFlags is imapFlagSet for imapclient's flags.
func imapClientFlags(flags []imap.Flag) string {
	l := make([]string, len(flags))
	for i, f := range flags {
		l[i] = string(f)
	}
	return imapFlagSet(l)
}

// imapCodeOf returns the response code of a status response text such as
// "OK [READ-WRITE] done" ("READ-WRITE"), or "".
func imapCodeOf(resp string) string {
	i := strings.IndexByte(resp, '[')
	if i < 0 || strings.IndexByte(resp, ' ') != i-1 {
		return ""
	}
	j := strings.IndexByte(resp[i:], ']')
	if j < 0 {
		return ""
	}
	return resp[i+1 : i+j]
}

// --- SCRAM-SHA-256 (RFC 5802, RFC 7677): go-sasl has no SCRAM client.

// imapSCRAM is a SCRAM-SHA-256 client without channel binding ("n,,") in
// go-sasl's Client shape. It is driven by hand below: imapclient answers
// SCRAM's last challenge (server-final) with "=", which RFC 9051 9 allows
// only for an initial response; Posta answers BAD (invalid base64).
type imapSCRAM struct {
	user, pass, nonce string
	step              int
	firstBare         string
	serverSig         []byte
}

var _ sasl.Client = (*imapSCRAM)(nil)

func (s *imapSCRAM) Start() (string, []byte, error) {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.firstBare = "n=" + name + ",r=" + s.nonce
	return "SCRAM-SHA-256", []byte("n,," + s.firstBare), nil
}

func (s *imapSCRAM) Next(challenge []byte) ([]byte, error) {
	s.step++
	switch s.step {
	case 1:
		attrs := map[string]string{}
		for _, kv := range strings.Split(string(challenge), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && len(k) == 1 {
				attrs[k] = v
			}
		}
		nonce, salt64, iter := attrs["r"], attrs["s"], attrs["i"]
		if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
			return nil, fmt.Errorf("scram: server nonce %q does not extend ours", nonce)
		}
		salt, err := base64.StdEncoding.DecodeString(salt64)
		if err != nil {
			return nil, fmt.Errorf("scram: salt: %w", err)
		}
		n, err := strconv.Atoi(iter)
		if err != nil || n < 4096 {
			return nil, fmt.Errorf("scram: iteration count %q", iter)
		}
		salted, err := pbkdf2.Key(sha256.New, s.pass, salt, n, sha256.Size)
		if err != nil {
			return nil, err
		}
		mac := func(key []byte, msg string) []byte {
			h := hmac.New(sha256.New, key)
			h.Write([]byte(msg))
			return h.Sum(nil)
		}
		clientKey := mac(salted, "Client Key")
		stored := sha256.Sum256(clientKey)
		final := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + ",r=" + nonce
		authMsg := s.firstBare + "," + string(challenge) + "," + final
		proof := mac(stored[:], authMsg)
		for i := range proof {
			proof[i] ^= clientKey[i]
		}
		s.serverSig = mac(mac(salted, "Server Key"), authMsg)
		return []byte(final + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
	case 2:
		if want := "v=" + base64.StdEncoding.EncodeToString(s.serverSig); string(challenge) != want {
			return nil, fmt.Errorf("scram: server-final %q, want %q", challenge, want)
		}
		return []byte{}, nil
	}
	return nil, fmt.Errorf("scram: unexpected challenge %q", challenge)
}

// The test's own SCRAM client against RFC 7677 3's example exchange, so a
// failure of the server tests below is not the client's.
func TestIMAPSCRAMClientVector(t *testing.T) {
	s := &imapSCRAM{user: "user", pass: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO"}
	mech, ir, _ := s.Start()
	if mech != "SCRAM-SHA-256" || string(ir) != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
		t.Fatalf("client-first %s %q", mech, ir)
	}
	final, err := s.Next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil || string(final) != "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=" {
		t.Fatalf("client-final %q %v", final, err)
	}
	if _, err := s.Next([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatal(err)
	}
}

// --- Connection-level tests.

// Capabilities every session lists (RFC 9051 7.2.2), whatever its state.
var imapCommonCaps = []string{
	"IMAP4rev1", "IMAP4rev2", "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
	"CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "SEARCHRES",
	"CONDSTORE", "QRESYNC", "STATUS=SIZE", "APPENDLIMIT=52428800", "UTF8=ACCEPT", "BINARY", "MULTIAPPEND",
	"QUOTA", "QUOTA=RES-STORAGE",
}

func imapCaps(extra ...string) []string {
	out := append(slices.Clone(imapCommonCaps), extra...)
	slices.Sort(out)
	return out
}

var (
	// Before login under TLS: SASL mechanisms (SCRAM-SHA-256-PLUS since TLS
	// gives a channel binding) and SASL-IR.
	imapCapsTLS = imapCaps("AUTH=SCRAM-SHA-256-PLUS", "AUTH=SCRAM-SHA-256", "AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR")
	// Before STARTTLS: no password may be sent (RFC 9051 6.2.3, 7.2.2).
	imapCapsPlain = imapCaps("STARTTLS", "LOGINDISABLED")
	// After login: no AUTH=, COMPRESS instead.
	imapCapsAuthed = imapCaps("COMPRESS=DEFLATE")
)

// imapCapsOf parses "CAPABILITY a b c" or a status response with a
// [CAPABILITY a b c] code into a sorted list.
func imapCapsOf(t testing.TB, s string) []string {
	t.Helper()
	if strings.HasPrefix(s, "CAPABILITY ") {
		s = strings.TrimPrefix(s, "CAPABILITY ")
	} else {
		s = strings.TrimPrefix(imapCodeOf(s), "CAPABILITY ")
		if s == "" {
			t.Fatalf("no CAPABILITY in %q", s)
		}
	}
	out := strings.Fields(s)
	slices.Sort(out)
	return out
}

func imapCheckCaps(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s capabilities:\n got %v\nwant %v", what, got, want)
	}
}

func imapClientCaps(caps imap.CapSet) []string {
	var out []string
	for c := range caps {
		out = append(out, string(c))
	}
	slices.Sort(out)
	return out
}

// TestIMAPLogin covers both listeners with imapclient and raw sessions:
// CAPABILITY in each state, LOGIN, AUTHENTICATE PLAIN and SCRAM-SHA-256,
// failed logins, and LOGIN refused before STARTTLS.
func TestIMAPLogin(t *testing.T) {
	in := postatest.Start(t)
	pw := postatest.Users[imapAlice]

	t.Run("capability over implicit TLS", func(t *testing.T) {
		r := dialRawIMAP(t, in, "imaps")
		if !strings.HasPrefix(r.Greeting, "* OK [CAPABILITY ") {
			t.Fatalf("greeting %q", r.Greeting)
		}
		imapCheckCaps(t, "greeting", imapCapsOf(t, strings.TrimPrefix(r.Greeting, "* ")), imapCapsTLS)
		u := r.ok("CAPABILITY")
		if len(u) != 1 {
			t.Fatalf("CAPABILITY: %q", u)
		}
		imapCheckCaps(t, "CAPABILITY", imapCapsOf(t, u[0]), imapCapsTLS)
		u, tagged := r.cmd("LOGIN %s %s", imapAlice, imapQuote(pw))
		if len(u) != 0 || !strings.HasPrefix(tagged, "OK [CAPABILITY ") {
			t.Fatalf("LOGIN: %q %q", u, tagged)
		}
		imapCheckCaps(t, "LOGIN's OK", imapCapsOf(t, tagged), imapCapsAuthed)
		imapCheckCaps(t, "CAPABILITY after login", imapCapsOf(t, r.ok("CAPABILITY")[0]), imapCapsAuthed)
		// ENABLE does not change the list (RFC 9051 6.3.1).
		r.ok("ENABLE IMAP4rev2 CONDSTORE")
		imapCheckCaps(t, "CAPABILITY after ENABLE", imapCapsOf(t, r.ok("CAPABILITY")[0]), imapCapsAuthed)

		// imapclient sees the same.
		c, err := imapclient.DialTLS(in.Addr(t, "imaps"), &imapclient.Options{TLSConfig: in.ClientTLS()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		imapCheckCaps(t, "imapclient before login", imapClientCaps(caps), imapCapsTLS)
		if err := c.Login(imapAlice, pw).Wait(); err != nil {
			t.Fatal(err)
		}
		caps, err = c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		imapCheckCaps(t, "imapclient after login", imapClientCaps(caps), imapCapsAuthed)
		if c.State() != imap.ConnStateAuthenticated {
			t.Fatalf("state %v", c.State())
		}
		if err := c.Logout().Wait(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("LOGIN refused before STARTTLS", func(t *testing.T) {
		r := dialRawIMAP(t, in, "imap")
		if !strings.HasPrefix(r.Greeting, "* OK [CAPABILITY ") {
			t.Fatalf("greeting %q", r.Greeting)
		}
		imapCheckCaps(t, "plain greeting", imapCapsOf(t, strings.TrimPrefix(r.Greeting, "* ")), imapCapsPlain)
		imapCheckCaps(t, "plain CAPABILITY", imapCapsOf(t, r.ok("CAPABILITY")[0]), imapCapsPlain)
		// RFC 9051 6.2.3: LOGINDISABLED means LOGIN fails; RFC 5530 3:
		// PRIVACYREQUIRED says why.
		u, tagged := r.cmd("LOGIN %s %s", imapAlice, imapQuote(pw))
		if len(u) != 0 || imapCodeOf(tagged) != "PRIVACYREQUIRED" || !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("LOGIN without TLS: %q %q", u, tagged)
		}
		plain := base64.StdEncoding.EncodeToString([]byte("\x00" + imapAlice + "\x00" + pw))
		if u, tagged := r.cmd("AUTHENTICATE PLAIN %s", plain); len(u) != 0 || imapCodeOf(tagged) != "PRIVACYREQUIRED" || !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("AUTHENTICATE PLAIN without TLS: %q %q", u, tagged)
		}
		// Still not authenticated: SELECT is refused.
		if _, tagged := r.cmd("SELECT INBOX"); !strings.HasPrefix(tagged, "BAD ") && !strings.HasPrefix(tagged, "NO ") {
			t.Errorf("SELECT after refused login: %q", tagged)
		}
		r.starttls(in.ClientTLS())
		imapCheckCaps(t, "CAPABILITY after STARTTLS", imapCapsOf(t, r.ok("CAPABILITY")[0]), imapCapsTLS)
		if _, tagged := r.cmd("STARTTLS"); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("second STARTTLS: %q", tagged)
		}
		_, tagged = r.cmd("LOGIN %s %s", imapAlice, imapQuote(pw))
		imapCheckCaps(t, "LOGIN's OK after STARTTLS", imapCapsOf(t, tagged), imapCapsAuthed)
		r.ok("SELECT INBOX")

		// imapclient: STARTTLS, then LOGIN.
		c, err := imapclient.DialStartTLS(in.Addr(t, "imap"), &imapclient.Options{TLSConfig: in.ClientTLS()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		imapCheckCaps(t, "imapclient after STARTTLS", imapClientCaps(caps), imapCapsTLS)
		if err := c.Login(imapAlice, pw).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		// imapclient without TLS: the server refuses the password.
		p, err := imapclient.DialInsecure(in.Addr(t, "imap"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		imapErr(t, "imapclient LOGIN without TLS", p.Login(imapAlice, pw).Wait(), imap.StatusResponseTypeNo, "PRIVACYREQUIRED")
	})

	t.Run("AUTHENTICATE PLAIN", func(t *testing.T) {
		c, err := imapclient.DialTLS(in.Addr(t, "imaps"), &imapclient.Options{TLSConfig: in.ClientTLS()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Authenticate(sasl.NewPlainClient("", imapAlice, pw)); err != nil {
			t.Fatalf("AUTHENTICATE PLAIN: %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		// Without SASL-IR: an empty challenge, then the response; over
		// STARTTLS.
		r := dialRawIMAP(t, in, "imap")
		r.starttls(in.ClientTLS())
		tag := r.send("AUTHENTICATE PLAIN")
		if l := r.line(); l != "+ " && l != "+" {
			t.Fatalf("AUTHENTICATE PLAIN: %q, want an empty challenge", l)
		}
		r.write(base64.StdEncoding.EncodeToString([]byte("\x00"+imapAlice+"\x00"+pw)) + "\r\n")
		if u, tagged := r.until(tag); len(u) != 0 || !strings.HasPrefix(tagged, "OK ") {
			t.Fatalf("AUTHENTICATE PLAIN: %q %q", u, tagged)
		} else {
			imapCheckCaps(t, "AUTHENTICATE's OK", imapCapsOf(t, tagged), imapCapsAuthed)
		}
		// RFC 9051 6.2.2: "*" cancels with a tagged BAD; the session goes on.
		q := dialRawIMAP(t, in, "imaps")
		tag = q.send("AUTHENTICATE PLAIN")
		q.line()
		q.write("*\r\n")
		if _, tagged := q.until(tag); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("cancelled AUTHENTICATE: %q", tagged)
		}
		q.login(imapAlice)
	})

	t.Run("AUTHENTICATE SCRAM-SHA-256", func(t *testing.T) {
		// Driven by hand (see imapSCRAM), following RFC 9051 6.2.2: the
		// server-final message comes as a last challenge, answered by an
		// empty line.
		scram := func(r *rawIMAP, pass string) (string, error) {
			s := &imapSCRAM{user: imapAlice, pass: pass, nonce: fmt.Sprintf("e2eNonce%d", r.n)}
			mech, ir, _ := s.Start()
			tag := r.send("AUTHENTICATE %s %s", mech, base64.StdEncoding.EncodeToString(ir))
			for {
				l := r.line()
				if strings.HasPrefix(l, tag+" ") {
					return strings.TrimPrefix(l, tag+" "), nil
				}
				if !strings.HasPrefix(l, "+ ") {
					return "", fmt.Errorf("unexpected %q", l)
				}
				ch, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
				if err != nil {
					return "", fmt.Errorf("challenge %q: %v", l, err)
				}
				resp, err := s.Next(ch)
				if err != nil {
					r.write("*\r\n")
					return "", err
				}
				r.write(base64.StdEncoding.EncodeToString(resp) + "\r\n")
			}
		}
		r := dialRawIMAP(t, in, "imaps")
		tagged, err := scram(r, pw)
		if err != nil || !strings.HasPrefix(tagged, "OK ") {
			t.Fatalf("AUTHENTICATE SCRAM-SHA-256: %q %v", tagged, err)
		}
		imapCheckCaps(t, "SCRAM's OK", imapCapsOf(t, tagged), imapCapsAuthed)
		r.ok("SELECT INBOX")
		// A wrong password: the proof fails, NO [AUTHENTICATIONFAILED].
		b := dialRawIMAP(t, in, "imaps")
		if tagged, err := scram(b, "wrong"); err != nil || !strings.HasPrefix(tagged, "NO ") || imapCodeOf(tagged) != "AUTHENTICATIONFAILED" {
			t.Errorf("SCRAM with a wrong password: %q %v", tagged, err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		c, err := imapclient.DialTLS(in.Addr(t, "imaps"), &imapclient.Options{TLSConfig: in.ClientTLS()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		imapErr(t, "LOGIN wrong password", c.Login(imapAlice, "wrong-password").Wait(), imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed)
		imapErr(t, "LOGIN unknown user", c.Login("nobody@example.test", "x").Wait(), imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed)
		imapErr(t, "AUTHENTICATE PLAIN wrong password", c.Authenticate(sasl.NewPlainClient("", imapAlice, "nope")),
			imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed)
		// RFC 9051 6.2.3: still not authenticated, and may try again.
		if c.State() != imap.ConnStateNotAuthenticated {
			t.Fatalf("state after failed logins: %v", c.State())
		}
		if err := c.Login(imapAlice, pw).Wait(); err != nil {
			t.Fatalf("LOGIN after failures: %v", err)
		}
	})

	t.Run("allow_plaintext_auth", func(t *testing.T) {
		pin := postatest.Start(t, postatest.WithConfig(func(c *config.Config) { c.AllowPlaintextAuth = true }))
		r := dialRawIMAP(t, pin, "imap")
		imapCheckCaps(t, "plain greeting with plaintext allowed", imapCapsOf(t, strings.TrimPrefix(r.Greeting, "* ")),
			imapCaps("STARTTLS", "AUTH=SCRAM-SHA-256", "AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR"))
		r.login(imapAlice)
		r.ok("SELECT INBOX")
	})
}

// TestIMAPBadSyntax: a command the grammar refuses gets a tagged BAD and the
// session goes on (RFC 9051 7.1.3).
func TestIMAPBadSyntax(t *testing.T) {
	in := postatest.Start(t)
	r := rawIMAPLogin(t, in, imapAlice)
	r.ok("SELECT INBOX")
	// "a1 FETCH" then "a2 NOOP", one at a time: the BAD must come without
	// the client sending anything more.
	if u, tagged := r.cmdPrompt("FETCH"); len(u) != 0 || !strings.HasPrefix(tagged, "BAD ") {
		t.Errorf("FETCH without arguments: %q %q, want a tagged BAD", u, tagged)
	}
	if u, tagged := r.cmdPrompt("NOOP"); len(u) != 0 || !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("NOOP: %q %q", u, tagged)
	}
	// More broken commands, each followed by a pipelined NOOP (so a BAD
	// held back, as above, does not stall this loop): BAD, then OK.
	for _, c := range []string{"FETCH 1:* (FLAGS", "SELECT", "STORE 1 +FLAGS", "SEARCH FROM", "UID FROB 1", "XYZZY",
		"LIST \"\"", "NOOP extra", "FETCH 1 (FLAGS) extra", "STORE 1 +FLAGS (\\Seen", "SEARCH (SEEN"} {
		r.write("b1 " + c + "\r\nb2 NOOP\r\n")
		u, tagged := r.until("b1")
		if len(u) != 0 || !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("%s: %q %q, want a tagged BAD", c, u, tagged)
		}
		if u, tagged := r.until("b2"); len(u) != 0 || !strings.HasPrefix(tagged, "OK ") {
			t.Fatalf("NOOP after %q: %q %q", c, u, tagged)
		}
	}
	// A command that needs a selected mailbox, without one: BAD, and on.
	r.ok("UNSELECT")
	r.write("c1 FETCH 1 FLAGS\r\nc2 NOOP\r\n")
	if _, tagged := r.until("c1"); !strings.HasPrefix(tagged, "BAD ") {
		t.Errorf("FETCH without a mailbox: %q", tagged)
	}
	r.until("c2")
	r.ok("SELECT INBOX")
}
