package mx

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"posta/internal/queue"
)

func TestDeliverTwoRecipientsWithDSN(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{dsn: true})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)

	en := envelope("bob@example.test", "carol@example.test")
	en.EnvID, en.Ret = "env-17", "HDRS"
	en.Recipients[0].Notify = []string{"SUCCESS", "FAILURE"}
	en.Recipients[0].ORCPT = "rfc822;bob@alias.test"
	en.Recipients[1].Notify = []string{"NEVER"}
	res := send(t, e, en)

	for _, r := range res {
		if !r.Delivered() || r.Code != 250 || r.Enhanced != "2.0.0" || r.RemoteMTA != "mx1.example.test" || r.Permanent {
			t.Errorf("result %+v, want delivered with 250 2.0.0 by mx1.example.test", r)
		}
	}
	msgs := mx.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if string(m.Data) != testBody {
		t.Errorf("body:\n%q\nwant\n%q", m.Data, testBody)
	}
	if m.From != "alice@sender.test" || !slices.Equal(m.Rcpts, []string{"bob@example.test", "carol@example.test"}) {
		t.Errorf("envelope %q -> %q", m.From, m.Rcpts)
	}
	if m.Helo != "posta.sender.test" {
		t.Errorf("EHLO %q, want posta.sender.test", m.Helo)
	}
	mo := m.MailOpts
	if mo.Size != int64(len(testBody)) || mo.Body != smtp.Body8BitMIME || mo.EnvelopeID != "env-17" || mo.Return != smtp.DSNReturnHeaders {
		t.Errorf("MAIL parameters %+v", mo)
	}
	if mo.UTF8 || mo.RequireTLS {
		t.Errorf("MAIL asked for SMTPUTF8 or REQUIRETLS: %+v", mo)
	}
	r0, r1 := m.RcptOpts[0], m.RcptOpts[1]
	if !slices.Equal(r0.Notify, []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}) ||
		r0.OriginalRecipientType != smtp.DSNAddressTypeRFC822 || r0.OriginalRecipient != "bob@alias.test" {
		t.Errorf("RCPT 1 parameters %+v", r0)
	}
	if !slices.Equal(r1.Notify, []smtp.DSNNotify{smtp.DSNNotifyNever}) || r1.OriginalRecipient != "" {
		t.Errorf("RCPT 2 parameters %+v", r1)
	}
	logs := e.log.String()
	if strings.Contains(logs, "BODY-MARKER") || strings.Contains(logs, "Subject") {
		t.Errorf("the log shows the message:\n%s", logs)
	}
	if !strings.Contains(logs, "mx=mx1.example.test") || !strings.Contains(logs, "rcpt=250,250") || !strings.Contains(logs, "dot=250") {
		t.Errorf("the log misses the attempt:\n%s", logs)
	}
}

func TestDSNParametersNotSentWithoutDSN(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{dsn: false})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	en := envelope("bob@example.test")
	en.EnvID, en.Ret = "env-17", "FULL"
	en.Recipients[0].Notify = []string{"FAILURE"}
	en.Recipients[0].ORCPT = "rfc822;bob@alias.test"
	if res := send(t, e, en); !res[0].Delivered() {
		t.Fatalf("result %+v", res[0])
	}
	m := mx.messages()[0]
	// go-smtp's server refuses DSN parameters it did not offer, so
	// delivery itself proves they were left out; check anyway.
	if m.MailOpts.EnvelopeID != "" || m.MailOpts.Return != "" || m.RcptOpts[0].Notify != nil {
		t.Errorf("DSN parameters sent to a server without DSN: %+v %+v", m.MailOpts, m.RcptOpts[0])
	}
}

