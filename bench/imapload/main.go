// Command imapload is an IMAP load generator in the manner of imaptest, and
// the helper that fills two servers with the same mail (see
// bench/imap-vs-dovecot.sh). Every mode logs in with -user and -pass (-auth
// login: LOGIN; scram: AUTHENTICATE SCRAM-SHA-256) on -addr without TLS.
//
//	imapload -mode fill -user a@x[,b@x...] -n 100000 [-split 2]
//	    APPEND n deterministic messages (fixed -seed; 60% 1-4 KiB, 30%
//	    4-16 KiB, 10% 16-64 KiB; From, To, Cc, Subject, Date, Message-ID,
//	    Received..., a quarter multipart) into -mailbox of every account:
//	    -window APPEND commands in flight per connection, -split connections
//	    per account, -c accounts at a time. Message i is the same on every
//	    run and server, and so is its INTERNALDATE; with -split 1 so is the
//	    order. Prints appended, append_per_sec; progress on stderr.
//	imapload -mode load -user a@x,b@x -c 4 -d 20s
//	    C clients (client i logs in as account i mod len(accounts)), each:
//	    login, SELECT INBOX, then for -d a weighted random mix (-mix, fixed
//	    seed per client) of FETCH (FLAGS ENVELOPE) of 1-5 random messages,
//	    FETCH BODY.PEEK[] of one, STORE +/-FLAGS \Seen or \Flagged, SEARCH
//	    UNSEEN, APPEND of a small message, STORE +FLAGS.SILENT \Deleted and
//	    EXPUNGE of one, NOOP, and (rarely) LOGOUT and a new connection, LOGIN
//	    and SELECT. One command at a time per client, as a mail client works;
//	    answers are checked (every message fetched came back, with an
//	    envelope or body; EXPUNGE removed one). Prints ops_per_sec (mix
//	    operations completed per second), commands_per_sec, errors, and per
//	    operation count, errors and latency. Errors are printed (the first
//	    10, or all with -v) and counted; a client whose connection died
//	    reconnects. Exits 1 when more than -max-errors of the operations
//	    failed.
//	imapload -mode select -user big@x -repeat 5
//	    -repeat times: a new connection, login (not timed), then the time of
//	    SELECT of -mailbox and of UID FETCH 1:* (FLAGS ENVELOPE), each to its
//	    tagged OK; checks that there was one FETCH per message. Prints
//	    messages, select_ms_median, select_ms_all, fetch_ms_median,
//	    fetch_ms_all. This mode reads the wire itself (counting responses,
//	    skipping literals) so that the time is the server's, not the time a
//	    client library takes to parse 100k envelopes; one FETCH 1:100 through
//	    imapclient then checks that the envelopes parse.
//	imapload -mode idle -user a@x,b@x -sessions 1000,10000 [-p 8]
//	    for each step: open sessions (round-robin over the accounts, -p
//	    logins in flight) until there are that many, each logged in, SELECT
//	    INBOX and IDLE; print "ready N" and wait for a line on standard input
//	    (EOF: go on; "stop": skip the remaining steps) before the next step.
//	    After the last step it waits likewise, checks that the server kept
//	    every session (prints closed 0), and exits: sessions are cut, not
//	    logged out. Raw connections with a goroutine and a 4 KiB buffer
//	    each, and RLIMIT_NOFILE raised to its hard limit, so one process
//	    holds 10k sessions.
//	imapload -mode mem -pid PID [-children]
//	    pss_kib and rss_kib of a process (with -children: summed over it and
//	    its direct children, e.g. Dovecot's master and its imap processes),
//	    from /proc/PID/smaps_rollup.
//
// Results are "key value" lines on standard output, for the script;
// progress and errors go to standard error.
package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/xdg-go/scram"
)

var (
	addr       = flag.String("addr", "127.0.0.1:143", "IMAP server (no TLS)")
	users      = flag.String("user", "bench@example.test", "login name; a comma-separated list spreads accounts over clients/sessions")
	pass       = flag.String("pass", "bench-password", "password of every account")
	auth       = flag.String("auth", "login", "how to log in: login (LOGIN) or scram (AUTHENTICATE SCRAM-SHA-256)")
	mode       = flag.String("mode", "load", "fill, load, select, idle or mem")
	mailbox    = flag.String("mailbox", "INBOX", "mailbox to fill (fill) or select (select)")
	seed       = flag.Int64("seed", 1, "random seed: the messages and the mix follow from it")
	nMsgs      = flag.Int("n", 1000, "fill: messages per account")
	conns      = flag.Int("c", 4, "load: concurrent clients; fill: accounts filled at once")
	window     = flag.Int("window", 64, "fill: APPEND commands in flight per connection")
	fillSelect = flag.Bool("fill-select", true, "fill: SELECT the mailbox before appending to it (servers keep it open then)")
	split      = flag.Int("split", 1, "fill: connections per account (message i goes to connection i mod split; >1 leaves the order to the server)")
	duration   = flag.Duration("d", 20*time.Second, "load: how long")
	mix        = flag.String("mix", "fetch_envelope=250,fetch_body=150,store=200,search_unseen=80,append=100,expunge=80,noop=138,relogin=2", "load: operation weights (relogin is rare: a LOGIN costs 50 ms of argon2id, 100 commands' worth)")
	maxErr     = flag.Float64("max-errors", 0.01, "load: fraction of failed operations above which the exit status is 1")
	repeat     = flag.Int("repeat", 5, "select: measurements")
	sessions   = flag.String("sessions", "1000", "idle: session counts to stop at, comma-separated and increasing")
	parallel   = flag.Int("p", 8, "idle: logins in flight")
	pid        = flag.Int("pid", 0, "mem: process id")
	children   = flag.Bool("children", false, "mem: add the direct children of -pid")
	verbose    = flag.Bool("v", false, "print every error, not just the first few")
)

