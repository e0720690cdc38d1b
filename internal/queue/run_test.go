package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"posta/internal/database"
)

func TestDeliveredMessageAndBodyRemoved(t *testing.T) {
	h := newHarness(t)
	o := h.options()
	var signed []string
	o.Sign = func(ctx context.Context, domain string, body io.Reader) ([]byte, error) {
		b, _ := io.ReadAll(body)
		if string(b) != testBody {
			t.Errorf("Sign got %q", b)
		}
		signed = append(signed, domain)
		return []byte("DKIM-Signature: v=1; d=" + domain + "\r\n"), nil
	}
	id := h.enqueue(Message{MailFrom: "alice@Example.test", Account: "alice@example.test", EnvID: "env-1", Ret: "HDRS",
		Recipients: []Recipient{
			{Address: "x@remote.test", Notify: []string{"FAILURE"}, ORCPT: "rfc822;x@remote.test"},
			{Address: "y@Remote.TEST"},
			{Address: "z@other.test"},
		}}, testBody)
	m := h.show(id).Message
	h.start(o)
	h.waitIdle()
	calls := h.tr.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d sends; want one per domain (2): %+v", len(calls), calls)
	}
	byDomain := map[string]sendCall{}
	for _, c := range calls {
		byDomain[c.Env.Domain] = c
	}
	c := byDomain["remote.test"]
	if len(c.Env.Recipients) != 2 || c.Env.MailFrom != "alice@Example.test" || c.Env.EnvID != "env-1" || c.Env.Ret != "HDRS" ||
		c.Env.ID != id || c.Env.Recipients[0].ORCPT != "rfc822;x@remote.test" || c.Env.Recipients[0].Notify[0] != "FAILURE" {
		t.Fatalf("envelope for remote.test: %+v", c.Env)
	}
	if want := "DKIM-Signature: v=1; d=example.test\r\n" + testBody; c.Body != want {
		t.Fatalf("body sent:\n%q\nwant:\n%q", c.Body, want)
	}
	if len(byDomain["other.test"].Env.Recipients) != 1 {
		t.Fatalf("other.test: %+v", byDomain["other.test"].Env)
	}
	if len(signed) != 1 {
		t.Fatalf("signed %d times; want once per attempt", len(signed))
	}
	if !h.gone(id) {
		t.Fatalf("delivered message still queued: %+v", h.show(id))
	}
	if !h.bodyGone(m.Blob) {
		t.Fatal("body of a delivered message not removed")
	}
	if b := h.Bounces(); len(b) != 0 {
		t.Fatalf("DSN for a plain delivery: %s", b[0].DSN)
	}
}

// backoffTimes is when a message that never gets through is tried, with
// the default options: the backoff, plus an attempt at the delay notice
// (4h) and one at the expiry (5 days).
func backoffTimes() []time.Duration {
	out := []time.Duration{0}
	at := time.Duration(0)
	for i := 0; ; i++ {
		step := DefaultBackoff[min(i, len(DefaultBackoff)-1)]
		next := at + step
		if at < DefaultDelayNotice && next > DefaultDelayNotice {
			next = DefaultDelayNotice
		}
		if next >= DefaultMaxAge {
			return append(out, DefaultMaxAge)
		}
		out = append(out, next)
		at = next
	}
}

