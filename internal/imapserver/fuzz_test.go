package imapserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/delivery"
	"posta/internal/directory"
	"posta/internal/guard"
	"posta/internal/imapwire"
	"posta/internal/mailstore"
	"posta/internal/pipenet"
	"posta/internal/sasl"
)

// fuzzDir answers password checks from testUsers without argon2id (a
// fuzzer's wrong passwords would each cost one) and everything else from
// the real directory.
type fuzzDir struct{ *directory.Directory }

func (d fuzzDir) VerifyPassword(_ context.Context, username, password string) (string, error) {
	u := strings.ToLower(username)
	if pw, ok := testUsers[u]; ok && sasl.PreparePassword(pw) == sasl.PreparePassword(password) {
		return u, nil
	}
	return "", fmt.Errorf("fuzzdir: %w", sasl.ErrInvalidCredentials)
}

// Fuzz preambles: the state the input starts in.
var fuzzModes = []string{
	"", // Not Authenticated
	"p1 LOGIN alice@example.test alice-password\r\n",
	"p1 LOGIN alice@example.test alice-password\r\np2 SELECT INBOX\r\n",
	"p1 LOGIN alice@example.test alice-password\r\np2 EXAMINE INBOX\r\n",
	"p1 LOGIN alice@example.test alice-password\r\np2 ENABLE QRESYNC IMAP4rev2 UTF8=ACCEPT\r\np3 SELECT INBOX\r\n",
}

// fuzzTrailer ends whatever the input left open: a literal-free line end,
// IDLE's DONE, an AUTHENTICATE cancel, then LOGOUT.
const fuzzTrailer = "\r\nDONE\r\n*\r\nzz LOGOUT\r\n"