func main() {
	flag.Parse()
	var err error
	switch *mode {
	case "fill":
		err = fill()
	case "load":
		err = load()
	case "select":
		err = selectBench()
	case "idle":
		err = idle()
	case "mem":
		err = mem()
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imapload:", err)
		os.Exit(1)
	}
}

func accounts() []string {
	var us []string
	for _, u := range strings.Split(*users, ",") {
		if u = strings.TrimSpace(u); u != "" {
			us = append(us, u)
		}
	}
	return us
}

// dial connects and logs in (-auth).
func dial(user string, opts *imapclient.Options) (*imapclient.Client, error) {
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.Dialer = &net.Dialer{Timeout: 30 * time.Second}
	c, err := imapclient.DialInsecure(*addr, opts)
	if err != nil {
		return nil, err
	}
	switch *auth {
	case "scram":
		sc, err := scramFor(user)
		if err == nil {
			err = c.Authenticate(&scramSASL{conv: sc.NewConversation()})
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("AUTHENTICATE SCRAM-SHA-256 %s: %w", user, err)
		}
	default:
		if err := c.Login(user, *pass).Wait(); err != nil {
			c.Close()
			return nil, fmt.Errorf("LOGIN %s: %w", user, err)
		}
	}
	return c, nil
}

// One SCRAM client per account: it caches the salted password per salt and
// iteration count, so the PBKDF2 runs once per account, not per session.
var (
	scramMu      sync.Mutex
	scramClients = map[string]*scram.Client{}
)

func scramFor(user string) (*scram.Client, error) {
	scramMu.Lock()
	defer scramMu.Unlock()
	if c := scramClients[user]; c != nil {
		return c, nil
	}
	c, err := scram.SHA256.NewClient(user, *pass, "")
	if err != nil {
		return nil, err
	}
	scramClients[user] = c
	return c, nil
}

// scramSASL adapts a SCRAM conversation to go-sasl's Client for
// imapclient.Authenticate; the last step checks the server's signature.
type scramSASL struct{ conv *scram.ClientConversation }

func (s *scramSASL) Start() (string, []byte, error) {
	first, err := s.conv.Step("")
	return "SCRAM-SHA-256", []byte(first), err
}

func (s *scramSASL) Next(challenge []byte) ([]byte, error) {
	resp, err := s.conv.Step(string(challenge))
	return []byte(resp), err
}

// ---- messages ----

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
		"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë"}
	lastNames = []string{"Smith", "Jones", "Müller", "García", "Martin", "Rossi", "Novak", "Kowalski",
		"Jensen", "Dubois", "Silva", "Tanaka", "O'Brien", "Nguyen", "Schmidt", "Svensson"}
	domains = []string{"example.com", "example.org", "mail.example.net", "corp.example", "uni.example.edu",
		"lists.example.org"}
	words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
		from at which but have an they you were her she there been one all we their has would when if
		so no will can more other its into only some could time these two may then do first any my now
		such like our over man me even most made after also did many before must through back years
		where much your way well down should because each just those people how too little state good
		very make world still own see men work long get here between both life being under never day
		same another know while last might us great old year off come since against go came right used
		take three meeting report budget invoice schedule project release review draft agenda quarterly
		server deploy backup password account update weekly minutes contract offer order shipping`)
	zones = []string{"+0000", "+0100", "+0200", "-0500", "-0800", "+0530", "+0900"}
)

func person(r *rand.Rand) (name, address string) {
	f, l := firstNames[r.Intn(len(firstNames))], lastNames[r.Intn(len(lastNames))]
	local := strings.ToLower(strings.NewReplacer("ë", "e", "ü", "u", "í", "i", "'", "").Replace(f + "." + l))
	return f + " " + l, local + "@" + domains[r.Intn(len(domains))]
}

// quoteName renders a display name: an RFC 2047 word when it is not ASCII,
// quoted when it has specials.
func quoteName(s string) string {
	for _, ch := range s {
		if ch >= 0x80 {
			return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	if strings.ContainsAny(s, `'".,`) {
		return `"` + s + `"`
	}
	return s
}