func TestTemporaryFailuresBackOffThenExpire(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result {
		return reply(451, "4.7.1", "Greylisted, try again later")
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", EnvID: "QQ314159",
		Recipients: []Recipient{{Address: "Bob@remote.test", ORCPT: "rfc822;bob@remote.test"}}}, testBody)
	blobID := h.show(id).Message.Blob
	h.start(h.options())

	want := backoffTimes()
	if want[1] != time.Minute || want[2] != 6*time.Minute || want[7] != 4*time.Hour || want[8] != 8*time.Hour {
		t.Fatalf("schedule under test: %v", want)
	}
	for i := 1; ; i++ {
		next := h.waitIdle()
		if h.gone(id) {
			break
		}
		if i >= len(want) {
			t.Fatalf("still queued after %d attempts", i)
		}
		if got := next.Sub(t0); got != want[i] {
			t.Fatalf("attempt %d planned at +%v; want +%v", i+1, got, want[i])
		}
		if i == 1 {
			d := h.show(id)
			if d.Message.Attempts != 1 || !strings.Contains(d.Message.LastError, "451 4.7.1 Greylisted") ||
				d.Recipients[0].State != StateQueued || d.Recipients[0].RemoteMTA != "mx.remote.test" {
				t.Fatalf("after one failure: %+v", d)
			}
		}
		h.clk.Set(next)
	}
	calls := h.tr.Calls()
	if len(calls) != len(want) {
		t.Fatalf("%d attempts; want %d", len(calls), len(want))
	}
	for i, c := range calls {
		if c.At.Sub(t0) != want[i] {
			t.Fatalf("attempt %d at +%v; want +%v", i+1, c.At.Sub(t0), want[i])
		}
	}
	if !h.bodyGone(blobID) {
		t.Fatal("body of a bounced message not removed")
	}

	bs := h.Bounces()
	if len(bs) != 2 {
		t.Fatalf("%d DSNs; want a delay notice and a failure", len(bs))
	}
	// The delay notice: once, at 4 hours (RFC 3461 5.2.5; absent NOTIFY allows it).
	if bs[0].At.Sub(t0) != 4*time.Hour || bs[0].To != "alice@example.test" {
		t.Fatalf("delay notice at +%v to %s", bs[0].At.Sub(t0), bs[0].To)
	}
	d := parseDSN(t, bs[0].DSN)
	if len(d.Recipients) != 1 {
		t.Fatalf("delay DSN recipients: %v", d.Recipients)
	}
	wantFields(t, "delay DSN", d.Recipients[0], map[string]string{
		"Action": "delayed", "Status": "4.7.1", "Final-Recipient": "rfc822; Bob@remote.test",
		"Will-Retry-Until": t0.Add(DefaultMaxAge).Format(time.RFC1123Z),
	})
	if d.OrigType != "text/rfc822-headers" || strings.Contains(d.Orig, "The body text") {
		t.Fatalf("a delay DSN returns headers only; got %s:\n%s", d.OrigType, d.Orig)
	}
	if s := d.Header.Get("Subject"); !strings.Contains(s, "Delayed") {
		t.Fatalf("delay DSN subject %q", s)
	}

	// The failure: at 5 days.
	if bs[1].At.Sub(t0) != DefaultMaxAge {
		t.Fatalf("failure DSN at +%v", bs[1].At.Sub(t0))
	}
	d = parseDSN(t, bs[1].DSN)
	wantFields(t, "failure DSN", d.PerMessage, map[string]string{
		"Reporting-MTA": "dns; mail.example.test", "Original-Envelope-Id": "QQ314159",
		"Arrival-Date": t0.Format(time.RFC1123Z),
	})
	if len(d.Recipients) != 1 {
		t.Fatalf("failure DSN recipients: %v", d.Recipients)
	}
	wantFields(t, "failure DSN", d.Recipients[0], map[string]string{
		"Original-Recipient": "rfc822;bob@remote.test", "Final-Recipient": "rfc822; Bob@remote.test",
		"Action": "failed", "Status": "4.7.1", "Remote-MTA": "dns; mx.remote.test",
		"Diagnostic-Code":   "smtp; 451 4.7.1 Greylisted, try again later",
		"Last-Attempt-Date": t0.Add(DefaultMaxAge).Format(time.RFC1123Z), "Will-Retry-Until": "",
	})
	if d.Header.Get("From") != "Mail Delivery System <MAILER-DAEMON@mail.example.test>" ||
		d.Header.Get("Auto-Submitted") != "auto-replied" || d.Header.Get("To") != "<alice@example.test>" {
		t.Fatalf("failure DSN header: %v", d.Header)
	}
	// No RET, small message: returned whole.
	if d.OrigType != "message/rfc822" || d.Orig != testBody {
		t.Fatalf("returned message %s:\n%q", d.OrigType, d.Orig)
	}
	if !strings.Contains(d.Human, "<Bob@remote.test>: still undeliverable after 5 days") {
		t.Fatalf("human-readable part:\n%s", d.Human)
	}
}