func TestRcpt4xxForOneRecipient(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	mx.rcptErr = func(to string) error {
		if to == "carol@example.test" {
			return smtpErr(450, smtp.EnhancedCode{4, 2, 1}, "mailbox busy")
		}
		return nil
	}
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	if !res[0].Delivered() {
		t.Errorf("bob: %+v, want delivered", res[0])
	}
	if c := res[1]; c.Delivered() || c.Permanent || c.Code != 450 || c.Enhanced != "4.2.1" || c.Text != "mailbox busy" ||
		c.RemoteMTA != "mx1.example.test" {
		t.Errorf("carol: %+v, want temporary 450 4.2.1", c)
	}
	msgs := mx.messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].Rcpts, []string{"bob@example.test"}) {
		t.Errorf("server got %+v", msgs)
	}
}

func TestRcpt5xxIsPermanentForThatRecipientOnly(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	mx.rcptErr = func(to string) error {
		if to == "bob@example.test" {
			return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return nil
	}
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	if b := res[0]; !b.Permanent || b.Code != 550 || b.Enhanced != "5.1.1" {
		t.Errorf("bob: %+v, want permanent 550 5.1.1", b)
	}
	if !res[1].Delivered() {
		t.Errorf("carol: %+v, want delivered", res[1])
	}
}

func TestMail5xxFailsEveryone(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	mx.mailErr = func(string) error { return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "sender rejected") }
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	for _, r := range res {
		if !r.Permanent || r.Code != 550 || r.Enhanced != "5.7.1" || r.Text != "sender rejected" || r.RemoteMTA != "mx1.example.test" {
			t.Errorf("result %+v, want permanent 550 5.7.1", r)
		}
	}
	if len(mx.messages()) != 0 {
		t.Error("the server got a message")
	}
}

func TestDataRefusalAppliesToAcceptedRecipients(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	mx.rcptErr = func(to string) error {
		if to == "carol@example.test" {
			return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return nil
	}
	mx.dataHook = func() error { return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "content rejected") }
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	if b := res[0]; !b.Permanent || b.Code != 554 || b.Enhanced != "5.6.0" {
		t.Errorf("bob: %+v, want the DATA reply 554 5.6.0", b)
	}
	if c := res[1]; c.Code != 550 || c.Enhanced != "5.1.1" {
		t.Errorf("carol: %+v, want her RCPT reply 550 5.1.1", c)
	}
}

func TestSecondMXWhenFirstRefusesConnection(t *testing.T) {
	mx2 := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.res.mx["example.test"] = []*net.MX{{Host: "mx2.example.test.", Pref: 20}, {Host: "mx1.example.test.", Pref: 10}}
	e.res.addrs["mx1.example.test"] = ips("192.0.2.1")
	e.res.addrs["mx2.example.test"] = ips("192.0.2.2")
	e.dial.route("192.0.2.1:25", closedAddr(t))
	e.dial.route("192.0.2.2:25", mx2.addr)

	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Delivered() || r.RemoteMTA != "mx2.example.test" {
		t.Fatalf("result %+v, want delivered by mx2", r)
	}
	if got := e.dial.calls(); !slices.Equal(got, []string{"192.0.2.1:25", "192.0.2.2:25"}) {
		t.Errorf("dialed %q, want mx1 (preference 10) then mx2", got)
	}
	if len(mx2.messages()) != 1 {
		t.Error("mx2 did not get the message")
	}
}

func TestAllHostsDownIsTemporary(t *testing.T) {
	e := newEnv(t, nil)
	e.res.mx["example.test"] = []*net.MX{{Host: "mx1.example.test.", Pref: 10}, {Host: "mx2.example.test.", Pref: 10}}
	e.res.addrs["mx1.example.test"] = ips("192.0.2.1", "192.0.2.11")
	e.res.addrs["mx2.example.test"] = ips("192.0.2.2")
	closed := closedAddr(t)
	for _, a := range []string{"192.0.2.1:25", "192.0.2.11:25", "192.0.2.2:25"} {
		e.dial.route(a, closed)
	}
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; r.Delivered() || r.Permanent || r.Enhanced != "4.4.1" || r.Err == nil {
		t.Errorf("result %+v, want temporary 4.4.1", r)
	}
	if n := len(e.dial.calls()); n != 3 {
		t.Errorf("dialed %d addresses, want every address of every host (3)", n)
	}
}