func sentence(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.Intn(len(words))]
	}
	return strings.Join(ws, " ")
}

// text appends 72-column lines of words until b holds about size octets.
func text(b *strings.Builder, r *rand.Rand, size int) {
	col := 0
	for b.Len() < size {
		w := words[r.Intn(len(words))]
		if col+len(w)+1 > 72 {
			b.WriteString("\r\n")
			col = 0
			if r.Intn(8) == 0 {
				b.WriteString("\r\n")
			}
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
}

// messageSize draws the size of message i: 60% 1-4 KiB, 30% 4-16 KiB, 10%
// 16-64 KiB.
func messageSize(r *rand.Rand) int {
	switch p := r.Float64(); {
	case p < 0.6:
		return 1<<10 + r.Intn(3<<10)
	case p < 0.9:
		return 4<<10 + r.Intn(12<<10)
	default:
		return 16<<10 + r.Intn(48<<10)
	}
}

var baseDate = time.Date(2025, 1, 6, 8, 0, 0, 0, time.UTC)

// message returns message i of the seed's sequence (size 0: drawn) and its
// date. The same (seed, i) gives the same octets.
func message(seed int64, i int, size int, to string) ([]byte, time.Time) {
	r := rand.New(rand.NewSource(seed*1_000_003 + int64(i)))
	if size == 0 {
		size = messageSize(r)
	}
	date := baseDate.Add(time.Duration(i)*7*time.Minute + time.Duration(r.Intn(300))*time.Second)
	zone := zones[r.Intn(len(zones))]
	zh, _ := strconv.Atoi(zone[1:3])
	zm, _ := strconv.Atoi(zone[3:])
	off := zh*3600 + zm*60
	if zone[0] == '-' {
		off = -off
	}
	date = date.In(time.FixedZone(zone, off))

	var b strings.Builder
	b.Grow(size + 2048)
	fromName, from := person(r)
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(&b, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.example.test with ESMTPS id %08X\r\n\tfor <%s>; %s\r\n",
		r.Intn(9), domains[r.Intn(len(domains))], r.Intn(9), domains[r.Intn(len(domains))], 1+r.Intn(250),
		r.Uint32(), to, date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s <%s>\r\n", quoteName(fromName), from)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	if r.Intn(4) == 0 {
		n, a := person(r)
		n2, a2 := person(r)
		fmt.Fprintf(&b, "Cc: %s <%s>, %s <%s>\r\n", quoteName(n), a, quoteName(n2), a2)
	}
	subj := sentence(r, 3+r.Intn(6))
	subj = strings.ToUpper(subj[:1]) + subj[1:]
	switch p := r.Intn(20); {
	case p < 5:
		subj = "Re: " + subj
	case p < 6:
		subj = "Fwd: " + subj
	}
	if r.Intn(20) == 0 {
		fmt.Fprintf(&b, "Subject: =?UTF-8?Q?Caf=C3=A9_r=C3=A9sum=C3=A9?= %s\r\n", subj)
	} else {
		fmt.Fprintf(&b, "Subject: %s\r\n", subj)
	}
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d.%08x@%s>\r\n", seed, i, r.Uint32(), domains[r.Intn(len(domains))])
	if strings.HasPrefix(subj, "Re: ") && i > 1 {
		fmt.Fprintf(&b, "In-Reply-To: <%d.%d.parent@example.com>\r\n", seed, r.Intn(i))
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	boundary := fmt.Sprintf("=_bound_%d_%08x", i, r.Uint32())
	switch p := r.Intn(100); {
	case p < 75: // text/plain
		b.WriteString("Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		text(&b, r, size)
	case p < 90: // multipart/alternative: text and html
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
		text(&b, r, b.Len()+(size-b.Len())/3)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>\r\n", boundary)
		text(&b, r, size-40)
		fmt.Fprintf(&b, "</p></body></html>\r\n--%s--\r\n", boundary)
	default: // multipart/mixed: a short text and a base64 attachment
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
		fmt.Fprintf(&b, "This is a multi-part message in MIME format.\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
		text(&b, r, b.Len()+300+r.Intn(700))
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"%s.pdf\"\r\nContent-Disposition: attachment; filename=\"%s.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, words[r.Intn(len(words))], words[r.Intn(len(words))])
		raw := make([]byte, 57)
		for b.Len() < size-40 {
			r.Read(raw)
			b.WriteString(base64.StdEncoding.EncodeToString(raw))
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
	}
	return []byte(b.String()), date
}

// ---- fill ----

func fill() error {
	us := accounts()
	if len(us) == 0 {
		return errors.New("no -user")
	}
	start := time.Now()
	var done, octets atomic.Int64
	total := int64(len(us) * *nMsgs)
	stop := make(chan struct{})
	go func() { // progress line
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				el := time.Since(start).Seconds()
				fmt.Fprintf(os.Stderr, "\rfill: %d/%d messages, %.0f/s, %.0fs ", done.Load(), total, float64(done.Load())/el, el)
			}
		}
	}()
	work := make(chan string, len(us))
	for _, u := range us {
		work <- u
	}
	close(work)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range min(*conns, len(us)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if err := create(u); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", u, err))
					return
				}
				var wg2 sync.WaitGroup
				for part := range max(*split, 1) {
					wg2.Add(1)
					go func() {
						defer wg2.Done()
						if err := fillAccount(u, part, max(*split, 1), &done, &octets); err != nil {
							firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", u, err))
						}
					}()
				}
				wg2.Wait()
			}
		}()
	}
	wg.Wait()
	close(stop)
	el := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "\rfill: %d/%d messages, %.0f/s, %.1fs\n", done.Load(), total, float64(done.Load())/el, el)
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	fmt.Printf("appended %d\nappend_mib %.1f\nappend_seconds %.2f\nappend_per_sec %.1f\n",
		done.Load(), float64(octets.Load())/(1<<20), el, float64(done.Load())/el)
	return nil
}