func TestPermanentFailureBouncesAtOnce(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result {
		return reply(550, "5.1.1", "5.1.1 No such user")
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test",
		Recipients: []Recipient{{Address: "nobody@remote.test", Notify: []string{"FAILURE", "DELAY"}}}}, testBody)
	h.start(h.options())
	h.waitIdle()
	if n := len(h.tr.Calls()); n != 1 {
		t.Fatalf("%d sends; want 1", n)
	}
	if !h.gone(id) {
		t.Fatal("bounced message still queued")
	}
	bs := h.Bounces()
	if len(bs) != 1 || bs[0].At != t0 {
		t.Fatalf("%d DSNs", len(bs))
	}
	d := parseDSN(t, bs[0].DSN)
	wantFields(t, "DSN", d.Recipients[0], map[string]string{
		"Action": "failed", "Status": "5.1.1", "Diagnostic-Code": "smtp; 550 5.1.1 No such user",
		"Original-Recipient": "", "Original-Envelope-Id": "",
	})
	wantFields(t, "DSN", d.PerMessage, map[string]string{"Original-Envelope-Id": ""})
}

func TestMixedResults(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, env Envelope, r Recipient, n int) Result {
		switch {
		case strings.HasPrefix(r.Address, "ok@"):
			return reply(250, "2.1.5", "OK")
		case strings.HasPrefix(r.Address, "dsn@"):
			res := reply(250, "2.1.5", "OK")
			res.RemoteDSN = true
			return res
		case strings.HasPrefix(r.Address, "bad@"):
			return reply(550, "5.1.1", "No such user")
		case n == 0:
			return Result{Text: "connection refused", RemoteMTA: "mx.two.test"}
		default:
			return reply(250, "2.0.0", "OK")
		}
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{
		{Address: "ok@one.test", Notify: []string{"SUCCESS", "FAILURE"}},
		{Address: "dsn@one.test", Notify: []string{"SUCCESS"}},
		{Address: "bad@one.test"},
		{Address: "later@two.test", Notify: []string{"SUCCESS"}},
	}}, testBody)
	h.start(h.options())
	next := h.waitIdle()
	if next != t0.Add(time.Minute) {
		t.Fatalf("next attempt %v", next)
	}
	d := h.show(id)
	states := map[string]State{}
	for _, r := range d.Recipients {
		states[r.Address] = r.State
	}
	if states["ok@one.test"] != StateSent || states["dsn@one.test"] != StateSent || states["bad@one.test"] != StateBounced ||
		states["later@two.test"] != StateQueued || d.Message.Pending != 1 {
		t.Fatalf("states after the first attempt: %v", states)
	}
	// One DSN for what became final: the failure and the relayed success
	// (the remote without DSN), none for dsn@ (its server reports itself).
	bs := h.Bounces()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs after the first attempt", len(bs))
	}
	p := parseDSN(t, bs[0].DSN)
	actions := map[string]string{}
	for _, r := range p.Recipients {
		actions[r.Get("Final-Recipient")] = r.Get("Action") + " " + r.Get("Status")
	}
	if len(actions) != 2 || actions["rfc822; ok@one.test"] != "relayed 2.1.5" || actions["rfc822; bad@one.test"] != "failed 5.1.1" {
		t.Fatalf("DSN actions: %v", actions)
	}

	h.clk.Set(next)
	h.waitIdle()
	calls := h.tr.Calls()
	if len(calls) != 3 || calls[2].Env.Domain != "two.test" || len(calls[2].Env.Recipients) != 1 {
		t.Fatalf("sends: %+v", calls)
	}
	if !h.gone(id) {
		t.Fatal("message still queued")
	}
	bs = h.Bounces()
	if len(bs) != 2 {
		t.Fatalf("%d DSNs; want a relayed one for later@", len(bs))
	}
	p = parseDSN(t, bs[1].DSN)
	if len(p.Recipients) != 1 || p.Recipients[0].Get("Action") != "relayed" || p.OrigType != "text/rfc822-headers" {
		t.Fatalf("second DSN: %+v", p)
	}
}

