package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// What a DSN returns of the original message (RFC 3461 4.3, RFC 3464 2 d).
const (
	// retDefaultFullMax: without RET the MTA may return the headers or the
	// whole message; we return the whole message up to this size, the
	// headers beyond it.
	retDefaultFullMax = 128 << 10
	// retFullMax: RET=FULL returns the whole message up to this size; a
	// larger one only its headers (the human-readable part says so), so a
	// DSN never holds an unbounded copy in memory.
	retFullMax = 10 << 20
	// headersMax bounds the header section returned.
	headersMax = 256 << 10
	// fieldMax bounds a DSN field's value (RFC 5322 2.1.1: lines under 998).
	fieldMax = 900
)

// dsnRcpt is a recipient in a DSN with its action (RFC 3464 2.3.3).
type dsnRcpt struct {
	RecipientStatus
	Action string // failed, delayed, relayed
}

// sendOwed sends one DSN for every recipient whose final state the sender
// must hear about (failed or relayed), then clears their flags.
func (w *worker) sendOwed(ctx context.Context, j *job, m Message, rs []RecipientStatus, now time.Time, log *slog.Logger) error {
	var list []dsnRcpt
	for _, r := range rs {
		if !r.DSNPending {
			continue
		}
		action := "failed"
		if r.State == StateSent {
			action = "relayed"
		}
		list = append(list, dsnRcpt{RecipientStatus: r, Action: action})
	}
	if len(list) == 0 {
		return nil
	}
	err := w.notify(ctx, m, list, now)
	if err != nil && !now.Before(m.Expires.Add(dsnGiveUp)) {
		log.Error("queue: giving up on a DSN", "to", m.MailFrom, "err", err)
		err = nil
	}
	if err != nil {
		return err
	}
	dbctx := context.WithoutCancel(ctx)
	return w.owned(dbctx, j, func(tx *sql.Tx) error {
		for _, r := range list {
			if _, err := tx.ExecContext(dbctx, `UPDATE queue_recipients SET dsn_pending = 0 WHERE queue_id = ? AND address = ?`,
				j.id, r.Address); err != nil {
				return fmt.Errorf("queue: dsn sent: %w", err)
			}
		}
		return nil
	})
}

// sendDelay sends the one "delayed" DSN of a message (RFC 3461 5.2.5) for
// its pending recipients whose NOTIFY allows it, and marks it sent (also
// when nobody wanted one, so it is decided once).
func (w *worker) sendDelay(ctx context.Context, j *job, m Message, pending []RecipientStatus, now time.Time, log *slog.Logger) error {
	var list []dsnRcpt
	if m.MailFrom != "" { // RFC 5321 6.1, RFC 3461 5.2: never to <>
		for _, r := range pending {
			if wantsDelay(r.Notify) {
				list = append(list, dsnRcpt{RecipientStatus: r, Action: "delayed"})
			}
		}
	}
	if len(list) > 0 {
		if err := w.notify(ctx, m, list, now); err != nil {
			return err
		}
		log.Info("queue: delay notice sent", "to", m.MailFrom, "recipients", len(list))
	}
	dbctx := context.WithoutCancel(ctx)
	return w.owned(dbctx, j, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(dbctx, `UPDATE queue SET delay_notified = 1 WHERE id = ?`, j.id)
		return err
	})
}

// notify builds a DSN and hands it to Bounce.
func (w *worker) notify(ctx context.Context, m Message, list []dsnRcpt, now time.Time) error {
	var orig io.ReaderAt
	if f, err := w.o.Blobs.Open(m.Blob); err == nil {
		defer f.Close()
		orig = f
	}
	dsn, err := buildDSN(dsnInput{Hostname: w.o.Hostname, Now: now, Msg: m, Recipients: list, Original: orig})
	if err != nil {
		return err
	}
	return w.o.Bounce(ctx, dsn, m.MailFrom, m.RequireTLS)
}

// dsnInput is what a DSN is made of.
type dsnInput struct {
	Hostname   string
	Now        time.Time
	Msg        Message
	Recipients []dsnRcpt
	// Original holds the message at Msg.BodyOffset, Msg.Size octets; nil:
	// not available (the DSN then has no third part).
	Original io.ReaderAt
}