// create makes -mailbox unless it is INBOX. A second fill of the same
// mailbox is fine: CREATE then fails with ALREADYEXISTS, and the messages
// are added again.
func create(user string) error {
	if strings.EqualFold(*mailbox, "INBOX") {
		return nil
	}
	c, err := dial(user, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(*mailbox, nil).Wait(); err != nil {
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
			return fmt.Errorf("CREATE: %w", err)
		}
	}
	return c.Logout().Wait()
}

// fillAccount appends the messages in order on one connection, with up to
// -window commands in flight: a writer issues APPENDs while a waiter
// collects their tagged replies.
func fillAccount(user string, part, parts int, done, octets *atomic.Int64) error {
	c, err := dial(user, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if *fillSelect {
		if _, err := c.Select(*mailbox, nil).Wait(); err != nil {
			return fmt.Errorf("SELECT: %w", err)
		}
	}
	inflight := make(chan *imapclient.AppendCommand, *window)
	waitErr := make(chan error, 1)
	go func() {
		var first error
		for cmd := range inflight {
			if _, err := cmd.Wait(); err != nil && first == nil {
				first = err
			}
			done.Add(1)
		}
		waitErr <- first
	}()
	var werr error
	for i := 1 + part; i <= *nMsgs; i += parts {
		msg, date := message(*seed, i, 0, user)
		cmd := c.Append(*mailbox, int64(len(msg)), &imap.AppendOptions{Time: date})
		_, werr = cmd.Write(msg)
		if err := cmd.Close(); werr == nil {
			werr = err
		}
		inflight <- cmd
		octets.Add(int64(len(msg)))
		if werr != nil {
			werr = fmt.Errorf("APPEND %d: %w", i, werr)
			break
		}
	}
	close(inflight)
	if err := <-waitErr; err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if werr != nil {
		return werr
	}
	return c.Logout().Wait()
}

// ---- load ----

type opKind int

const (
	opFetchEnvelope opKind = iota
	opFetchBody
	opStore
	opSearch
	opAppend
	opExpunge
	opNoop
	opRelogin
	nOps
)

var opNames = [nOps]string{"fetch_envelope", "fetch_body", "store", "search_unseen", "append", "expunge", "noop", "relogin"}

// commands each operation sends (relogin: LOGOUT, LOGIN, SELECT).
var opCommands = [nOps]int64{1, 1, 1, 1, 1, 2, 1, 3}

type opStats struct {
	count, errors atomic.Int64
	nanos, max    atomic.Int64
}

func parseMix(s string) ([nOps]int, error) {
	var w [nOps]int
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		i := slices.Index(opNames[:], k)
		n, err := strconv.Atoi(v)
		if !ok || i < 0 || err != nil || n < 0 {
			return w, fmt.Errorf("-mix: bad entry %q (operations: %s)", kv, strings.Join(opNames[:], ", "))
		}
		w[i] = n
	}
	return w, nil
}

type loadClient struct {
	id   int
	user string
	r    *rand.Rand
	c    *imapclient.Client
	nApp int
}

func (lc *loadClient) connect() error {
	c, err := dial(lc.user, nil)
	if err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return fmt.Errorf("SELECT: %w", err)
	}
	lc.c = c
	return nil
}

func (lc *loadClient) exists() uint32 {
	if mb := lc.c.Mailbox(); mb != nil {
		return mb.NumMessages
	}
	return 0
}

func (lc *loadClient) randSeq() uint32 { return 1 + uint32(lc.r.Intn(int(lc.exists()))) }