func TestNotifyNeverAndNullSenderGetNoDSN(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
		rcpt Recipient
	}{
		{"never", "alice@example.test", Recipient{Address: "bad@remote.test", Notify: []string{"NEVER"}}},
		{"null sender", "", Recipient{Address: "bad@remote.test", Notify: []string{"FAILURE"}}},
		{"success only", "alice@example.test", Recipient{Address: "bad@remote.test", Notify: []string{"SUCCESS"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.tr.reply = func(context.Context, Envelope, Recipient, int) Result { return reply(550, "5.1.1", "No such user") }
			id := h.enqueue(Message{MailFrom: tc.from, Recipients: []Recipient{tc.rcpt}}, testBody)
			h.start(h.options())
			h.waitIdle()
			if len(h.tr.Calls()) != 1 || !h.gone(id) {
				t.Fatal("message not sent and bounced")
			}
			if bs := h.Bounces(); len(bs) != 0 {
				t.Fatalf("DSN sent:\n%s", bs[0].DSN)
			}
		})
	}
}

func TestNoDelayNoticeWithoutDelay(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result { return reply(421, "4.3.2", "busy") }
	id := h.enqueue(Message{MailFrom: "alice@example.test",
		Recipients: []Recipient{{Address: "a@remote.test", Notify: []string{"FAILURE"}}}}, testBody)
	o := h.options()
	o.MaxAge = 10 * time.Hour
	h.start(o)
	for !h.gone(id) {
		h.clk.Set(h.waitIdle())
	}
	bs := h.Bounces()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs; want only the failure", len(bs))
	}
	if d := parseDSN(t, bs[0].DSN); d.Recipients[0].Get("Action") != "failed" {
		t.Fatalf("DSN: %v", d.Recipients)
	}
}

func TestReturnedContent(t *testing.T) {
	big := "Subject: big\r\nX-Big: yes\r\n\r\n" + strings.Repeat("a line of the large body\r\n", 6000)
	for _, tc := range []struct {
		name, ret, body, wantType string
		full                      bool
	}{
		{"hdrs", "HDRS", testBody, "text/rfc822-headers", false},
		{"full", "full", testBody, "message/rfc822", true},
		{"default small", "", testBody, "message/rfc822", true},
		{"default large", "", big, "text/rfc822-headers", false},
		{"full large", "FULL", big, "message/rfc822", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.tr.reply = func(context.Context, Envelope, Recipient, int) Result { return reply(554, "5.7.1", "rejected") }
			h.enqueue(Message{MailFrom: "alice@example.test", Ret: tc.ret, Recipients: []Recipient{{Address: "a@remote.test"}}}, tc.body)
			h.start(h.options())
			h.waitIdle()
			bs := h.Bounces()
			if len(bs) != 1 {
				t.Fatalf("%d DSNs", len(bs))
			}
			d := parseDSN(t, bs[0].DSN)
			if d.OrigType != tc.wantType {
				t.Fatalf("third part %s; want %s", d.OrigType, tc.wantType)
			}
			head := tc.body[:strings.Index(tc.body, "\r\n\r\n")+2]
			if tc.full && d.Orig != tc.body || !tc.full && d.Orig != head {
				t.Fatalf("returned content (%d octets):\n%.300q", len(d.Orig), d.Orig)
			}
		})
	}
}