func TestGreetingRefusalMovesToNextHost(t *testing.T) {
	// A server answering 554 at the greeting (RFC 5321 3.1).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "421 4.3.2 not now\r\n")
			c.Close()
		}
	})
	mx2 := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.res.mx["example.test"] = []*net.MX{{Host: "mx1.example.test.", Pref: 10}, {Host: "mx2.example.test.", Pref: 20}}
	e.res.addrs["mx1.example.test"] = ips("192.0.2.1")
	e.res.addrs["mx2.example.test"] = ips("192.0.2.2")
	e.dial.route("192.0.2.1:25", l.Addr().String())
	e.dial.route("192.0.2.2:25", mx2.addr)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Delivered() || r.RemoteMTA != "mx2.example.test" {
		t.Fatalf("result %+v, want delivered by mx2", r)
	}
}

func TestNullMX(t *testing.T) {
	e := newEnv(t, nil)
	e.res.mx["example.test"] = []*net.MX{{Host: ".", Pref: 0}}
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	for _, r := range res {
		if !r.Permanent || r.Enhanced != "5.1.10" || r.Code != 0 {
			t.Errorf("result %+v, want permanent 5.1.10", r)
		}
	}
	if got := e.dial.calls(); len(got) != 0 {
		t.Errorf("dialed %q for a null MX", got)
	}
}

func TestNoMXUsesAddressRecords(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.res.addrs["example.test"] = ips("192.0.2.7")
	e.dial.route("192.0.2.7:25", mx.addr)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Delivered() || r.RemoteMTA != "example.test" {
		t.Fatalf("result %+v, want delivered to the domain's own address", r)
	}
}

func TestNoMXNoAddressIsPermanent(t *testing.T) {
	e := newEnv(t, nil)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Permanent || r.Enhanced != "5.1.2" {
		t.Errorf("result %+v, want permanent 5.1.2", r)
	}
}

func TestDNSFailureIsTemporary(t *testing.T) {
	e := newEnv(t, nil)
	e.res.mxErr["example.test"] = &net.DNSError{Err: "server misbehaving", Name: "example.test", IsTemporary: true}
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; r.Permanent || r.Enhanced != "4.4.3" || len(e.dial.calls()) != 0 {
		t.Errorf("result %+v, want temporary 4.4.3 without connecting", r)
	}
}

func TestMXPointingBackIsALoop(t *testing.T) {
	e := newEnv(t, nil)
	e.res.mx["example.test"] = []*net.MX{{Host: "posta.sender.test.", Pref: 10}, {Host: "backup.example.test.", Pref: 20}}
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Permanent || r.Enhanced != "5.4.6" || len(e.dial.calls()) != 0 {
		t.Errorf("result %+v, want permanent 5.4.6 without connecting", r)
	}
}

func TestSMTPUTF8NeededButNotOffered(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{smtputf8: false})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	en := envelope("bob@example.test", "carol@example.test")
	en.SMTPUTF8 = true
	res := send(t, e, en)
	for _, r := range res {
		if !r.Permanent || r.Enhanced != "5.6.7" || r.Text != "message needs SMTPUTF8, which the destination does not offer" {
			t.Errorf("result %+v, want permanent 5.6.7", r)
		}
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Errorf("MAIL was sent %d times", mails)
	}
}

func TestSMTPUTF8Offered(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{smtputf8: true})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	en := envelope("bøb@example.test")
	res := send(t, e, en)
	if !res[0].Delivered() {
		t.Fatalf("result %+v", res[0])
	}
	if m := mx.messages()[0]; !m.MailOpts.UTF8 || m.Rcpts[0] != "bøb@example.test" {
		t.Errorf("MAIL without SMTPUTF8 for a UTF-8 recipient: %+v", m)
	}
}

