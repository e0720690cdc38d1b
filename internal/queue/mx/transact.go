package mx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"posta/internal/queue"
)

// step is one command of a transaction and how long its reply may take.
type step struct {
	name    string // for the log and for errors: "rset", "mail", "rcpt", "data"
	line    string
	timeout time.Duration
}

// maxGroup is the most octets of commands sent before reading replies. RFC
// 2920 3.1: a client that does not read while it writes must keep each
// group within the TCP window, "usually, but not always, 4K octets".
const maxGroup = 4000

// pipe sends a transaction's commands and hands out their replies in
// order. With PIPELINING (RFC 2920) the commands go out in groups, DATA
// last; without it each command waits for the reply before it.
type pipe struct {
	c         *client
	steps     []step
	pipelined bool
	sent      int // commands written
	read      int // replies read
}

// next returns the reply to steps[p.read], sending the commands it needs.
func (p *pipe) next() (reply, error) {
	if p.read == p.sent {
		size := 0
		for p.sent < len(p.steps) {
			st := p.steps[p.sent]
			if p.sent > p.read && (!p.pipelined || size+len(st.line)+2 > maxGroup) {
				break
			}
			if err := p.c.write(st.line); err != nil {
				return reply{}, err
			}
			size += len(st.line) + 2
			p.sent++
		}
		if err := p.c.flush(p.steps[p.read].timeout); err != nil {
			return reply{}, err
		}
	}
	r, _, err := p.c.readReply(p.steps[p.read].timeout)
	p.read++
	return r, err
}

// drain reads the replies of commands sent but not yet read, so that the
// session is back in step (RFC 2920 3.1: every status must be checked).
// dataOpen reports a 354 among them: the server then waits for a body.
func (p *pipe) drain() (dataOpen bool, err error) {
	for p.read < p.sent {
		r, _, err := p.c.readReply(p.steps[p.read].timeout)
		p.read++
		if err != nil {
			return dataOpen, err
		}
		dataOpen = dataOpen || r.code == 354
	}
	return dataOpen, nil
}