// fetch runs a FETCH and checks that every requested message came back with
// the items asked for.
func (lc *loadClient) fetch(set imap.SeqSet, opts *imap.FetchOptions, want int) error {
	msgs, err := lc.c.Fetch(set, opts).Collect()
	if err != nil {
		return err
	}
	if len(msgs) != want {
		return fmt.Errorf("FETCH %v: %d messages returned, want %d", set, len(msgs), want)
	}
	for _, m := range msgs {
		if opts.Envelope && (m.Envelope == nil || m.Envelope.MessageID == "") {
			return fmt.Errorf("FETCH %d: no ENVELOPE or Message-ID", m.SeqNum)
		}
		if len(opts.BodySection) > 0 && len(m.BodySection) == 0 {
			return fmt.Errorf("FETCH %d: no body section", m.SeqNum)
		}
		for _, bs := range m.BodySection {
			if len(bs.Bytes) < 200 {
				return fmt.Errorf("FETCH %d: body of %d octets", m.SeqNum, len(bs.Bytes))
			}
		}
	}
	return nil
}

// step runs one operation of the mix and says which: an operation that
// needs messages becomes an APPEND in an empty mailbox, and so does an
// EXPUNGE when fewer than 10 are left.
func (lc *loadClient) step(op opKind) (opKind, error) {
	n := lc.exists()
	if n == 0 && op != opAppend && op != opNoop && op != opRelogin && op != opSearch || op == opExpunge && n < 10 {
		op = opAppend
	}
	return op, lc.run(op)
}

func (lc *loadClient) run(op opKind) error {
	switch op {
	case opFetchEnvelope:
		var set imap.SeqSet
		k := 1 + lc.r.Intn(5)
		seen := map[uint32]bool{}
		for range k {
			s := lc.randSeq()
			if !seen[s] {
				seen[s] = true
				set.AddNum(s)
			}
		}
		return lc.fetch(set, &imap.FetchOptions{Flags: true, Envelope: true}, len(seen))
	case opFetchBody:
		return lc.fetch(imap.SeqSetNum(lc.randSeq()), &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}, 1)
	case opStore:
		sf := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}
		if lc.r.Intn(2) == 0 {
			sf.Op = imap.StoreFlagsDel
		}
		if lc.r.Intn(3) == 0 {
			sf.Flags = []imap.Flag{imap.FlagFlagged}
		}
		return lc.c.Store(imap.SeqSetNum(lc.randSeq()), sf, nil).Close()
	case opSearch:
		_, err := lc.c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		return err
	case opAppend:
		lc.nApp++
		r := lc.r
		msg, date := message(*seed+int64(1000+lc.id), lc.nApp, 1<<10+r.Intn(3<<10), lc.user)
		cmd := lc.c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Time: date})
		_, werr := cmd.Write(msg)
		if err := cmd.Close(); werr == nil {
			werr = err
		}
		if _, err := cmd.Wait(); err != nil {
			return err
		}
		return werr
	case opExpunge:
		err := lc.c.Store(imap.SeqSetNum(lc.randSeq()), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if err != nil {
			return fmt.Errorf("STORE \\Deleted: %w", err)
		}
		seqs, err := lc.c.Expunge().Collect()
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return errors.New("EXPUNGE removed nothing after STORE \\Deleted")
		}
		return nil
	case opNoop:
		return lc.c.Noop().Wait()
	case opRelogin:
		err := lc.c.Logout().Wait()
		lc.c.Close()
		lc.c = nil
		if err != nil && !errors.Is(err, io.EOF) {
			lc.connect()
			return fmt.Errorf("LOGOUT: %w", err)
		}
		return lc.connect()
	}
	return nil
}