func TestSizeAboveLimitIsPermanent(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{maxMsgBytes: 64})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Permanent || r.Enhanced != "5.3.4" {
		t.Errorf("result %+v, want permanent 5.3.4", r)
	}
	if mails, _, _ := mx.counts(); mails != 0 {
		t.Errorf("MAIL was sent %d times", mails)
	}
}

func TestBodyReadErrorSendsNoFinalDot(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	broken := func() (io.Reader, error) {
		return io.MultiReader(strings.NewReader("Subject: half\r\n\r\n"), errReader{}), nil
	}
	res := e.tr.Send(context.Background(), envelope("bob@example.test"), broken)
	if r := res[0]; r.Delivered() || r.Permanent || r.Enhanced != "4.3.0" {
		t.Errorf("result %+v, want temporary 4.3.0", r)
	}
	waitFor(t, "the session to end", func() bool { _, _, l := mx.counts(); return l == 1 })
	if n := len(mx.messages()); n != 0 {
		t.Errorf("the server accepted %d truncated messages", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestCancelledContextStopsASilentServer(t *testing.T) {
	// A peer that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	e := newEnv(t, func(o *Options) { o.Timeouts.Greeting = time.Minute })
	e.res.mx["example.test"] = []*net.MX{{Host: "mx1.example.test.", Pref: 10}}
	e.res.addrs["mx1.example.test"] = ips("192.0.2.1")
	e.dial.route("192.0.2.1:25", l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := e.tr.Send(ctx, envelope("bob@example.test"), bodyOf(testBody))
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Send took %v after its context ended", el)
	}
	if r := res[0]; r.Delivered() || r.Permanent {
		t.Errorf("result %+v, want temporary", r)
	}
}

func TestConnectionReuse(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, func(o *Options) { o.IdleTime = time.Minute })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	for i := range 3 {
		if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
			t.Fatalf("send %d: %+v", i, r)
		}
	}
	if n := mx.accepts.Load(); n != 1 {
		t.Errorf("%d TCP connections for 3 messages within IdleTime, want 1", n)
	}
	if n := len(mx.messages()); n != 3 {
		t.Errorf("server got %d messages, want 3", n)
	}
	if !strings.Contains(e.log.String(), "reused=true") {
		t.Error("the log does not say the connection was reused")
	}
	e.tr.Close()
	waitFor(t, "Close to end the idle session", func() bool { _, _, l := mx.counts(); return l == 1 })
	res := e.tr.Send(context.Background(), envelope("bob@example.test"), bodyOf(testBody))
	if r := res[0]; r.Delivered() || r.Permanent {
		t.Errorf("Send after Close: %+v, want a temporary failure", r)
	}
}

func TestNoReuseWhenOff(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, func(o *Options) { o.IdleTime = -1 })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	send(t, e, envelope("bob@example.test"))
	send(t, e, envelope("bob@example.test"))
	if n := mx.accepts.Load(); n != 2 {
		t.Errorf("%d connections with reuse off, want 2", n)
	}
}

func TestJanitorClosesIdleConnections(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, func(o *Options) { o.IdleTime = 50 * time.Millisecond })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	send(t, e, envelope("bob@example.test"))
	waitFor(t, "the janitor to close the idle connection", func() bool { _, _, l := mx.counts(); return l == 1 })
	send(t, e, envelope("bob@example.test"))
	if n := mx.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want a new one after IdleTime", n)
	}
}

func TestReuseAfterServerDropsIdleConnection(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, func(o *Options) { o.IdleTime = time.Minute })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	send(t, e, envelope("bob@example.test"))
	// The peer closes the idle connection behind our back.
	e.tr.mu.Lock()
	s := e.tr.domains["example.test"].idle[0]
	e.tr.mu.Unlock()
	s.cc.Conn.Close()
	if r := send(t, e, envelope("bob@example.test"))[0]; !r.Delivered() {
		t.Fatalf("second send: %+v", r)
	}
	if n := mx.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want a fresh one after the RSET failed", n)
	}
}

