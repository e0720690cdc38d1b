package pop3server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"posta/internal/config"
	"posta/internal/database"
	"posta/internal/guard"
	"posta/internal/mailstore"
	"posta/internal/pipenet"
)

// rfcSeeds are the C: lines of the examples in RFC 1939 (sections 4-7 and
// 10), RFC 2449 5, RFC 2595 4 and RFC 5034 6:
//
//	grep -h '^ *C: ' rfc1939.txt rfc2449.txt rfc2595.txt rfc5034.txt
var rfcSeeds = []string{
	"USER mrose", "USER frated", "PASS secret", "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
	"STAT", "LIST", "LIST 2", "LIST 3", "RETR 1", "RETR 2", "DELE 1", "DELE 2", "NOOP", "RSET", "QUIT",
	"TOP 1 10", "TOP 100 3", "UIDL", "UIDL 2", "UIDL 3", "CAPA", "STLS",
	"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", "AUTH PLAIN", "dGVzdAB0ZXN0AHRlc3Q=", "AUTH DIGEST-MD5", "",
}

// FuzzParseCommand checks the grammar alone: no panic, a keyword that is
// upper-case alphanumerics, arguments without spaces or control octets, and
// Args always the space-separated fields of Rest.
func FuzzParseCommand(f *testing.F) {
	for _, s := range rfcSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("PASS  two  spaces "))
	f.Add([]byte("user j\xc3\xb6rg"))
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := ParseCommand(line)
		if err != nil {
			return
		}
		if len(cmd.Verb) == 0 || len(cmd.Verb) > maxVerbLen || strings.ToUpper(cmd.Verb) != cmd.Verb {
			t.Fatalf("verb %q from %q", cmd.Verb, line)
		}
		for _, r := range cmd.Verb {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("verb %q from %q", cmd.Verb, line)
			}
		}
		fields := strings.FieldsFunc(cmd.Rest, func(r rune) bool { return r == ' ' })
		if len(fields) != len(cmd.Args) {
			t.Fatalf("args %q, rest %q", cmd.Args, cmd.Rest)
		}
		for i, a := range cmd.Args {
			if a != fields[i] || a == "" || strings.ContainsAny(a, " \r\n\x00") {
				t.Fatalf("arg %q from %q", a, line)
			}
		}
		// Parsing what it means again gives the same command.
		again := cmd.Verb
		if cmd.Rest != "" || bytes.IndexByte(line, ' ') >= 0 {
			again += " " + cmd.Rest
		}
		cmd2, err := ParseCommand([]byte(again))
		if err != nil || cmd2.Verb != cmd.Verb || cmd2.Rest != cmd.Rest || len(cmd2.Args) != len(cmd.Args) {
			t.Fatalf("re-parse of %q: %+v %v, first %+v", again, cmd2, err, cmd)
		}
	})
}

// FuzzStuffing checks dotWriter against the byte-at-a-time reference for
// any body and any chunking, and that a client that un-stuffs the
// response gets the body back and sees no end before the real one.
func FuzzStuffing(f *testing.F) {
	f.Add([]byte(dottedMsg), []byte{3, 17})
	f.Add([]byte(bareLF), []byte{1})
	f.Add([]byte(".\r\n.\r\n"), []byte{0, 1, 2, 3})
	f.Add([]byte(""), []byte{})
	f.Fuzz(func(t *testing.T, msg, cutBytes []byte) {
		var cuts []int
		for _, c := range cutBytes {
			if len(msg) > 0 {
				cuts = append(cuts, int(c)%(len(msg)+1))
			}
		}
		// Chunk points must not decrease.
		for i := 1; i < len(cuts); i++ {
			cuts[i] = max(cuts[i], cuts[i-1])
		}
		out := stuffChunked(msg, cuts)
		if want := stuffRef(msg); !bytes.Equal(out, want) {
			t.Fatalf("got %q, want %q", out, want)
		}
		// The first line that is "." alone (after LF) is the last one.
		if !bytes.HasSuffix(out, []byte(".\r\n")) {
			t.Fatalf("no terminator: %q", out)
		}
		lines := bytes.SplitAfter(out[:len(out)-3], []byte("\n"))
		for i, l := range lines {
			if string(l) == ".\r\n" || string(l) == ".\n" {
				t.Fatalf("terminator at line %d of %d in %q", i, len(lines), out)
			}
		}
		got := unstuff(out)
		if !bytes.Equal(got, msg) && !bytes.Equal(got, append(append([]byte{}, msg...), '\r', '\n')) {
			t.Fatalf("un-stuffed %q, want %q", got, msg)
		}
	})
}

