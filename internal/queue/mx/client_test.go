package mx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"posta/internal/queue"
)

// scriptMX is a hand-driven SMTP server for what go-smtp's server cannot
// show: which commands arrived before a reply was sent.
type scriptMX struct {
	t    *testing.T
	addr string
	done chan struct{}
}

// peer is one accepted connection of a scriptMX.
type peer struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (p *peer) send(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.c, s); err != nil {
		p.t.Errorf("script: write %q: %v", s, err)
	}
}

// line reads one command line.
func (p *peer) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Errorf("script: read: %v (after %q)", err, l)
		return ""
	}
	return strings.TrimSuffix(l, "\r\n")
}

// quiet reports whether the client sends nothing more for a while: it is
// waiting for a reply.
func (p *peer) quiet() bool {
	if p.br.Buffered() > 0 {
		return false
	}
	p.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := p.br.Peek(1)
	p.c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// body reads a DATA body up to its final dot.
func (p *peer) body() string {
	var b strings.Builder
	for {
		l := p.line()
		if l == "." || p.t.Failed() {
			return b.String()
		}
		b.WriteString(l + "\r\n")
	}
}

// newScriptMX serves one connection with script, which starts after the
// greeting.
func newScriptMX(t *testing.T, script func(p *peer)) *scriptMX {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &scriptMX{t: t, addr: l.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		c, err := l.Accept()
		l.Close()
		if err != nil {
			return
		}
		defer c.Close()
		p := &peer{t: t, c: c, br: bufio.NewReader(c)}
		p.send("220 script.test ESMTP\r\n")
		script(p)
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-m.done:
		case <-time.After(15 * time.Second):
			t.Error("the scripted server did not finish")
		}
	})
	return m
}

func (e *env) scriptedMX(domain string, m *scriptMX) {
	e.res.mu.Lock()
	e.res.mx[domain] = []*net.MX{{Host: "mx.script.test.", Pref: 10}}
	e.res.addrs["mx.script.test"] = ips("192.0.2.50")
	e.res.mu.Unlock()
	e.dial.route("192.0.2.50:25", m.addr)
}