func TestHoldAndRelease(t *testing.T) {
	h := newHarness(t)
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	ctx := context.Background()
	if err := h.q.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.start(h.options())
	// Not even a poll sends it.
	next := h.waitIdle()
	h.clk.Set(next)
	if next2 := h.waitIdle(); len(h.tr.Calls()) != 0 || !h.show(id).Message.Held {
		t.Fatalf("held message sent (next wake %v, then %v)", next, next2)
	}
	if err := h.q.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.waitIdle()
	if len(h.tr.Calls()) != 1 || !h.gone(id) {
		t.Fatal("released message not sent")
	}
	if err := h.q.Hold(ctx, id); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("hold of a gone message: %v", err)
	}
}

func TestRetryMakesDue(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, _ Envelope, _ Recipient, n int) Result {
		if n == 0 {
			return reply(451, "4.4.1", "later")
		}
		return reply(250, "2.0.0", "OK")
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	h.start(h.options())
	if next := h.waitIdle(); next != t0.Add(time.Minute) {
		t.Fatalf("next %v", next)
	}
	if err := h.q.Retry(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.waitIdle()
	calls := h.tr.Calls()
	if len(calls) != 2 || calls[1].At != t0 || !h.gone(id) {
		t.Fatalf("retry did not send at once: %+v", calls)
	}
	if err := h.q.Retry(context.Background(), id); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("retry of a gone message: %v", err)
	}
}