func load() error {
	us := accounts()
	weights, err := parseMix(*mix)
	if err != nil {
		return err
	}
	sum := 0
	for _, w := range weights {
		sum += w
	}
	if sum == 0 || len(us) == 0 {
		return errors.New("empty -mix or no -user")
	}
	var stats [nOps]opStats
	var errLog atomic.Int64
	logErr := func(lc *loadClient, op opKind, err error) {
		if *verbose || errLog.Add(1) <= 10 {
			fmt.Fprintf(os.Stderr, "imapload: client %d (%s) %s: %v\n", lc.id, lc.user, opNames[op], err)
		}
	}
	clients := make([]*loadClient, *conns)
	var wg sync.WaitGroup
	var setupErr atomic.Value
	for i := range clients {
		lc := &loadClient{id: i, user: us[i%len(us)], r: rand.New(rand.NewSource(*seed*7919 + int64(i)))}
		clients[i] = lc
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lc.connect(); err != nil {
				setupErr.CompareAndSwap(nil, fmt.Errorf("client %d: %w", lc.id, err))
			}
		}()
	}
	wg.Wait()
	if e := setupErr.Load(); e != nil {
		return e.(error)
	}
	start := time.Now()
	deadline := start.Add(*duration)
	var lastEnd atomic.Int64
	for _, lc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				x := lc.r.Intn(sum)
				op := opKind(0)
				for x >= weights[op] {
					x -= weights[op]
					op++
				}
				if lc.c == nil {
					if err := lc.connect(); err != nil {
						stats[opRelogin].errors.Add(1)
						logErr(lc, opRelogin, fmt.Errorf("reconnect: %w", err))
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				t0 := time.Now()
				op, err := lc.step(op)
				d := time.Since(t0).Nanoseconds()
				st := &stats[op]
				st.count.Add(1)
				st.nanos.Add(d)
				for m := st.max.Load(); d > m && !st.max.CompareAndSwap(m, d); m = st.max.Load() {
				}
				if err != nil {
					st.errors.Add(1)
					logErr(lc, op, err)
					if lc.c != nil {
						select {
						case <-lc.c.Closed():
							lc.c = nil // reconnect on the next round
						default:
						}
					}
				}
			}
			for end, e := time.Since(start).Nanoseconds(), lastEnd.Load(); end > e && !lastEnd.CompareAndSwap(e, end); e = lastEnd.Load() {
			}
			if lc.c != nil {
				lc.c.Logout().Wait()
				lc.c.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Duration(lastEnd.Load()).Seconds()
	var ops, errs, cmds int64
	for i := range stats {
		ok := stats[i].count.Load() - stats[i].errors.Load()
		ops += ok
		cmds += ok * opCommands[i]
		errs += stats[i].errors.Load()
	}
	fmt.Printf("clients %d\nseconds %.2f\nops %d\nerrors %d\nops_per_sec %.1f\ncommands_per_sec %.1f\n",
		len(clients), el, ops, errs, float64(ops)/el, float64(cmds)/el)
	for i := range stats {
		st := &stats[i]
		n := st.count.Load()
		mean := 0.0
		if n > 0 {
			mean = float64(st.nanos.Load()) / float64(n) / 1e6
		}
		fmt.Printf("op %s count=%d errors=%d mean_ms=%.2f max_ms=%.1f\n", opNames[i], n, st.errors.Load(), mean,
			float64(st.max.Load())/1e6)
	}
	if total := ops + errs; total == 0 || float64(errs) > *maxErr*float64(total) {
		return fmt.Errorf("%d of %d operations failed (more than -max-errors %.3f)", errs, total, *maxErr)
	}
	return nil
}

// ---- select ----

// rawConn is a minimal IMAP client for timing: it sends a command and reads
// to its tagged reply, counting untagged FETCH responses and skipping
// literals, without parsing them.
type rawConn struct {
	nc  net.Conn
	r   *bufio.Reader
	tag int
}

func rawDial(user string, bufSize int) (*rawConn, error) {
	nc, err := net.DialTimeout("tcp", *addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{nc: nc, r: bufio.NewReaderSize(nc, bufSize)}
	if l, err := rc.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("greeting %q: %v", l, err)
	}
	if *auth == "scram" {
		err = rc.scram(user)
	} else {
		_, _, err = rc.cmd("LOGIN " + quote(user) + " " + quote(*pass))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return rc, nil
}

// scram runs AUTHENTICATE SCRAM-SHA-256 (RFC 5802, RFC 9051 6.2.2) with
// the first message as SASL-IR (RFC 4959), which both servers offer. It is
// done here rather than through imapclient.Authenticate because that
// answers a challenge with an empty response as "=", which RFC 9051's
// grammar does not allow for a continuation and servers refuse (Dovecot:
// "Invalid base64 data in continued response"); SCRAM ends with such an
// empty response.
func (rc *rawConn) scram(user string) error {
	sc, err := scramFor(user)
	if err != nil {
		return err
	}
	conv := sc.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return err
	}
	rc.tag++
	tag := "r" + strconv.Itoa(rc.tag)
	rc.nc.SetDeadline(time.Now().Add(time.Minute))
	defer rc.nc.SetDeadline(time.Time{})
	b64 := base64.StdEncoding
	if _, err := io.WriteString(rc.nc, tag+" AUTHENTICATE SCRAM-SHA-256 "+b64.EncodeToString([]byte(first))+"\r\n"); err != nil {
		return err
	}
	for {
		line, err := rc.line()
		if err != nil {
			return fmt.Errorf("AUTHENTICATE: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fmt.Errorf("AUTHENTICATE SCRAM-SHA-256 %s: %s", user, rest)
			}
			if !conv.Valid() {
				return fmt.Errorf("AUTHENTICATE SCRAM-SHA-256 %s: OK without a valid server signature", user)
			}
			return nil
		}
		ch, ok := strings.CutPrefix(line, "+")
		if !ok {
			continue // untagged data
		}
		challenge, err := b64.DecodeString(strings.TrimSpace(ch))
		if err != nil {
			return fmt.Errorf("AUTHENTICATE: challenge %q: %w", ch, err)
		}
		resp, err := conv.Step(string(challenge))
		if err != nil {
			io.WriteString(rc.nc, "*\r\n") // cancel
			return fmt.Errorf("AUTHENTICATE SCRAM-SHA-256 %s: %w", user, err)
		}
		if _, err := io.WriteString(rc.nc, b64.EncodeToString([]byte(resp))+"\r\n"); err != nil {
			return err
		}
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// cmd returns the number of "* n FETCH" responses and the EXISTS count seen.
func (rc *rawConn) cmd(c string) (fetches int, exists int, err error) {
	rc.tag++
	tag := "r" + strconv.Itoa(rc.tag)
	rc.nc.SetDeadline(time.Now().Add(10 * time.Minute))
	if _, err := io.WriteString(rc.nc, tag+" "+c+"\r\n"); err != nil {
		return 0, 0, err
	}
	exists = -1
	for {
		line, err := rc.line()
		if err != nil {
			return fetches, exists, fmt.Errorf("%s: %w", c, err)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fetches, exists, fmt.Errorf("%s: %s", c, strings.TrimSpace(rest))
			}
			return fetches, exists, nil
		}
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "*" {
			switch strings.ToUpper(f[2]) {
			case "FETCH":
				fetches++
			case "EXISTS":
				exists, _ = strconv.Atoi(f[1])
			}
		}
	}
}

// line reads one response line; literals ({n} or {n+} at the end of a
// line) are skipped and the line goes on after them. Only the first 200
// octets of each line are kept.
func (rc *rawConn) line() (string, error) {
	var head []byte
	for {
		l, err := rc.r.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			if len(head) < 200 {
				head = append(head, l[:min(len(l), 200)]...)
			}
			l, err = rc.r.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		if len(head) < 200 {
			head = append(head, l[:min(len(l), 200)]...)
		}
		t := strings.TrimRight(string(l), "\r\n")
		if strings.HasSuffix(t, "}") {
			if i := strings.LastIndexByte(t, '{'); i >= 0 {
				if n, err := strconv.Atoi(strings.TrimSuffix(t[i+1:len(t)-1], "+")); err == nil {
					if _, err := rc.r.Discard(n); err != nil {
						return "", err
					}
					continue
				}
			}
		}
		return string(head), nil
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func msList(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, strconv.FormatFloat(x, 'f', 1, 64))
	}
	return strings.Join(parts, ",")
}

func selectBench() error {
	us := accounts()
	if len(us) == 0 {
		return errors.New("no -user")
	}
	user := us[0]
	var sel, fet []float64
	exists := -1
	for i := 0; i < *repeat; i++ {
		rc, err := rawDial(user, 256<<10)
		if err != nil {
			return err
		}
		t0 := time.Now()
		_, n, err := rc.cmd("SELECT " + quote(*mailbox))
		t1 := time.Now()
		if err != nil {
			rc.nc.Close()
			return err
		}
		if n < 0 {
			rc.nc.Close()
			return errors.New("SELECT: no EXISTS response")
		}
		f, _, err := rc.cmd("UID FETCH 1:* (FLAGS ENVELOPE)")
		t2 := time.Now()
		if err != nil {
			rc.nc.Close()
			return err
		}
		if f != n {
			rc.nc.Close()
			return fmt.Errorf("UID FETCH 1:* returned %d FETCH responses for %d messages", f, n)
		}
		rc.cmd("LOGOUT")
		rc.nc.Close()
		exists = n
		sel = append(sel, float64(t1.Sub(t0).Microseconds())/1000)
		fet = append(fet, float64(t2.Sub(t1).Microseconds())/1000)
		fmt.Fprintf(os.Stderr, "select: %d messages, SELECT %.1f ms, UID FETCH 1:* (FLAGS ENVELOPE) %.1f ms\n",
			n, sel[i], fet[i])
	}
	// Check, through a real parser, that what was timed is well-formed.
	c, err := dial(user, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Select(*mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	k := uint32(min(exists, 100))
	if k > 0 {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: k}}, &imap.FetchOptions{Flags: true, Envelope: true, UID: true}).Collect()
		if err != nil {
			return fmt.Errorf("check FETCH 1:%d: %w", k, err)
		}
		if len(msgs) != int(k) {
			return fmt.Errorf("check FETCH 1:%d: %d messages", k, len(msgs))
		}
		for _, m := range msgs {
			if m.Envelope == nil || m.Envelope.MessageID == "" || m.Envelope.Subject == "" || len(m.Envelope.From) == 0 || m.UID == 0 {
				return fmt.Errorf("check FETCH: message %d: incomplete envelope %+v", m.SeqNum, m.Envelope)
			}
		}
	}
	c.Logout().Wait()
	fmt.Printf("messages %d\nselect_ms_median %.2f\nselect_ms_all %s\nfetch_ms_median %.1f\nfetch_ms_all %s\n",
		exists, median(sel), msList(sel), median(fet), msList(fet))
	return nil
}

// ---- idle ----

func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return
	}
	want := uint64(1 << 20)
	if rl.Max < want {
		// Root may raise the hard limit too; otherwise settle for it.
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
			return
		}
	}
	rl.Cur = rl.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}