// transact runs one mail transaction on s, after RSET when rset is set (a
// reused session, RFC 5321 4.1.1.5). fin means every pending recipient has
// its result; otherwise f says why the host did not take the message and
// the next host may. healthy means s may carry another transaction. stale
// means the RSET found the session gone: nothing was sent.
func (d *delivery) transact(ctx context.Context, s *session, rset bool) (fin bool, f *failure, healthy, stale bool) {
	t, env := d.t, d.env
	if f := d.checkPeer(s); f != nil {
		if f.permanent {
			d.failPending(f)
			return true, nil, true, false
		}
		return false, f, true, false
	}
	rd, err := d.body()
	if err != nil {
		d.failPending(&failure{enhanced: "4.3.0", remote: s.host, text: "cannot read the message: " + err.Error(),
			err: fmt.Errorf("mx: body: %w", err)})
		return true, nil, true, false
	}
	bdat := strings.EqualFold(env.BodyType, "BINARYMIME")

	pending := d.pending()
	p := &pipe{c: s.c}
	p.pipelined, _ = s.c.extension("PIPELINING")
	if rset {
		p.steps = append(p.steps, step{"rset", "RSET", t.timeouts.Mail})
	}
	p.steps = append(p.steps, step{"mail", d.mailCommand(s, bdat), t.timeouts.Mail})
	for _, i := range pending {
		p.steps = append(p.steps, step{"rcpt", d.rcptCommand(s, env.Recipients[i]), t.timeouts.Rcpt})
	}
	if !bdat {
		// RFC 2920 3.1: DATA may end the group.
		p.steps = append(p.steps, step{"data", "DATA", t.timeouts.DataInit})
	}

	if rset {
		r, err := p.next()
		if err != nil || r.code/100 != 2 {
			return false, nil, false, true
		}
		s.note("rset", r.code)
	}

	// MAIL (RFC 5321 4.1.1.2).
	r, err := p.next()
	if err != nil {
		return false, d.lost(s, "MAIL", err, "4.4.2"), false, false
	}
	s.note("mail", r.code)
	if r.code/100 != 2 {
		f := &failure{code: r.code, enhanced: r.enhanced, text: r.text, remote: s.host,
			err: fmt.Errorf("mx: MAIL at %s: %w", s.host, &replyError{r})}
		dataOpen, derr := p.drain()
		healthy := r.code != 421 && derr == nil && !dataOpen
		if r.code >= 500 {
			f.permanent = true
			d.failPending(f)
			return true, nil, healthy, false
		}
		// 4xx: the transaction was not accepted; another host may.
		return false, f, healthy, false
	}

	// RCPT (RFC 5321 4.1.1.3); RFC 5321 3.3: each reply is about that
	// recipient only.
	var accepted []int
	var rcptCodes []string
	for _, i := range pending {
		rc := env.Recipients[i]
		r, err := p.next()
		if err != nil || r.code == 421 {
			// The session is gone: nobody got the message.
			f := d.lost(s, "RCPT", err, "4.4.2")
			if err == nil {
				s.note("rcpt", r.code)
				f = d.lost(s, "RCPT", &replyError{r}, "4.4.2")
				f.code, f.enhanced, f.text = r.code, r.enhanced, r.text
			}
			d.failPending(f)
			return true, nil, false, false
		}
		rcptCodes = append(rcptCodes, strconv.Itoa(r.code))
		if r.code/100 == 2 {
			accepted = append(accepted, i)
			continue
		}
		d.set(i, queue.Result{Recipient: rc.Address, Code: r.code, Enhanced: r.enhanced, Text: r.text,
			Permanent: r.code >= 500, RemoteMTA: s.host, Err: fmt.Errorf("mx: RCPT at %s: %w", s.host, &replyError{r})})
	}
	s.codes = append(s.codes, "rcpt="+strings.Join(rcptCodes, ","))
	if len(accepted) == 0 {
		// RFC 2920 3.1: a pipelined DATA must still be answered; if the
		// server took it, the session is closed rather than fed a body.
		dataOpen, err := p.drain()
		return true, nil, err == nil && !dataOpen, false
	}
	failAccepted := func(f *failure) {
		for _, i := range accepted {
			d.set(i, f.result(env.Recipients[i].Address))
		}
	}

	var final reply
	if bdat {
		final, err = d.sendChunks(s, rd, p.pipelined)
	} else {
		r, derr := p.next()
		if derr != nil || r.code == 421 {
			f := d.lost(s, "DATA", derr, "4.4.2")
			if derr == nil {
				s.note("data", r.code)
				f = d.lost(s, "DATA", &replyError{r}, "4.4.2")
				f.code, f.enhanced, f.text = r.code, r.enhanced, r.text
			}
			failAccepted(f)
			return true, nil, false, false
		}
		s.note("data", r.code)
		if r.code != 354 {
			failAccepted(&failure{code: r.code, enhanced: r.enhanced, text: r.text, permanent: r.code >= 500,
				remote: s.host, err: fmt.Errorf("mx: DATA at %s: %w", s.host, &replyError{r})})
			return true, nil, true, false
		}
		final, err = d.sendBody(s, rd)
	}
	s.uses++
	if err != nil {
		// RFC 5321 6.1: no final reply; the message may have arrived,
		// and a retry may duplicate it. No final dot after a short body:
		// the server discards the transaction (RFC 5321 4.1.1.4).
		f := d.lost(s, "message transfer", err, "4.4.2")
		var be *bodyError
		if errors.As(err, &be) {
			f.enhanced, f.text = "4.3.0", "cannot read the message: "+be.err.Error()
		}
		failAccepted(f)
		return true, nil, false, false
	}
	s.note("dot", final.code)
	switch {
	case final.code == 421:
		f := d.lost(s, "end of data", &replyError{final}, "4.4.2")
		f.code, f.enhanced, f.text = final.code, final.enhanced, final.text
		failAccepted(f)
		return true, nil, false, false
	case final.code/100 == 2:
		failAccepted(&failure{code: final.code, enhanced: final.enhanced, text: final.text, remote: s.host})
	default:
		failAccepted(&failure{code: final.code, enhanced: final.enhanced, text: final.text, permanent: final.code >= 500,
			remote: s.host, err: fmt.Errorf("mx: end of data at %s: %w", s.host, &replyError{final})})
	}
	return true, nil, true, false
}