// FuzzSession drives whole sessions (plaintext logins allowed, a real mail
// store) with arbitrary client bytes, each session starting logged out and
// often logged in by the seed. It checks what must hold whatever the client
// sends: no panic, every line the server writes ends with CRLF, no internal
// error text, the maildrop lock released when the session ends, and the
// store's INBOX still readable.
func FuzzSession(f *testing.F) {
	login := "USER alice@example.test\r\nPASS alice-password\r\n"
	for _, s := range []string{
		// RFC 1939 10, the example session.
		login + "STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n",
		login + "TOP 1 10\r\nTOP 100 3\r\nUIDL\r\nUIDL 2\r\nUIDL 3\r\nLIST 2\r\nLIST 3\r\nRSET\r\nNOOP\r\n",
		// RFC 2449 5, RFC 5034 6.
		"CAPA\r\nAUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\nAUTH PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\nAUTH DIGEST-MD5\r\n",
		"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n",
		"AUTH SCRAM-SHA-256 biwsbj1hbGljZUBleGFtcGxlLnRlc3Qscj1hYmM=\r\n*\r\nSTLS\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
		login + "DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\n\r\nRETR 0\r\nTOP 2 -1\r\nUSER x\r\n",
		"PASS x\r\nUSER\r\nUSER a b\r\n\x00\r\n" + strings.Repeat("A", 600) + "\r\nQUIT\r\n",
	} {
		f.Add([]byte(s))
	}
	for _, s := range rfcSeeds {
		f.Add([]byte(login + s + "\r\n"))
	}

	ctx := context.Background()
	dir := f.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	st, err := mailstore.Open(ctx, db, dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = testHostname
	cfg.AllowPlaintextAuth = true
	logs := &logBuf{}
	locks := NewMaildropLocks()
	s, err := New(Options{Config: cfg, Listener: config.Listener{Name: "pop3", Protocol: "pop3"},
		Directory: newMemCreds(f), Guard: guard.New(guard.Limits{ExemptLoopback: true}), Store: st, Locks: locks,
		Limits: Limits{IdleTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxErrors: 50, MaxCommandsBeforeAuth: 50},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		f.Fatal(err)
	}
	ln := pipenet.Listen(110)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	f.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			f.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			f.Errorf("Serve: %v", err)
		}
		st.Close()
		db.Close()
	})
	if err := st.EnsureAccount(ctx, "alice@example.test"); err != nil {
		f.Fatal(err)
	}
	refill := func(t *testing.T) {
		mb, err := st.Mailbox(ctx, "alice@example.test", "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if mb.Messages >= 3 {
			return
		}
		var msgs []mailstore.NewMessage
		for _, b := range []string{plainMsg, dottedMsg, noFinalEOL} {
			msgs = append(msgs, mailstore.NewMessage{Inline: []byte(b), Size: int64(len(b)), InternalDate: time.Now()})
		}
		if _, err := st.Append(ctx, "alice@example.test", "INBOX", msgs...); err != nil {
			t.Fatal(err)
		}
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		refill(t)
		// The server serves every input: count this one's panics only (a
		// sticky total would blame, and minimize to, later inputs).
		panicsBefore := s.Panics()
		cc, _, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cc.SetDeadline(time.Now().Add(10 * time.Second))
		out := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(cc)
			out <- b
		}()
		// Whatever state the input leaves, cancel an AUTH exchange and quit.
		if _, err := cc.Write(in); err == nil {
			cc.Write([]byte("\r\n*\r\nQUIT\r\n"))
		}
		got := <-out
		if n := s.Panics() - panicsBefore; n != 0 {
			t.Fatalf("%d commands panicked:\n%s", n, logs.String())
		}
		if !bytes.HasPrefix(got, []byte("+OK "+testHostname+" Posta POP3 server ready\r\n")) {
			t.Fatalf("no greeting: %q", got)
		}
		// Every stored test message is CRLF-only, so a line without CRLF
		// is the server's own.
		for _, l := range bytes.SplitAfter(got, []byte("\n")) {
			if len(l) > 0 && !bytes.HasSuffix(l, []byte("\r\n")) {
				t.Fatalf("line without CRLF %q in %q", l, got)
			}
			if bytes.Contains(l, []byte("memcreds:")) || bytes.Contains(l, []byte("mailstore:")) || bytes.Contains(l, []byte("sql")) {
				t.Fatalf("internal text in reply %q", l)
			}
		}
		if locks.Held("alice@example.test") {
			t.Fatal("maildrop still locked after the session ended")
		}
	})
}