// idleSession is one session in IDLE. A goroutine reads what the server
// sends (e.g. "* OK Still here") until the connection ends.
type idleSession struct {
	nc     net.Conn
	closed atomic.Bool
}

// openIdle logs in, selects INBOX and starts IDLE, on a raw connection: an
// idle session then costs the client a socket, a small buffer and one
// goroutine, so the client holds 10k of them easily.
func openIdle(user string) (*idleSession, error) {
	rc, err := rawDial(user, 4<<10)
	if err != nil {
		return nil, err
	}
	if _, n, err := rc.cmd("SELECT INBOX"); err != nil || n < 0 {
		rc.nc.Close()
		return nil, fmt.Errorf("SELECT INBOX: %v (EXISTS %d)", err, n)
	}
	rc.tag++
	rc.nc.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(rc.nc, "r"+strconv.Itoa(rc.tag)+" IDLE\r\n"); err != nil {
		rc.nc.Close()
		return nil, err
	}
	for {
		line, err := rc.line()
		if err != nil {
			rc.nc.Close()
			return nil, fmt.Errorf("IDLE: %w", err)
		}
		if strings.HasPrefix(line, "+") {
			break
		}
		if !strings.HasPrefix(line, "* ") {
			rc.nc.Close()
			return nil, fmt.Errorf("IDLE: %q", strings.TrimSpace(line))
		}
	}
	rc.nc.SetDeadline(time.Time{})
	is := &idleSession{nc: rc.nc}
	go func() {
		io.Copy(io.Discard, rc.r) // until EOF or an error
		is.closed.Store(true)
	}()
	return is, nil
}