// buildDSN writes a delivery status notification: RFC 3464 2 (a
// multipart/report, RFC 6522 3, of report-type delivery-status with a
// human-readable part, a message/delivery-status part and the original
// message or its headers). A message that needed SMTPUTF8 gets the RFC 6533
// types (message/global-delivery-status, message/global[-headers]) so its
// addresses may stay UTF-8.
func buildDSN(in dsnInput) ([]byte, error) {
	m := in.Msg
	global := m.SMTPUTF8 || !isASCII(m.MailFrom)
	for _, r := range in.Recipients {
		global = global || !isASCII(r.Address) || !isASCII(r.ORCPT)
	}
	failure, delayed := false, false
	for _, r := range in.Recipients {
		failure = failure || r.Action == "failed"
		delayed = delayed || r.Action == "delayed"
	}
	boundary := "=_posta_" + randomHex(12)
	var b bytes.Buffer
	crlf := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }

	subject := "Delivery Status Notification (relayed)"
	switch {
	case failure:
		subject = "Undelivered Mail Returned to Sender"
	case delayed:
		subject = "Delayed Mail (still being retried)"
	}
	// RFC 3464 2: From names someone responsible for the MTA; the envelope
	// sender is <> (the Bounce function's job). RFC 3834 5: Auto-Submitted.
	crlf("From: Mail Delivery System <MAILER-DAEMON@%s>", in.Hostname)
	crlf("To: <%s>", m.MailFrom)
	crlf("Subject: %s", subject)
	crlf("Date: %s", in.Now.Format(time.RFC1123Z))
	crlf("Message-ID: <%d.%s@%s>", in.Now.Unix(), randomHex(8), in.Hostname)
	crlf("Auto-Submitted: auto-replied")
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: multipart/report; report-type=delivery-status;")
	crlf("\tboundary=\"%s\"", boundary)
	crlf("")
	crlf("This is a MIME-formatted delivery status notification.")
	crlf("")

	// Part 1: for people (RFC 6522 3: the first part is human-readable).
	crlf("--%s", boundary)
	text := humanText(in, failure)
	crlf("Content-Type: text/plain; charset=utf-8")
	crlf("Content-Description: Notification")
	if isASCII(text) {
		crlf("Content-Transfer-Encoding: 7bit")
		crlf("")
		b.WriteString(text)
	} else {
		crlf("Content-Transfer-Encoding: quoted-printable")
		crlf("")
		qp := quotedprintable.NewWriter(&b)
		qp.Write([]byte(text))
		qp.Close()
		crlf("")
	}

	// Part 2: for programs (RFC 3464 2.1: 7bit; RFC 6533 4.1: the global
	// type may carry UTF-8).
	crlf("--%s", boundary)
	if global {
		crlf("Content-Type: message/global-delivery-status")
		crlf("Content-Transfer-Encoding: 8bit")
	} else {
		crlf("Content-Type: message/delivery-status")
	}
	crlf("Content-Description: Delivery report")
	crlf("")
	// RFC 3464 2.2: per-message fields.
	crlf("Reporting-MTA: dns; %s", in.Hostname)
	if m.EnvID != "" {
		crlf("Original-Envelope-Id: %s", field(m.EnvID, false)) // RFC 3464 2.2.1
	}
	crlf("Arrival-Date: %s", m.Created.Format(time.RFC1123Z)) // RFC 3464 2.2.5
	// RFC 3464 2.3: one group per recipient, each after a blank line.
	for _, r := range in.Recipients {
		crlf("")
		if r.ORCPT != "" {
			crlf("Original-Recipient: %s", field(r.ORCPT, global)) // RFC 3464 2.3.1, as given in ORCPT
		}
		addrType := "rfc822"
		if !isASCII(r.Address) {
			addrType = "utf-8" // RFC 6533 3
		}
		crlf("Final-Recipient: %s; %s", addrType, field(r.Address, global)) // RFC 3464 2.3.2
		crlf("Action: %s", r.Action)                                        // RFC 3464 2.3.3
		crlf("Status: %s", dsnStatus(r))                                    // RFC 3464 2.3.4
		if r.RemoteMTA != "" {
			crlf("Remote-MTA: dns; %s", field(r.RemoteMTA, false)) // RFC 3464 2.3.5
		}
		if d := diagnostic(r, global); d != "" {
			crlf("Diagnostic-Code: %s", d) // RFC 3464 2.3.6
		}
		if !r.LastAttempt.IsZero() {
			crlf("Last-Attempt-Date: %s", r.LastAttempt.Format(time.RFC1123Z)) // RFC 3464 2.3.7
		}
		if r.Action == "delayed" && !m.Expires.IsZero() {
			crlf("Will-Retry-Until: %s", m.Expires.Format(time.RFC1123Z)) // RFC 3464 2.3.9
		}
	}

	// Part 3: the original, whole or its headers (RFC 3461 4.3; RFC 6522 4
	// text/rfc822-headers; RFC 6533 4.2, 4.3 for the global forms).
	if in.Original != nil {
		sec := io.NewSectionReader(in.Original, m.BodyOffset, m.Size)
		full := returnFull(dsnRet(m), m.Size, failure)
		crlf("")
		crlf("--%s", boundary)
		switch {
		case full && global:
			crlf("Content-Type: message/global")
		case full:
			crlf("Content-Type: message/rfc822")
		case global:
			crlf("Content-Type: message/global-headers")
		default:
			crlf("Content-Type: text/rfc822-headers")
		}
		switch strings.ToUpper(m.BodyType) {
		case "8BITMIME":
			crlf("Content-Transfer-Encoding: 8bit")
		case "BINARYMIME":
			if full {
				crlf("Content-Transfer-Encoding: binary")
			} else {
				crlf("Content-Transfer-Encoding: 8bit")
			}
		}
		if full {
			crlf("Content-Description: Undelivered message")
		} else {
			crlf("Content-Description: Message headers")
		}
		crlf("")
		start := b.Len()
		var err error
		if full {
			_, err = io.Copy(&b, sec)
		} else {
			err = copyHeaders(&b, sec)
		}
		if err != nil {
			return nil, fmt.Errorf("queue: dsn: read original: %w", err)
		}
		if n := b.Len(); n > start && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			if b.Bytes()[n-1] == '\n' {
				b.Truncate(n - 1)
			}
			b.WriteString("\r\n")
		}
	}
	// The CRLF before a delimiter belongs to it (RFC 2046 5.1.1): this one
	// keeps the part's own last line end.
	crlf("")
	crlf("--%s--", boundary)
	return b.Bytes(), nil
}