func TestMaxConnsPerDomain(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	release := make(chan struct{})
	inData := make(chan struct{}, 1)
	var once sync.Once
	mx.dataHook = func() error {
		once.Do(func() {
			inData <- struct{}{}
			<-release
		})
		return nil
	}
	e := newEnv(t, func(o *Options) { o.IdleTime = time.Minute; o.MaxConnsPerDomain = 1 })
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)

	var wg sync.WaitGroup
	results := make([][]queue.Result, 2)
	wg.Go(func() { results[0] = e.tr.Send(context.Background(), envelope("bob@example.test"), bodyOf(testBody)) })
	<-inData // the first Send holds the only connection
	wg.Go(func() { results[1] = e.tr.Send(context.Background(), envelope("carol@example.test"), bodyOf(testBody)) })
	waitFor(t, "the second Send to wait for a slot", func() bool {
		e.tr.mu.Lock()
		defer e.tr.mu.Unlock()
		d := e.tr.domains["example.test"]
		return d != nil && d.changed != nil
	})
	close(release)
	wg.Wait()
	for i, res := range results {
		if !res[0].Delivered() {
			t.Errorf("send %d: %+v", i, res[0])
		}
	}
	if n := mx.accepts.Load(); n != 1 {
		t.Errorf("%d connections with MaxConnsPerDomain 1, want 1", n)
	}
}

func TestBadAddressesFailAlone(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	res := send(t, e, envelope("bob@example.test", "evil\r\nRCPT TO:<x@example.test>"))
	if !res[0].Delivered() {
		t.Errorf("bob: %+v", res[0])
	}
	if r := res[1]; !r.Permanent || r.Enhanced != "5.1.3" {
		t.Errorf("bad address: %+v, want permanent 5.1.3", r)
	}
	if m := mx.messages(); len(m) != 1 || len(m[0].Rcpts) != 1 {
		t.Errorf("server got %+v", m)
	}
}

func TestAddressLiteralDomain(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.dial.route("192.0.2.9:25", mx.addr)
	en := envelope("bob@[192.0.2.9]")
	en.Domain = "[192.0.2.9]"
	if r := send(t, e, en)[0]; !r.Delivered() || r.RemoteMTA != "192.0.2.9" {
		t.Fatalf("result %+v", r)
	}
	if len(e.res.tlsaAsked) != 0 {
		t.Errorf("TLSA asked for an address literal: %q", e.res.tlsaAsked)
	}
	en.Domain = "[not.an.ip]"
	if r := send(t, e, en)[0]; !r.Permanent || r.Enhanced != "5.1.2" {
		t.Errorf("bad literal: %+v", r)
	}
	for lit, want := range map[string]string{"[IPv6:2001:db8::1]": "2001:db8::1", "[2001:db8::1]": "", "[IPv6:192.0.2.1]": "", "[192.0.2.1]": "192.0.2.1"} {
		got := ""
		if ip := addressLiteral(lit); ip != nil {
			got = ip.String()
		}
		if got != want {
			t.Errorf("addressLiteral(%q) = %q, want %q", lit, got, want)
		}
	}
}

func TestNullReversePath(t *testing.T) {
	mx := newFakeMX(t, fakeMXConfig{})
	e := newEnv(t, nil)
	e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
	en := envelope("bob@example.test")
	en.MailFrom = "" // a DSN (RFC 5321 4.5.5)
	if r := send(t, e, en)[0]; !r.Delivered() {
		t.Fatalf("result %+v", r)
	}
	if m := mx.messages()[0]; m.From != "" {
		t.Errorf("MAIL FROM %q, want <>", m.From)
	}
}