func idle() error {
	raiseNoFile()
	var steps []int
	for _, s := range strings.Split(*sessions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || len(steps) > 0 && n < steps[len(steps)-1] {
			return fmt.Errorf("-sessions: %q is not a list of increasing counts", *sessions)
		}
		steps = append(steps, n)
	}
	us := accounts()
	if len(us) == 0 {
		return errors.New("no -user")
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if last := steps[len(steps)-1]; uint64(last)+64 > rl.Cur {
		return fmt.Errorf("%d sessions need more open files than RLIMIT_NOFILE %d allows", last, rl.Cur)
	}
	var (
		mu   sync.Mutex
		open []*idleSession
	)
	countClosed := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, is := range open {
			if is.closed.Load() {
				n++
			}
		}
		return n
	}
	stdin := bufio.NewReader(os.Stdin)
	opened := 0
	for _, target := range steps {
		start := time.Now()
		sem := make(chan struct{}, *parallel)
		var wg sync.WaitGroup
		var failed atomic.Int64
		var firstErr atomic.Value
		for i := opened; i < target; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				is, err := openIdle(us[i%len(us)])
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("session %d: %w", i, err))
					return
				}
				mu.Lock()
				open = append(open, is)
				mu.Unlock()
			}()
			if (i+1)%1000 == 0 {
				fmt.Fprintf(os.Stderr, "\ridle: %d sessions, %.0fs ", i+1, time.Since(start).Seconds())
			}
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			return fmt.Errorf("%d of %d new sessions failed; first: %v", f, target-opened, firstErr.Load())
		}
		opened = target
		fmt.Fprintf(os.Stderr, "\ridle: %d sessions open in %.1fs\n", target, time.Since(start).Seconds())
		// Let the server settle (login processes exit, buffers drain).
		time.Sleep(2 * time.Second)
		if n := countClosed(); n > 0 {
			return fmt.Errorf("the server closed %d of %d idle sessions", n, target)
		}
		fmt.Printf("ready %d\n", target)
		if l, _ := stdin.ReadString('\n'); strings.TrimSpace(l) == "stop" {
			break
		}
	}
	// Check that they were all still there during the measurement.
	n := countClosed()
	fmt.Printf("closed %d\n", n)
	if n > 0 {
		return fmt.Errorf("the server closed %d of %d idle sessions", n, opened)
	}
	return nil
}

// ---- mem ----

// smaps reads Pss and Rss (KiB) of a process.
func smaps(pid int) (pss, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Pss:":
			pss = v
		case "Rss:":
			rss = v
		}
	}
	return pss, rss, nil
}

func mem() error {
	if *pid <= 0 {
		return errors.New("no -pid")
	}
	pids := []int{*pid}
	if *children {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...; comm may hold spaces and parentheses.
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(*pid) {
				pids = append(pids, p)
			}
		}
	}
	var pss, rss int64
	n := 0
	for _, p := range pids {
		a, b, err := smaps(p)
		if err != nil {
			if p == *pid {
				return err
			}
			continue // exited meanwhile
		}
		pss += a
		rss += b
		n++
	}
	fmt.Printf("pss_kib %d\nrss_kib %d\nprocesses %d\n", pss, rss, n)
	return nil
}