// checkPeer fails what this peer cannot take, before any command: a
// permanent failure bounces the pending recipients, a temporary one sends
// the message to the next host.
func (d *delivery) checkPeer(s *session) *failure {
	env := d.env
	ext := s.c.extension
	if env.RequireTLS {
		// RFC 8689 4.2.1 steps 2, 4 and 5 (a reused session may have
		// been opened for a message that did not ask).
		if !s.vouched || !s.verified() {
			why := "no TLS"
			switch {
			case !s.vouched:
				why = "the MX host name is not validated"
			case s.certErr != nil:
				why = "certificate not verified: " + s.certErr.Error()
			}
			return &failure{enhanced: "5.7.10", remote: s.host, requireTLS: true,
				text: fmt.Sprintf("REQUIRETLS: no verified TLS with %s (%s)", s.host, why),
				err:  fmt.Errorf("mx: requiretls: %s: %s", s.host, why)}
		}
		// RFC 8689 5: a bounce of a REQUIRETLS message (null sender)
		// goes with REQUIRETLS where offered, and is not lost for want of
		// it.
		if ok, _ := ext("REQUIRETLS"); !ok && env.MailFrom != "" {
			return &failure{enhanced: "5.7.30", remote: s.host, requireTLS: true,
				text: fmt.Sprintf("REQUIRETLS support required, and %s does not offer it", s.host),
				err:  fmt.Errorf("mx: requiretls: not offered by %s", s.host)}
		}
	}
	if ok, v := ext("SIZE"); ok && v != "" {
		// RFC 1870 4, 7: a fixed limit below the message size will
		// never take it.
		if limit, err := strconv.ParseInt(v, 10, 64); err == nil && limit > 0 && env.Size > limit {
			return &failure{enhanced: "5.3.4", permanent: true, remote: s.host,
				text: fmt.Sprintf("message size %d exceeds the limit of %s (%d)", env.Size, s.host, limit),
				err:  fmt.Errorf("mx: size %d > %d", env.Size, limit)}
		}
	}
	if ok, _ := ext("SMTPUTF8"); d.needUTF8 && !ok {
		// RFC 6531 3.2: no internationalized envelope or message to a
		// server without SMTPUTF8.
		return &failure{enhanced: "5.6.7", permanent: true, remote: s.host,
			text: "message needs SMTPUTF8, which the destination does not offer",
			err:  fmt.Errorf("mx: %s lacks SMTPUTF8", s.host)}
	}
	if ok, _ := ext("8BITMIME"); strings.EqualFold(env.BodyType, "8BITMIME") && !ok {
		// RFC 6152 3: no 8-bit content to a server without 8BITMIME;
		// we do not convert (it would break the DKIM signature).
		return &failure{enhanced: "5.6.3", permanent: true, remote: s.host,
			text: "message has 8-bit content, which the destination does not accept (no 8BITMIME)",
			err:  fmt.Errorf("mx: %s lacks 8BITMIME", s.host)}
	}
	if strings.EqualFold(env.BodyType, "BINARYMIME") {
		// RFC 3030 3: BINARYMIME goes only with BDAT, to a server that
		// offers both; the body must not be converted.
		chunking, _ := ext("CHUNKING")
		binary, _ := ext("BINARYMIME")
		if !chunking || !binary {
			return &failure{enhanced: "5.6.3", permanent: true, remote: s.host,
				text: "binary message (BINARYMIME), which the destination does not accept",
				err:  fmt.Errorf("mx: %s lacks CHUNKING or BINARYMIME", s.host)}
		}
	}
	return nil
}

// bodyError is a failure to read the stored message, not the peer's.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "mx: reading the message: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader tells a bad body from a bad peer.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// sendBody sends the body after a 354, dot-stuffed, with its final dot
// (RFC 5321 4.1.1.4), and reads the reply to the dot.
func (d *delivery) sendBody(s *session, rd io.Reader) (reply, error) {
	t := d.t
	w := s.c.dataWriter()
	if _, err := io.Copy(&blockWriter{w: w, conn: s.cc, timeout: t.timeouts.DataBlock}, bodyReader{rd}); err != nil {
		return reply{}, err
	}
	s.cc.SetWriteDeadline(time.Now().Add(t.timeouts.DataBlock))
	if err := w.Close(); err != nil {
		return reply{}, err
	}
	final, _, err := s.c.readReply(t.timeouts.DataTerm)
	return final, err
}

// chunkSize is the size of each BDAT chunk.
const chunkSize = 1 << 20

// sendChunks sends the body as BDAT chunks (RFC 3030 2), pipelined when the
// server allows (RFC 3030 4.2), and returns the reply that decides: the
// first failing one, or the LAST chunk's.
func (d *delivery) sendChunks(s *session, rd io.Reader, pipelined bool) (reply, error) {
	t := d.t
	buf := make([]byte, chunkSize)
	var final reply
	outstanding := 0
	take := func() error {
		r, _, err := s.c.readReply(t.timeouts.DataTerm)
		if err != nil {
			return err
		}
		outstanding--
		if final.code == 0 || final.code/100 == 2 {
			final = r
		}
		return nil
	}
	for last := false; !last; {
		n, err := io.ReadFull(bodyReader{rd}, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			return reply{}, err
		}
		cmd := "BDAT " + strconv.Itoa(n)
		if last {
			cmd += " LAST"
		}
		if err := s.c.write(cmd); err != nil {
			return reply{}, err
		}
		s.cc.SetWriteDeadline(time.Now().Add(t.timeouts.DataBlock))
		if _, err := s.c.bw.Write(buf[:n]); err != nil {
			return reply{}, err
		}
		if err := s.c.flush(t.timeouts.DataBlock); err != nil {
			return reply{}, err
		}
		outstanding++
		if !pipelined {
			if err := take(); err != nil {
				return reply{}, err
			}
			// RFC 3030 2: after a failed chunk, no more chunks.
			if final.code/100 != 2 {
				break
			}
		}
	}
	for outstanding > 0 {
		if err := take(); err != nil {
			return reply{}, err
		}
	}
	return final, nil
}