// dsnRet is the RET that applies to m's DSNs: RFC 8689 5, a REQUIRETLS
// message bounces as if RET=HDRS was given, whatever RET said.
func dsnRet(m Message) string {
	if m.RequireTLS {
		return "HDRS"
	}
	return m.Ret
}

// returnFull decides between the whole message and its headers.
func returnFull(ret string, size int64, failure bool) bool {
	if !failure {
		return false // RFC 3461 4.3: without a failure, only the headers
	}
	switch strings.ToUpper(ret) {
	case "HDRS":
		return false
	case "FULL":
		return size <= retFullMax
	default:
		return size <= retDefaultFullMax
	}
}

// copyHeaders copies the header section (up to the empty line, which is
// left out) of at most headersMax octets, whole lines only.
func copyHeaders(w *bytes.Buffer, r io.Reader) error {
	br := bufio.NewReader(r)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil // a line longer than the buffer: not a header line
		}
		if len(line) > 0 && err == nil {
			if string(line) == "\r\n" || string(line) == "\n" {
				return nil
			}
			if n += len(line); n > headersMax {
				return nil
			}
			w.Write(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// dsnStatus is the Status field (RFC 3464 2.3.4, codes from RFC 3463).
func dsnStatus(r dsnRcpt) string {
	valid := enhancedRE.MatchString(r.Enhanced)
	switch r.Action {
	case "relayed":
		if valid && r.Enhanced[0] == '2' {
			return r.Enhanced
		}
		return "2.0.0"
	case "delayed":
		if valid && r.Enhanced[0] == '4' {
			return r.Enhanced
		}
		return "4.0.0"
	}
	if r.Expired {
		// RFC 3463 3.5 X.4.7 "Delivery time expired": but the code of the
		// problem actually met should be returned instead when known.
		if valid && r.Enhanced[0] != '2' {
			return r.Enhanced
		}
		return "4.4.7"
	}
	if valid && r.Enhanced[0] == '5' {
		return r.Enhanced
	}
	return "5.0.0"
}

// diagnostic is the Diagnostic-Code value: the remote's reply as
// "smtp; code text" (RFC 3464 2.3.6); a failure without a reply (no MX
// answered, TLS required) as our own "X-Posta" diagnostic type.
func diagnostic(r dsnRcpt, global bool) string {
	if r.Code != 0 {
		s := fmt.Sprintf("%d ", r.Code)
		if r.Enhanced != "" && !strings.HasPrefix(r.Text, r.Enhanced) {
			s += r.Enhanced + " "
		}
		return "smtp; " + field(s+r.Text, global)
	}
	if r.Text != "" {
		return "X-Posta; " + field(r.Text, global)
	}
	return ""
}

// humanText is the first part: what happened, in words.
func humanText(in dsnInput, failure bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n", in.Hostname)
	var failed, delayed, relayed []dsnRcpt
	for _, r := range in.Recipients {
		switch r.Action {
		case "failed":
			failed = append(failed, r)
		case "delayed":
			delayed = append(delayed, r)
		default:
			relayed = append(relayed, r)
		}
	}
	line := func(r dsnRcpt) {
		why := describe(r.RecipientStatus)
		if why == "" {
			why = "no details"
		}
		fmt.Fprintf(&b, "  <%s>: %s\r\n", r.Address, strings.ToValidUTF8(why, "?"))
	}
	if len(failed) > 0 {
		b.WriteString("Your message could not be delivered to the recipients below; the\r\n")
		b.WriteString("mail system has given up on them.\r\n\r\n")
		for _, r := range failed {
			if r.Expired {
				fmt.Fprintf(&b, "  <%s>: still undeliverable after %s; last error: %s\r\n", r.Address,
					age(in.Now.Sub(in.Msg.Created)), nonEmpty(describe(r.RecipientStatus)))
				continue
			}
			line(r)
		}
		b.WriteString("\r\n")
	}
	if len(delayed) > 0 {
		fmt.Fprintf(&b, "Your message has not been delivered yet to the recipients below. The\r\n")
		fmt.Fprintf(&b, "mail system keeps trying until %s; you need not\r\n", in.Msg.Expires.Format(time.RFC1123Z))
		b.WriteString("send it again. This is only a warning.\r\n\r\n")
		for _, r := range delayed {
			line(r)
		}
		b.WriteString("\r\n")
	}
	if len(relayed) > 0 {
		b.WriteString("Your message was handed to the mail servers of the recipients below,\r\n")
		b.WriteString("which will not confirm its final delivery.\r\n\r\n")
		for _, r := range relayed {
			line(r)
		}
		b.WriteString("\r\n")
	}
	if in.Original != nil && failure && !returnFull(dsnRet(in.Msg), in.Msg.Size, failure) && !strings.EqualFold(dsnRet(in.Msg), "HDRS") {
		fmt.Fprintf(&b, "The message (%d octets) is too large to return whole; its headers follow.\r\n", in.Msg.Size)
	}
	return b.String()
}

func nonEmpty(s string) string {
	if s == "" {
		return "none recorded"
	}
	return s
}

// age is a short duration for people: 5d, 4h, 30m.
func age(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
}

// field makes s safe as a DSN field value: one line, no control
// characters, ASCII unless global, at most fieldMax octets.
func field(s string, global bool) string {
	var b strings.Builder
	space := false
	for _, c := range s {
		switch {
		case c == utf8.RuneError || c < ' ' || c == 0x7f:
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
				space = true
			}
			continue
		case c == ' ':
			if space || b.Len() == 0 {
				continue
			}
			space = true
		case c >= 0x80 && !global:
			c = '?'
			space = false
		default:
			space = false
		}
		if b.Len()+utf8.RuneLen(c) > fieldMax {
			break
		}
		b.WriteRune(c)
	}
	return strings.TrimRight(b.String(), " ")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