// rfcClientLines are the C: lines of RFC 9051's examples:
//
//	grep -hE '^ +C: ' rfc9051.txt | sed -E 's/^ +C: +//' > testdata/rfc9051-client-lines.txt
func rfcClientLines(f *testing.F) []string {
	b, err := os.ReadFile("testdata/rfc9051-client-lines.txt")
	if err != nil {
		f.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// splitCommands splits a client transcript (LF line ends) into commands,
// each with its continuation lines: a literal's data and the rest of its
// line, and lines without a space (a SASL response, DONE).
func splitCommands(text string) []string {
	var cmds []string
	need := -1 // octets of literal data still to come; -1: none
	for _, l := range strings.SplitAfter(text, "\n") {
		if l == "" {
			continue
		}
		cont := need >= 0 || !strings.Contains(strings.TrimSpace(l), " ")
		if need >= 0 {
			need -= len(l) + 1 // CRLF on the wire
			if need < 0 {
				need = -1
			}
		}
		if m := literalEnd.FindStringSubmatch(strings.TrimSuffix(l, "\n")); m != nil {
			need, _ = strconv.Atoi(m[1])
		}
		if cont && len(cmds) > 0 {
			cmds[len(cmds)-1] += l
		} else {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// lf2crlf turns a text file's LF line ends into CRLF.
func lf2crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// FuzzSession drives whole sessions with arbitrary client bytes, in each
// state (the mode byte picks a login/select preamble), over a fresh copy
// of a real mail store and directory (fuzzTemplate) and a fresh server per
// input, through an in-memory pipe. Whatever the client sends: no command
// panics; the session ends once the client has stopped sending (no hang);
// every response line is untagged, a continuation, or a completion with a
// tag the client sent; no internal error text or [SERVERBUG] reaches the
// client; and the store stays consistent (each mailbox's counters match
// its messages, UIDs below UIDNEXT, bodies readable at their size).
//
// Run it with
//
//	go test -run XXX -fuzz FuzzSession -fuzztime 30s ./internal/imapserver/
//
// Coverage is somewhat noisy (database/sql and SQLite watch contexts from
// goroutines), so the fuzzer spends part of its time minimizing inputs;
// -fuzzminimizetime 5s gives longer runs more executions.
func FuzzSession(f *testing.F) {
	// Seeds are kept small (a few commands each): the fuzzer minimizes
	// every input that finds new coverage, and minimizing a long session
	// one whole session per candidate would take the run.
	//
	// Real client sessions, split into pairs of commands; the first pair
	// logs in itself, the rest run logged in with INBOX selected.
	clients, err := filepath.Glob("testdata/clients/*.txt")
	if err != nil || len(clients) == 0 {
		f.Fatalf("no client transcripts: %v", err)
	}
	for _, file := range clients {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		cmds := splitCommands(string(b))
		for i := 0; i < len(cmds); i += 2 {
			mode := byte(2)
			if i == 0 {
				mode = 0
			}
			f.Add(mode, []byte(lf2crlf(strings.Join(cmds[i:min(i+2, len(cmds))], ""))))
		}
	}
	// RFC 9051's example commands, three lines a seed, each in one state,
	// half of them with INBOX selected (the fuzzer varies the mode byte).
	lines := rfcClientLines(f)
	for i := 0; i < len(lines); i += 3 {
		chunk := []byte(strings.Join(lines[i:min(i+3, len(lines))], "\r\n") + "\r\n")
		f.Add([]byte{2, 0, 2, 1, 2, 3, 2, 4}[i/3%8], chunk)
	}
	// Edges: literals, LITERAL+, bad syntax, limits, IDLE, UID sets, TLS
	// and COMPRESS over garbage.
	for _, s := range []string{
		"a APPEND INBOX {5}\r\nhello\r\nb APPEND INBOX (\\Seen) \"01-Jan-2024 00:00:00 +0000\" {3+}\r\nabc\r\n",
		"a APPEND nosuch {5+}\r\nhello\r\nb APPEND INBOX {99999999999}\r\nc NOOP\r\n",
		"a APPEND INBOX {3+}\r\nabc {3+}\r\ndef\r\n",
		"a FETCH 1:* (FLAGS UID BODY.PEEK[HEADER] BODYSTRUCTURE ENVELOPE BINARY.PEEK[1])\r\nb FETCH * BODY[]<0.10>\r\n",
		"a STORE 1:* +FLAGS (\\Deleted)\r\nb EXPUNGE\r\nc SEARCH RETURN (SAVE) ALL\r\nd FETCH $ (UID)\r\n",
		"a IDLE\r\nDONE\r\nb IDLE\r\nnot done\r\n",
		"a MOVE 1 Archive\r\nb UID COPY 1:4294967295 INBOX\r\nc UID EXPUNGE 1:*\r\n",
		"a CREATE a/b\r\nb RENAME a x\r\nc DELETE x\r\nd STATUS x/b (MESSAGES SIZE DELETED)\r\n",
		"a FETCH 0 (UID)\r\nb FETCH 4294967296 (UID)\r\nc STORE 2:1 FLAGS ()\r\nd COPY * Junk\r\n",
		"a SELECT INBOX (QRESYNC (1 1 1:10))\r\nb UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
		"a AUTHENTICATE PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==\r\n",
		"a AUTHENTICATE SCRAM-SHA-256 biwsbj1hbGljZUBleGFtcGxlLnRlc3Qscj1hYmNkZWY=\r\n*\r\n",
		"a STARTTLS\r\nb NOOP\r\n",
		"a COMPRESS DEFLATE\r\n\x00\x01garbage",
		"a LOGIN {18}\r\nalice@example.test {14+}\r\nalice-password\r\n",
		"\r\n* NOOP\r\n+ NOOP\r\na\r\na \r\n",
		"a NOOP " + strings.Repeat("x", 1100) + "\r\nb NOOP\r\n",
		"a SEARCH CHARSET UTF-8 TEXT {6}\r\nотп\r\nb SEARCH OR FROM a NOT SEEN\r\n",
	} {
		for _, mode := range []byte{0, 2} {
			f.Add(mode, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, in []byte) {
		runFuzz(t, fuzzModes[int(mode)%len(fuzzModes)], in)
	})
}

// fuzzTemplate is the data directory every input starts from, as file
// contents: the test accounts, alice's mailboxes with three messages in
// INBOX (one multipart) and one in Archive. Each input gets a fresh copy
// and a fresh server, so it runs the same way every time: the fuzzer's
// coverage does not drift with what earlier inputs did to the store (or
// SQLite's checkpoints), and a crasher reproduces on its own.
var fuzzTemplate = sync.OnceValues(func() (map[string][]byte, error) {
	ctx := context.Background()
	data, err := os.MkdirTemp(fuzzTempRoot(), "imapserver-fuzz-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(data)
	tmpl, err := dirTemplate()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, database.FileName), tmpl, 0o600); err != nil {
		return nil, err
	}
	db, err := database.Open(data)
	if err != nil {
		return nil, err
	}
	st, err := mailstore.Open(ctx, db, data, nil)
	if err == nil {
		err = st.EnsureAccount(ctx, alice)
	}
	if err == nil {
		var dir *directory.Directory
		if dir, err = directory.Open(ctx, db); err == nil {
			spool := delivery.New(delivery.Options{Directory: dir, Store: st})
			multipart := "From: bob@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n"
			for _, m := range []struct {
				box  string
				body []string
			}{{"INBOX", []string{testMsg(1), multipart, testMsg(3)}}, {"Archive", []string{testMsg(4)}}} {
				var msgs []mailstore.NewMessage
				for _, b := range m.body {
					nm, _, serr := spool.Spool(strings.NewReader(b), int64(len(b)), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
					if serr != nil {
						err = serr
					}
					msgs = append(msgs, nm)
				}
				if err == nil {
					_, err = st.Append(ctx, alice, m.box, msgs...)
				}
			}
		}
	}
	if st != nil {
		st.Close()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		files[rel], err = os.ReadFile(p)
		return err
	})
	return files, err
})

// fuzzTempRoot is where fuzz data directories go: in memory (/dev/shm)
// where there is one, since every APPEND and STORE is an fsync.
func fuzzTempRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// fuzzEnv is one input's server over its own copy of fuzzTemplate.
type fuzzEnv struct {
	ctx    context.Context
	data   string
	db     *sql.DB
	store  *mailstore.Store
	srv    *Server
	ln     *pipenet.Listener
	logs   *logBuf
	served chan error
}

func newFuzzEnv(t *testing.T) *fuzzEnv {
	files, err := fuzzTemplate()
	if err != nil {
		t.Fatal(err)
	}
	e := &fuzzEnv{ctx: context.Background(), ln: pipenet.Listen(143), logs: &logBuf{}, served: make(chan error, 1)}
	if e.data, err = os.MkdirTemp(fuzzTempRoot(), "imapserver-fuzz-"); err != nil {
		t.Fatal(err)
	}
	for rel, b := range files {
		p := filepath.Join(e.data, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if e.db, err = database.Open(e.data); err != nil {
		t.Fatal(err)
	}
	if e.store, err = mailstore.Open(e.ctx, e.db, e.data, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(e.ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = testHostname
	cfg.AllowPlaintextAuth = true
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelError}))
	// Small wire limits: an input cannot make the server wait for a
	// megabyte, and the limits themselves get exercised.
	wire := imapwire.Limits{MaxLine: 1000, MaxCommand: 4096, MaxLiteral: 1000, MaxAppend: 8192, MaxSkip: 4096}
	e.srv, err = New(Options{Config: cfg, Listener: config.Listener{Name: "imap", Protocol: "imap"},
		Directory: fuzzDir{dir}, Guard: guard.New(guard.Limits{ExemptLoopback: true}), Store: e.store,
		Spool: delivery.New(delivery.Options{Directory: dir, Store: e.store, Logger: logger}),
		Limits: Limits{Wire: wire, IdleTimeout: 5 * time.Second, LoginTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxErrors: 50, MaxCommandsBeforeAuth: 50, MaxSessionsPerUser: 10},
		Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	go func() { e.served <- e.srv.Serve(e.ln) }()
	return e
}

// close shuts the server down and removes the data directory.
func (e *fuzzEnv) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-e.served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	e.store.Close()
	e.db.Close()
	os.RemoveAll(e.data)
}

// run plays one input: preamble, input, trailer, then the client's
// half-close, so the session ends on EOF wherever the input left it
// (inside a literal, say) without the test waiting on a timer.
func runFuzz(t *testing.T, preamble string, in []byte) {
	e := newFuzzEnv(t)
	defer e.close(t)
	cc, closeWrite, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	type result struct {
		b   []byte
		err error
	}
	out := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(cc)
		out <- result{b, err}
	}()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		defer closeWrite()
		for _, p := range [][]byte{[]byte(preamble), in, []byte(fuzzTrailer)} {
			if _, err := cc.Write(p); err != nil {
				return
			}
		}
	}()
	res := <-out
	got := res.b
	cc.Close()
	<-wrote
	if n := e.srv.Panics(); n != 0 {
		t.Fatalf("%d commands panicked:\n%s", n, e.logs.String())
	}
	// The server closes the connection last, after releasing the session
	// (Serve's deferred calls), so EOF means the session is over; a
	// timeout means it hung.
	if res.err != nil {
		t.Fatalf("session did not end within 10s of the client's half-close (%v); output %q", res.err, got)
	}
	if !greetingRE.Match(bytes.SplitN(got, []byte("\r\n"), 2)[0]) {
		t.Fatalf("no greeting: %q", got)
	}
	if i := bytes.Index(got, []byte(" OK DEFLATE active\r\n")); i >= 0 {
		got = got[:i+len(" OK DEFLATE active\r\n")] // the rest is deflate data
	}
	sent := preamble + string(in) + fuzzTrailer
	for _, l := range responseText(got) {
		// RFC 9051 2.2.2: every line is untagged data, a continuation
		// request, or a completion with a tag the client sent.
		if !strings.HasPrefix(l, "* ") && l != "+" && !strings.HasPrefix(l, "+ ") {
			tag, rest, _ := strings.Cut(l, " ")
			if !strings.HasPrefix(rest, "OK") && !strings.HasPrefix(rest, "NO") && !strings.HasPrefix(rest, "BAD") ||
				!strings.Contains(sent, tag) {
				t.Fatalf("malformed response %q in %q", l, got)
			}
		}
		for _, bad := range []string{"[SERVERBUG]", "fuzzdir:", "mailstore:", "delivery:", "directory:", "sql", "panic"} {
			if strings.Contains(l, bad) {
				t.Fatalf("%q in reply %q\nserver log:\n%s", bad, l, e.logs.String())
			}
		}
	}
	e.checkStore(t)
}

// responseText splits server output into response lines with the data of
// literals left out (a message body may say anything).
func responseText(out []byte) []string {
	var lines []string
	var cur strings.Builder
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			cur.Write(out)
			break
		}
		l := string(out[:i])
		out = out[i+2:]
		cur.WriteString(l)
		if m := literalEnd.FindStringSubmatch(l); m != nil && !strings.HasPrefix(cur.String(), "+") {
			n, _ := strconv.Atoi(m[1])
			out = out[min(n, len(out)):]
			continue
		}
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// checkStore: every mailbox of alice's agrees with its messages, and every
// message's body is there with its size.
func (e *fuzzEnv) checkStore(t *testing.T) {
	boxes, err := e.store.Mailboxes(e.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range boxes {
		ms, err := e.store.Messages(e.ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		unseen, size := 0, int64(0)
		last := uint32(0)
		for _, m := range ms {
			if m.UID <= last || m.UID >= mb.UIDNext {
				t.Fatalf("%s: UID %d after %d, UIDNEXT %d", mb.Name, m.UID, last, mb.UIDNext)
			}
			last = m.UID
			if m.Flags.System&mailstore.Seen == 0 {
				unseen++
			}
			size += m.Size
		}
		if len(ms) != mb.Messages || unseen != mb.Unseen || size != mb.Size {
			t.Fatalf("%s: counters %d messages, %d unseen, %d octets; rows say %d, %d, %d",
				mb.Name, mb.Messages, mb.Unseen, mb.Size, len(ms), unseen, size)
		}
		for _, m := range ms[max(0, len(ms)-5):] {
			full, err := e.store.Message(e.ctx, mb.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			body, err := e.store.OpenBody(e.ctx, full.Body)
			if err != nil {
				t.Fatalf("%s UID %d: body: %v", mb.Name, m.UID, err)
			}
			n, err := io.Copy(io.Discard, body)
			body.Close()
			if err != nil || n != m.Size {
				t.Fatalf("%s UID %d: body %d octets (%v), size %d", mb.Name, m.UID, n, err, m.Size)
			}
		}
	}
}