// TestPipelining: with PIPELINING offered, MAIL, every RCPT and DATA go
// in one group before any reply (RFC 2920 3.1), each reply is matched to
// its command by count, and a reused session puts RSET in the group too.
func TestPipelining(t *testing.T) {
	var groups [][]string
	var bodies []string
	m := newScriptMX(t, func(p *peer) {
		if l := p.line(); !strings.HasPrefix(l, "EHLO ") {
			t.Errorf("first command %q", l)
			return
		}
		p.send("250-script.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
		for range 2 {
			var g []string
			for {
				l := p.line()
				g = append(g, l)
				if l == "DATA" || l == "" {
					break
				}
			}
			groups = append(groups, g)
			if !p.quiet() {
				t.Errorf("the client sent more after DATA, before its reply")
			}
			var replies strings.Builder
			for _, c := range g {
				switch {
				case c == "RSET":
					replies.WriteString("250 2.0.0 reset\r\n")
				case strings.HasPrefix(c, "MAIL"):
					replies.WriteString("250 2.1.0 ok\r\n")
				case strings.Contains(c, "nobody@"):
					replies.WriteString("550-5.1.1 no such\r\n550 5.1.1 user here\r\n")
				case strings.HasPrefix(c, "RCPT"):
					replies.WriteString("250 2.1.5 ok\r\n")
				case c == "DATA":
					replies.WriteString("354 go on\r\n")
				}
			}
			p.send(replies.String())
			bodies = append(bodies, p.body())
			p.send("250 2.0.0 queued as X\r\n")
		}
		if l := p.line(); l != "QUIT" {
			t.Errorf("after the second message: %q, want QUIT", l)
		}
		p.send("221 2.0.0 bye\r\n")
	})
	e := newEnv(t, func(o *Options) { o.IdleTime = time.Minute })
	e.scriptedMX("example.test", m)
	for range 2 {
		res := send(t, e, envelope("bob@example.test", "nobody@example.test", "carol@example.test"))
		if !res[0].Delivered() || !res[2].Delivered() {
			t.Errorf("results %+v, want bob and carol delivered", res)
		}
		if r := res[1]; !r.Permanent || r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "no such\nuser here" {
			t.Errorf("nobody: %+v, want the multiline 550 5.1.1", r)
		}
	}
	e.tr.Close()
	<-m.done
	want := []string{"MAIL FROM:<alice@sender.test> SIZE=" + strconv.Itoa(len(testBody)) + " BODY=8BITMIME", "RCPT TO:<bob@example.test>",
		"RCPT TO:<nobody@example.test>", "RCPT TO:<carol@example.test>", "DATA"}
	if len(groups) != 2 || !slices.Equal(groups[0], want) || !slices.Equal(groups[1], append([]string{"RSET"}, want...)) {
		t.Errorf("command groups %q,\nwant %q and RSET first", groups, want)
	}
	for _, b := range bodies {
		if b != strings.ReplaceAll(testBody, "\r\n.", "\r\n..") {
			t.Errorf("body %q", b)
		}
	}
}

// TestNoPipeliningWaits: without PIPELINING each command waits for its
// reply, and nothing follows a refused MAIL.
func TestNoPipeliningWaits(t *testing.T) {
	var cmds []string
	m := newScriptMX(t, func(p *peer) {
		p.line()
		p.send("250-script.test\r\n250 8BITMIME\r\n")
		for {
			l := p.line()
			if l == "" {
				return
			}
			cmds = append(cmds, l)
			if !p.quiet() {
				t.Errorf("the client sent more after %q before its reply", l)
			}
			switch {
			case strings.HasPrefix(l, "MAIL"):
				p.send("451 4.3.0 try later\r\n")
			case l == "QUIT":
				p.send("221 bye\r\n")
				return
			default:
				p.send("503 5.5.1 bad sequence\r\n")
			}
		}
	})
	e := newEnv(t, nil)
	e.scriptedMX("example.test", m)
	res := send(t, e, envelope("bob@example.test", "carol@example.test"))
	if r := res[0]; r.Delivered() || r.Permanent || r.Code != 451 {
		t.Errorf("result %+v, want the temporary 451", r)
	}
	<-m.done
	if len(cmds) != 2 || !strings.HasPrefix(cmds[0], "MAIL") || cmds[1] != "QUIT" {
		t.Errorf("commands %q, want MAIL then QUIT", cmds)
	}
}

// TestPipelinedDataAcceptedWithoutRecipients: a server that answers 354 to
// a pipelined DATA after refusing every RCPT gets no body, and the session
// is dropped (RFC 2920 3.1).
func TestPipelinedDataAcceptedWithoutRecipients(t *testing.T) {
	var after []byte
	m := newScriptMX(t, func(p *peer) {
		p.line()
		p.send("250-script.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
		for l := p.line(); l != "DATA" && l != ""; l = p.line() {
		}
		p.send("250 ok\r\n550 5.1.1 no\r\n354 go on anyway\r\n")
		p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		after, _ = io.ReadAll(p.br)
	})
	e := newEnv(t, nil)
	e.scriptedMX("example.test", m)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; !r.Permanent || r.Code != 550 {
		t.Errorf("result %+v, want the 550", r)
	}
	<-m.done
	if len(after) != 0 {
		t.Errorf("the client sent %q after a 354 with no recipients", after)
	}
}

// TestHELOFallback: a server that does not know EHLO gets HELO (RFC 5321
// 3.2) and plain commands.
func TestHELOFallback(t *testing.T) {
	var cmds []string
	m := newScriptMX(t, func(p *peer) {
		for {
			l := p.line()
			if l == "" {
				return
			}
			cmds = append(cmds, l)
			switch {
			case strings.HasPrefix(l, "EHLO"):
				p.send("502 command not implemented\r\n")
			case l == "DATA":
				p.send("354 go on\r\n")
				p.body()
				p.send("250 ok\r\n")
			case l == "QUIT":
				p.send("221 bye\r\n")
				return
			default:
				p.send("250 ok\r\n")
			}
		}
	})
	e := newEnv(t, nil)
	e.scriptedMX("example.test", m)
	en := envelope("bob@example.test")
	en.BodyType = "7BIT"
	if res := send(t, e, en); !res[0].Delivered() {
		t.Errorf("result %+v", res[0])
	}
	<-m.done
	want := []string{"EHLO posta.sender.test", "HELO posta.sender.test", "MAIL FROM:<alice@sender.test>",
		"RCPT TO:<bob@example.test>", "DATA", "QUIT"}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
}

// TestSTARTTLSReplyInjection: bytes after the 220 to STARTTLS arrived in
// clear and could come from anyone on the path; the client does not go on
// (the client-side twin of CVE-2011-0411).
func TestSTARTTLSReplyInjection(t *testing.T) {
	m := newScriptMX(t, func(p *peer) {
		p.line()
		p.send("250-script.test\r\n250 STARTTLS\r\n")
		if l := p.line(); l != "STARTTLS" {
			t.Errorf("got %q, want STARTTLS", l)
		}
		p.send("220 go ahead\r\n250 injected\r\n")
		io.Copy(io.Discard, p.br)
	})
	e := newEnv(t, nil)
	e.scriptedMX("example.test", m)
	res := send(t, e, envelope("bob@example.test"))
	if r := res[0]; r.Delivered() || r.Permanent || !strings.Contains(r.Text, "after the STARTTLS reply") {
		t.Errorf("result %+v, want a temporary failure naming the injection", r)
	}
}

// TestBINARYMIMEByBDAT: a binary body goes by BDAT chunks, byte for byte,
// to a server offering CHUNKING and BINARYMIME (RFC 3030 3), and bounces
// without conversion from one that does not.
func TestBINARYMIMEByBDAT(t *testing.T) {
	body := bytes.Repeat([]byte("bin\x00ary\nbare LF, \r bare CR, .dot\r\n"), (2*chunkSize)/37+5)
	for _, offered := range []bool{true, false} {
		mx := newFakeMX(t, fakeMXConfig{binaryMIME: offered})
		e := newEnv(t, nil)
		e.oneMX("example.test", "mx1.example.test", "192.0.2.1", mx)
		en := envelope("bob@example.test")
		en.BodyType, en.Size = "BINARYMIME", int64(len(body))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res := e.tr.Send(ctx, en, func() (io.Reader, error) { return bytes.NewReader(body), nil })
		cancel()
		if !offered {
			if r := res[0]; !r.Permanent || r.Enhanced != "5.6.3" {
				t.Errorf("to a server without BINARYMIME: %+v, want permanent 5.6.3", r)
			}
			continue
		}
		if !res[0].Delivered() {
			t.Fatalf("result %+v", res[0])
		}
		got := mx.messages()
		if len(got) != 1 || !bytes.Equal(got[0].Data, body) || got[0].MailOpts.Body != "BINARYMIME" {
			t.Errorf("stored %d messages; body equal: %v", len(got), len(got) == 1 && bytes.Equal(got[0].Data, body))
		}
	}
}

func TestReadReply(t *testing.T) {
	for _, c := range []struct {
		in       string
		code     int
		enhanced string
		text     string
		bad      bool
	}{
		{in: "250 ok\r\n", code: 250, text: "ok"},
		{in: "250\r\n", code: 250},
		{in: "550-5.1.1 one\r\n550-5.1.1 two\r\n550 5.1.1 three\r\n", code: 550, enhanced: "5.1.1", text: "one\ntwo\nthree"},
		{in: "450 5.1.1 class disagrees\r\n", code: 450, text: "5.1.1 class disagrees"},
		{in: "250 2.0.0\r\n", code: 250, enhanced: "2.0.0"},
		{in: "354 go on\n", code: 354, text: "go on"},
		{in: "250-a\r\n251 b\r\n", bad: true},
		{in: "25 short\r\n", bad: true},
		{in: "2x0 no\r\n", bad: true},
		{in: "250_sep\r\n", bad: true},
		{in: "199 early\r\n", bad: true},
		{in: "250-" + strings.Repeat("x", maxReplyLine) + "\r\n", bad: true},
		{in: strings.Repeat("250-x\r\n", maxReplyLines+1), bad: true},
		{in: "250-unfinished\r\n", bad: true},
	} {
		a, b := net.Pipe()
		go func() { io.WriteString(b, c.in); b.Close() }()
		r, _, err := newClient(a).readReply(time.Second)
		a.Close()
		if c.bad {
			if err == nil {
				t.Errorf("%q: read %+v, want an error", c.in, r)
			}
			continue
		}
		if err != nil || r.code != c.code || r.enhanced != c.enhanced || r.text != c.text {
			t.Errorf("%q: %+v %v, want %d %q %q", c.in, r, err, c.code, c.enhanced, c.text)
		}
	}
}

func TestParameterEncoding(t *testing.T) {
	if got := xtext("a+b=c d\x01é"); got != "a+2Bb+3Dc+20d+01+C3+A9" {
		t.Errorf("xtext: %q", got)
	}
	if got := utf8Addr("jö+rg=x y@ex", false); got != `j\x{F6}\x{2B}rg\x{3D}x\x{20}y@ex` {
		t.Errorf("utf-8-addr-xtext: %q", got)
	}
	if got := utf8Addr("jö+rg@ex", true); got != `jö\x{2B}rg@ex` {
		t.Errorf("utf-8-addr-unitext: %q", got)
	}
	d := &delivery{env: queue.Envelope{MailFrom: "a@b.test", Size: 10, Ret: "hdrs", EnvID: "id+1"}}
	s := &session{c: &client{ext: map[string]string{"DSN": "", "SIZE": "0"}}}
	if got := d.mailCommand(s, false); got != "MAIL FROM:<a@b.test> SIZE=10 RET=HDRS ENVID=id+2B1" {
		t.Errorf("MAIL: %q", got)
	}
	rc := queue.Recipient{Address: "b@c.test", Notify: []string{"success", "FAILURE"}, ORCPT: "rfc822;b+x@c.test"}
	if got := d.rcptCommand(s, rc); got != "RCPT TO:<b@c.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@c.test" {
		t.Errorf("RCPT: %q", got)
	}
	rc.Notify = []string{"NEVER", "SUCCESS"}
	if got := d.rcptCommand(s, rc); strings.Contains(got, "NOTIFY") {
		t.Errorf("NEVER with another value was sent: %q", got)
	}
}

// FuzzReadReply: any server bytes give a reply or an error, never a panic,
// and a reply's code is a real one.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "550-5.1.1 a\r\n550 5.1.1 b\r\n", "354 go\n", "250-x\r\n250\r\n",
		"421 4.4.2 bye\r\n", "220-a\r\n220-b\r\n220 c\r\n", "2\r\n", "250-\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { b.Write(in); b.Close() }()
		c := newClient(a)
		for range 4 {
			r, lines, err := c.readReply(time.Second)
			if err != nil {
				return
			}
			if r.code < 200 || r.code > 599 || len(lines) == 0 || len(lines) > maxReplyLines {
				t.Fatalf("reply %+v with %d lines from %q", r, len(lines), in)
			}
		}
	})
}