// lost describes a session that broke at step.
func (d *delivery) lost(s *session, step string, err error, enhanced string) *failure {
	if s.cc.isDead() {
		err = fmt.Errorf("%w (send cancelled)", err)
	}
	return &failure{enhanced: enhanced, remote: s.host,
		text: fmt.Sprintf("connection to %s[%s] lost at %s: %v", s.host, s.addr, step, err),
		err:  fmt.Errorf("mx: %s at %s: %w", step, s.host, err)}
}

// mailCommand is the MAIL command with the parameters the peer offers.
func (d *delivery) mailCommand(s *session, bdat bool) string {
	env, ext := d.env, s.c.extension
	var b strings.Builder
	fmt.Fprintf(&b, "MAIL FROM:<%s>", env.MailFrom)
	if ok, _ := ext("SIZE"); ok && env.Size > 0 {
		fmt.Fprintf(&b, " SIZE=%d", env.Size) // RFC 1870 6
	}
	switch ok, _ := ext("8BITMIME"); {
	case bdat:
		b.WriteString(" BODY=BINARYMIME") // RFC 3030 3
	case ok:
		// RFC 6152 2. Also for a body that did not declare itself 8-bit:
		// many clients send 8-bit text without BODY=8BITMIME, and a 7-bit
		// body declared 8-bit is harmless.
		b.WriteString(" BODY=8BITMIME")
	}
	if ok, _ := ext("REQUIRETLS"); ok && env.RequireTLS {
		b.WriteString(" REQUIRETLS") // RFC 8689 4.1 (offered unless a bounce, checkPeer)
	}
	if d.needUTF8 {
		b.WriteString(" SMTPUTF8") // RFC 6531 3.4, offered (checkPeer)
	}
	if ok, _ := ext("DSN"); ok {
		// RFC 3461 4.3, 4.4. Malformed values are dropped, not fatal.
		if ret := strings.ToUpper(env.Ret); ret == "FULL" || ret == "HDRS" {
			b.WriteString(" RET=" + ret)
		}
		if env.EnvID != "" && printableASCII(env.EnvID) && len(env.EnvID) <= 100 {
			b.WriteString(" ENVID=" + xtext(env.EnvID))
		}
	}
	return b.String()
}

// rcptCommand is the RCPT command, with the recipient's DSN parameters
// (RFC 3461 4.1, 4.2) when the peer offers DSN.
func (d *delivery) rcptCommand(s *session, rc queue.Recipient) string {
	cmd := "RCPT TO:<" + rc.Address + ">"
	if ok, _ := s.c.extension("DSN"); !ok {
		return cmd
	}
	var notify []string
	seen := map[string]bool{}
	valid := len(rc.Notify) > 0
	for _, n := range rc.Notify {
		n = strings.ToUpper(strings.TrimSpace(n))
		switch n {
		case "NEVER", "SUCCESS", "FAILURE", "DELAY":
		default:
			valid = false
		}
		if seen[n] {
			valid = false
		}
		seen[n] = true
		notify = append(notify, n)
	}
	// RFC 3461 4.1: NEVER stands alone; a bad set is dropped.
	if valid && !(seen["NEVER"] && len(seen) > 1) {
		cmd += " NOTIFY=" + strings.Join(notify, ",")
	}
	if typ, addr, ok := strings.Cut(rc.ORCPT, ";"); ok && addr != "" && !strings.ContainsAny(addr, "\r\n") {
		utf8Peer, _ := s.c.extension("SMTPUTF8")
		switch {
		case strings.EqualFold(typ, "rfc822") && printableASCII(addr):
			cmd += " ORCPT=rfc822;" + xtext(addr)
		case strings.EqualFold(typ, "rfc822"), strings.EqualFold(typ, "utf-8"):
			// RFC 6533 3: a UTF-8 address travels as utf-8-addr,
			// unitext to an SMTPUTF8 peer and xtext to any other.
			cmd += " ORCPT=utf-8;" + utf8Addr(addr, utf8Peer)
		}
	}
	return cmd
}

// xtext encodes s (RFC 3461 4): "+" and "=", and anything outside
// printable ASCII, as "+" and two upper-case hex digits.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// utf8Addr encodes a UTF-8 address (RFC 6533 3): utf-8-addr-unitext keeps
// non-ASCII characters, utf-8-addr-xtext writes them as \x{HEX}; both so
// write ASCII controls, space, "+", "=" and "\".
func utf8Addr(s string, unitext bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '!' && r <= '~' && r != '+' && r != '=' && r != '\\':
			b.WriteRune(r)
		case r >= 0x80 && unitext:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "\\x{%X}", r)
		}
	}
	return b.String()
}
