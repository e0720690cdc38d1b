package queue

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"posta/internal/blob"
	"posta/internal/database"
)

// sendCall is one Transport.Send the fake saw.
type sendCall struct {
	At   time.Time
	Env  Envelope
	Body string
}

// fakeTransport answers with reply(rcpt, n) where n counts the calls for
// the recipient's domain so far (0 for the first).
type fakeTransport struct {
	clk   Clock
	reply func(ctx context.Context, env Envelope, r Recipient, n int) Result
	mu    sync.Mutex
	calls []sendCall
	per   map[string]int
}

func (f *fakeTransport) Send(ctx context.Context, env Envelope, body func() (io.Reader, error)) []Result {
	r, err := body()
	if err != nil {
		panic(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		panic(err)
	}
	if int64(len(b)) != env.Size {
		panic(fmt.Sprintf("body is %d octets, envelope says %d", len(b), env.Size))
	}
	f.mu.Lock()
	if f.per == nil {
		f.per = map[string]int{}
	}
	n := f.per[env.Domain]
	f.per[env.Domain]++
	f.calls = append(f.calls, sendCall{At: f.clk.Now(), Env: env, Body: string(b)})
	f.mu.Unlock()
	var out []Result
	for _, rc := range env.Recipients {
		res := f.reply(ctx, env, rc, n)
		res.Recipient = rc.Address
		out = append(out, res)
	}
	return out
}

func (f *fakeTransport) Calls() []sendCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sendCall(nil), f.calls...)
}

func reply(code int, enhanced, text string) Result {
	return Result{Code: code, Enhanced: enhanced, Text: text, RemoteMTA: "mx.remote.test"}
}

// bounceCall is one DSN handed to Bounce.
type bounceCall struct {
	At         time.Time
	To         string
	DSN        []byte
	RequireTLS bool
}

type harness struct {
	t       *testing.T
	dir     string
	db      *sql.DB
	q       *Queue
	blobs   *blob.Store
	clk     *ManualClock
	tr      *fakeTransport
	idle    chan time.Time
	mu      sync.Mutex
	bounces []bounceCall
	// bounceErr, when set, makes Bounce fail while it returns an error.
	bounceErr func() error
	stop      func()
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clk: NewManualClock(t0)}
	h.tr = &fakeTransport{clk: h.clk, reply: func(context.Context, Envelope, Recipient, int) Result {
		return reply(250, "2.0.0", "OK")
	}}
	h.open()
	var err error
	if h.blobs, err = blob.Open(h.dir + "/blobs"); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) open() {
	h.t.Helper()
	db, err := database.Open(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	q, err := Open(context.Background(), db)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db, h.q = db, q
}

// options are the RunOptions tests start from: a poll far away, so the
// idle reports name the next attempt.
func (h *harness) options() RunOptions {
	return RunOptions{
		Transport: h.tr,
		Bounce: func(ctx context.Context, dsn []byte, to string, requireTLS bool) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.bounceErr != nil {
				if err := h.bounceErr(); err != nil {
					return err
				}
			}
			h.bounces = append(h.bounces, bounceCall{At: h.clk.Now(), To: to, DSN: dsn, RequireTLS: requireTLS})
			return nil
		},
		Blobs: h.blobs, Clock: h.clk, Hostname: "mail.example.test", Poll: 1000 * time.Hour,
	}
}

// start runs the worker until the test ends (or h.stop).
func (h *harness) start(o RunOptions) {
	h.t.Helper()
	h.idle = make(chan time.Time, 64)
	h.q.idle = func(next time.Time) { h.idle <- next }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.q.Run(ctx, o) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	}
	h.t.Cleanup(h.stop)
}

// waitIdle waits for the worker to go to sleep with nothing in flight and
// returns when it means to wake up.
func (h *harness) waitIdle() time.Time {
	h.t.Helper()
	select {
	case next := <-h.idle:
		return next
	case <-time.After(10 * time.Second):
		h.t.Fatal("the worker did not settle")
		return time.Time{}
	}
}