func TestRetryAll(t *testing.T) {
	h := newHarness(t)
	ids := []int64{
		h.enqueue(Message{MailFrom: "a@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody),
		h.enqueue(Message{MailFrom: "a@example.test", Recipients: []Recipient{{Address: "b@remote.test"}}}, testBody),
		h.enqueue(Message{MailFrom: "a@example.test", Recipients: []Recipient{{Address: "c@remote.test"}}}, testBody),
	}
	ctx := context.Background()
	h.q.Hold(ctx, ids[2])
	if _, err := h.db.Exec(`UPDATE queue SET next_attempt = ?`, t0.Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	n, err := h.q.RetryAll(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RetryAll = %d, %v; want the 2 not held", n, err)
	}
	h.start(h.options())
	h.waitIdle()
	if len(h.tr.Calls()) != 2 || !h.gone(ids[0]) || !h.gone(ids[1]) || h.gone(ids[2]) {
		t.Fatalf("sends %d", len(h.tr.Calls()))
	}
}

func TestDrop(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result { return reply(451, "4.4.1", "later") }
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	h.start(h.options())
	h.waitIdle()
	b, err := h.q.Drop(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !h.gone(id) {
		t.Fatal("dropped message still queued")
	}
	if _, err := h.q.Drop(context.Background(), id); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("second drop: %v", err)
	}
	// Drop kicks: the worker empties the trash at once.
	next := h.waitIdle()
	if !h.bodyGone(b) {
		t.Fatal("dropped body still on disk")
	}
	h.clk.Set(next)
	h.waitIdle()
	if len(h.tr.Calls()) != 1 || len(h.Bounces()) != 0 {
		t.Fatalf("dropped message sent again or bounced")
	}
}

func TestBounceFailureKeepsDSNOwed(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result { return reply(550, "5.1.1", "No such user") }
	fails := 1
	h.bounceErr = func() error {
		if fails > 0 {
			fails--
			return errors.New("mailbox locked")
		}
		return nil
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	h.start(h.options())
	next := h.waitIdle()
	d := h.show(id)
	if next != t0.Add(dsnRetry) || !d.Recipients[0].DSNPending || d.Recipients[0].State != StateBounced {
		t.Fatalf("after a failed Bounce: next %v, %+v", next, d.Recipients)
	}
	h.clk.Set(next)
	h.waitIdle()
	if len(h.Bounces()) != 1 || !h.gone(id) || len(h.tr.Calls()) != 1 {
		t.Fatalf("DSN not retried: %d DSNs, %d sends", len(h.Bounces()), len(h.tr.Calls()))
	}
}

func TestRestartContinues(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, _ Envelope, _ Recipient, n int) Result {
		if n == 0 {
			return reply(451, "4.4.1", "later")
		}
		return reply(250, "2.0.0", "OK")
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	h.start(h.options())
	next := h.waitIdle()
	h.stop()
	h.db.Close()

	h.open()
	h.clk.Set(next)
	h.start(h.options())
	h.waitIdle()
	if len(h.tr.Calls()) != 2 || !h.gone(id) {
		t.Fatalf("after a restart: %d sends", len(h.tr.Calls()))
	}
}

// A shutdown during a send that the remote accepted records the success:
// the next start does not send it again.
func TestShutdownDuringSendKeepsSuccess(t *testing.T) {
	h := newHarness(t)
	inSend := make(chan struct{})
	h.tr.reply = func(ctx context.Context, _ Envelope, r Recipient, n int) Result {
		if strings.HasPrefix(r.Address, "slow@") && n == 0 {
			close(inSend)
			<-ctx.Done()
			return reply(250, "2.0.0", "OK, just in time")
		}
		return Result{Text: "cancelled", Err: context.Canceled}
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "slow@remote.test"}, {Address: "b@other.test"}}}, testBody)
	o := h.options()
	o.Concurrency = 1
	h.start(o)
	<-inSend
	h.stop()
	d := h.show(id)
	states := map[string]State{}
	for _, r := range d.Recipients {
		states[r.Address] = r.State
	}
	if states["slow@remote.test"] != StateSent || states["b@other.test"] != StateQueued || d.Message.Attempts != 1 {
		t.Fatalf("after shutdown: %v, attempts %d", states, d.Message.Attempts)
	}
	if d.Message.Sending {
		t.Fatal("lease kept after a clean shutdown")
	}
}

// A worker that died during a send (kill -9) leaves its lease: the message
// waits for the lease to run out, then goes out again (a possible
// duplicate, never a loss).
func TestCrashedWorkerLeaseExpires(t *testing.T) {
	h := newHarness(t)
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	o := h.options()
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if got, err := h.q.claim(context.Background(), []int64{id}, t0, &o); len(got) != 1 || err != nil {
		t.Fatal("claim", got, err)
	}
	h.start(h.options())
	next := h.waitIdle()
	if len(h.tr.Calls()) != 0 || next != t0.Add(o.lease()) {
		t.Fatalf("a leased message was sent, or the wake-up is %v", next)
	}
	h.clk.Set(next)
	h.waitIdle()
	if len(h.tr.Calls()) != 1 || !h.gone(id) {
		t.Fatal("message not sent after its lease ran out")
	}
}

// Two workers on one database (as two processes would be) never send one
// message at the same time, and each message goes out once.
func TestTwoWorkersNeverSendOneMessageTwice(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	inFlight := map[int64]int{}
	sent := map[int64]int{}
	var problems []string
	tr := &fakeTransport{clk: realClock{}, reply: func(_ context.Context, env Envelope, r Recipient, _ int) Result {
		return reply(250, "2.0.0", "OK")
	}}
	wrap := transportFunc(func(ctx context.Context, env Envelope, body func() (io.Reader, error)) []Result {
		mu.Lock()
		inFlight[env.ID]++
		sent[env.ID]++
		if inFlight[env.ID] > 1 {
			problems = append(problems, fmt.Sprintf("message %d sent by two workers at once", env.ID))
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // network time: widens the window for a double send
		res := tr.Send(ctx, env, body)
		mu.Lock()
		inFlight[env.ID]--
		mu.Unlock()
		return res
	})
	const n = 40
	var ids []int64
	for i := range n {
		ids = append(ids, h.enqueue(Message{MailFrom: "alice@example.test", Created: time.Now(),
			Recipients: []Recipient{{Address: fmt.Sprintf("r%d@remote.test", i)}}}, testBody))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		db, err := database.Open(h.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		q, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.Run(ctx, RunOptions{Transport: wrap, Bounce: func(context.Context, []byte, string, bool) error { return nil },
				Blobs: h.blobs, Concurrency: 8, Poll: 20 * time.Millisecond, Hostname: "mail.example.test"})
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms, err := h.q.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still queued", len(ms))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	for _, id := range ids {
		if sent[id] != 1 {
			t.Errorf("message %d sent %d times", id, sent[id])
		}
	}
}

type transportFunc func(ctx context.Context, env Envelope, body func() (io.Reader, error)) []Result

func (f transportFunc) Send(ctx context.Context, env Envelope, body func() (io.Reader, error)) []Result {
	return f(ctx, env, body)
}

func TestRunNeedsOptions(t *testing.T) {
	h := newHarness(t)
	if err := h.q.Run(context.Background(), RunOptions{}); err == nil {
		t.Fatal("Run without a transport started")
	}
}

// Another process (the CLI) cannot kick: its Retry is seen at the next
// poll.
func TestOtherProcessSeenAtPoll(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, _ Envelope, _ Recipient, n int) Result {
		if n == 0 {
			return reply(451, "4.4.1", "later")
		}
		return reply(250, "2.0.0", "OK")
	}
	id := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	o := h.options()
	o.Poll = 30 * time.Second
	h.start(o)
	if next := h.waitIdle(); next != t0.Add(30*time.Second) {
		t.Fatalf("wake-up %v; want the poll, before the retry at +1m", next)
	}
	db, err := database.Open(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cli, err := Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Retry(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.clk.Set(t0.Add(30 * time.Second))
	h.waitIdle()
	calls := h.tr.Calls()
	if len(calls) != 2 || calls[1].At != t0.Add(30*time.Second) || !h.gone(id) {
		t.Fatalf("CLI retry not picked up at the poll: %+v", calls)
	}
}

// RFC 8689 4.2.1: a REQUIRETLS message keeps the flag in the queue, across
// a restart, and hands it to the Transport on every attempt.
func TestRequireTLSReachesTransport(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, _ Envelope, _ Recipient, n int) Result {
		if n == 0 {
			return reply(451, "4.4.1", "later")
		}
		return reply(250, "2.0.0", "OK")
	}
	strict := h.enqueue(Message{MailFrom: "alice@example.test", RequireTLS: true,
		Recipients: []Recipient{{Address: "a@strict.test"}}}, testBody)
	plain := h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "b@plain.test"}}}, testBody)
	check := func(when string) {
		t.Helper()
		if !h.show(strict).Message.RequireTLS || h.show(plain).Message.RequireTLS {
			t.Fatalf("%s: Show RequireTLS = %v, %v; want true, false", when,
				h.show(strict).Message.RequireTLS, h.show(plain).Message.RequireTLS)
		}
		ms, err := h.q.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.RequireTLS != (m.ID == strict) {
				t.Fatalf("%s: List: message %d RequireTLS %v", when, m.ID, m.RequireTLS)
			}
		}
	}
	checkCalls := func(want int) {
		t.Helper()
		calls := h.tr.Calls()
		if len(calls) != want {
			t.Fatalf("%d sends; want %d", len(calls), want)
		}
		for _, c := range calls {
			if c.Env.RequireTLS != (c.Env.Domain == "strict.test") {
				t.Fatalf("send to %s (message %d) with RequireTLS %v", c.Env.Domain, c.Env.ID, c.Env.RequireTLS)
			}
		}
	}
	check("after Enqueue")

	h.start(h.options())
	next := h.waitIdle()
	checkCalls(2)
	h.stop()
	h.db.Close()

	h.open()
	check("after reopening")
	h.clk.Set(next)
	h.start(h.options())
	h.waitIdle()
	checkCalls(4)
	if !h.gone(strict) || !h.gone(plain) {
		t.Fatal("messages still queued after delivery")
	}
}