func (h *harness) Bounces() []bounceCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bounceCall(nil), h.bounces...)
}

const testBody = "Subject: hello\r\nFrom: <alice@example.test>\r\nMessage-ID: <m1@example.test>\r\n\r\nThe body text.\r\n"

// enqueue stores a body (behind a Return-Path line, as delivery does) and
// queues m for it, created now on the fake clock.
func (h *harness) enqueue(m Message, body string) int64 {
	h.t.Helper()
	rp := "Return-Path: <" + m.MailFrom + ">\r\n"
	w, err := h.blobs.Create()
	if err != nil {
		h.t.Fatal(err)
	}
	io.WriteString(w, rp+body)
	dir, err := w.Commit()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := blob.SyncDir(dir); err != nil {
		h.t.Fatal(err)
	}
	m.Blob, m.BodyOffset, m.Size = w.ID(), int64(len(rp)), int64(len(body))
	if m.Created.IsZero() {
		m.Created = h.clk.Now()
	}
	id, err := h.q.Enqueue(context.Background(), m)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) bodyGone(id blob.ID) bool {
	f, err := h.blobs.Open(id)
	if err == nil {
		f.Close()
		return false
	}
	if !errors.Is(err, blob.ErrNotFound) {
		h.t.Fatal(err)
	}
	return true
}

func (h *harness) show(id int64) *Detail {
	h.t.Helper()
	d, err := h.q.Show(context.Background(), id)
	if err != nil {
		h.t.Fatalf("show %d: %v", id, err)
	}
	return d
}

func (h *harness) gone(id int64) bool {
	h.t.Helper()
	_, err := h.q.Show(context.Background(), id)
	if err != nil && !errors.Is(err, ErrNoSuchMessage) {
		h.t.Fatal(err)
	}
	return err != nil
}

// parsedDSN is a DSN read back with a third-party MIME parser.
type parsedDSN struct {
	Header     message.Header
	Human      string
	StatusType string
	PerMessage textproto.MIMEHeader
	Recipients []textproto.MIMEHeader
	OrigType   string
	Orig       string
}

func parseDSN(t *testing.T, raw []byte) parsedDSN {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("DSN does not parse: %v\n%s", err, raw)
	}
	var d parsedDSN
	d.Header = e.Header
	ct, params, err := e.Header.ContentType()
	if err != nil || ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN content type %q %v %v", ct, params, err)
	}
	mr := e.MultipartReader()
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i < 2 {
				t.Fatalf("DSN has %d parts", i)
			}
			break
		}
		if err != nil {
			t.Fatalf("DSN part %d: %v", i, err)
		}
		pct, _, _ := p.Header.ContentType()
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("DSN part %d: %v", i, err)
		}
		switch i {
		case 0:
			if pct != "text/plain" {
				t.Fatalf("first part is %s", pct)
			}
			d.Human = string(b)
		case 1:
			d.StatusType = pct
			groups := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n\n")
			for j, g := range groups {
				h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(g + "\n\n"))).ReadMIMEHeader()
				if err != nil {
					t.Fatalf("delivery-status group %d: %v\n%s", j, err, g)
				}
				if j == 0 {
					d.PerMessage = h
				} else {
					d.Recipients = append(d.Recipients, h)
				}
			}
		case 2:
			d.OrigType, d.Orig = pct, string(b)
		default:
			t.Fatalf("DSN has a part %d (%s)", i, pct)
		}
	}
	return d
}

// want checks DSN fields: keys are field names, values what they must be.
func wantFields(t *testing.T, what string, h textproto.MIMEHeader, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := h[textproto.CanonicalMIMEHeaderKey(k)]
		if v == "" {
			if ok {
				t.Errorf("%s: %s present (%q); want none", what, k, got)
			}
			continue
		}
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s = %q; want %q", what, k, got, v)
		}
	}
}