// RFC 8689 5: a bounced REQUIRETLS message is returned as if RET=HDRS.
func TestRequireTLSBounceReturnsHeaders(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(context.Context, Envelope, Recipient, int) Result {
		return Result{Enhanced: "5.7.30", Text: "REQUIRETLS not offered", Permanent: true}
	}
	h.enqueue(Message{MailFrom: "alice@example.test", Ret: "FULL", RequireTLS: true,
		Recipients: []Recipient{{Address: "a@remote.test"}}}, testBody)
	h.start(h.options())
	h.waitIdle()
	bs := h.Bounces()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs", len(bs))
	}
	d := parseDSN(t, bs[0].DSN)
	if head := testBody[:strings.Index(testBody, "\r\n\r\n")+2]; d.OrigType != "text/rfc822-headers" || d.Orig != head {
		t.Fatalf("returned %s:\n%q", d.OrigType, d.Orig)
	}
	if strings.Contains(d.Human, "too large") {
		t.Errorf("human part blames the size: %q", d.Human)
	}
}

// RFC 8689 4.1, 4.2.2: "TLS-Required: No" in the header reaches the
// Transport as TLSOptional, unless REQUIRETLS was given; RFC 8689 5: the
// bounce of a REQUIRETLS message is handed on with REQUIRETLS.
func TestTLSRequiredHeaderAndBounce(t *testing.T) {
	h := newHarness(t)
	h.tr.reply = func(_ context.Context, env Envelope, _ Recipient, _ int) Result {
		if env.Domain == "bounce.test" {
			return reply(550, "5.1.1", "no such user")
		}
		return reply(250, "2.0.0", "OK")
	}
	tagged := "TLS-Required: no\r\n" + testBody
	h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@optional.test"}}}, tagged)
	h.enqueue(Message{MailFrom: "alice@example.test", RequireTLS: true, Recipients: []Recipient{{Address: "a@strict.test"}}}, tagged)
	h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@plain.test"}}}, testBody)
	h.enqueue(Message{MailFrom: "alice@example.test", Recipients: []Recipient{{Address: "a@twice.test"}}},
		"TLS-Required: No\r\nTLS-Required: No\r\n"+testBody)
	h.enqueue(Message{MailFrom: "alice@example.test", RequireTLS: true, Recipients: []Recipient{{Address: "a@bounce.test"}}}, testBody)
	h.start(h.options())
	h.waitIdle()
	calls := h.tr.Calls()
	if len(calls) != 5 {
		t.Fatalf("%d sends, want 5", len(calls))
	}
	for _, c := range calls {
		if c.Env.TLSOptional != (c.Env.Domain == "optional.test") {
			t.Errorf("send to %s with TLSOptional %v", c.Env.Domain, c.Env.TLSOptional)
		}
	}
	b := h.Bounces()
	if len(b) != 1 || !b[0].RequireTLS {
		t.Fatalf("bounces %+v, want one with REQUIRETLS", b)
	}
}

func TestTLSOptionalHeader(t *testing.T) {
	for in, want := range map[string]bool{
		"TLS-Required: No\r\n\r\nbody":                   true,
		"Subject: x\r\ntls-required:   NO  \r\n\r\n":     true,
		"TLS-Required: Yes\r\n\r\n":                      false,
		"TLS-Required: No\r\nTLS-Required: No\r\n\r\n":   false,
		"Subject: x\r\n\r\nTLS-Required: No\r\n":         false, // in the body
		"TLS-Required: No\r\nbroken header line\r\n\r\n": false,
	} {
		if got := tlsOptional(strings.NewReader(in)); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
