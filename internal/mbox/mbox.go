// Package mbox reads mbox files, the one-file-per-folder format of
// Thunderbird, mutt, UW-IMAP and Dovecot's mbox storage, and Google
// Takeout's export, so their mail can be imported.
//
// A message starts at a line beginning "From " (the From_ line, RFC 4155
// 2) at the start of the file or after an empty line. Lines of the body that
// began "From " were written as ">From " (mboxo) and lines already quoted
// got one more ">" (mboxrd); one ">" is taken off every ">...>From " line,
// which restores mboxrd exactly and mboxo but for bodies that had
// ">From " themselves. The empty line the writer put before the next From_
// line is not part of the message. Header fields that are the mbox
// writer's bookkeeping (Status, X-Status, X-Keywords, X-UID, X-IMAP,
// X-IMAPbase, Content-Length) become flags or are dropped.
//
// It imports nothing of Posta's own.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
)

// MaxLine bounds one line; a longer one is an error (not an mbox file).
const MaxLine = 1 << 20

// Message is one message of an mbox.
type Message struct {
	// Body is the message as stored: lines end as in the file, quoting
	// undone, bookkeeping header fields removed.
	Body []byte
	// Date is the From_ line's date, else the Date header's, else zero.
	Date time.Time
	// Flags are IMAP flags from Status and X-Status (\Seen, \Answered,
	// \Flagged, \Deleted, \Draft), then keywords from X-Keywords.
	Flags []string
	// Offset is where the message's From_ line starts in the file.
	Offset int64
}

// Reader reads the messages of an mbox one by one.
type Reader struct {
	r      *bufio.Reader
	off    int64  // offset of the next unread byte
	from   []byte // the From_ line read ahead, nil at the start
	fromAt int64
	done   bool
}

// NewReader reads an mbox from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// ErrNotMbox: the input does not start with a From_ line.
var ErrNotMbox = errors.New("mbox: not an mbox file (no \"From \" line at its start)")

// readLine returns the next line with its ending, io.EOF at the end.
func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return nil, fmt.Errorf("mbox: line at offset %d longer than %d octets", r.off, MaxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		r.off += int64(len(line))
		if err != nil && len(line) > 0 && err == io.EOF {
			return line, nil
		}
		return line, err
	}
}

func isFromLine(line []byte) bool { return bytes.HasPrefix(line, []byte("From ")) }

func isEmptyLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// Next returns the next message, or io.EOF after the last.
func (r *Reader) Next() (*Message, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.from == nil {
		// The first line must be a From_ line; an empty file has no
		// messages.
		line, err := r.readLine()
		if err == io.EOF {
			r.done = true
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if !isFromLine(line) {
			r.done = true
			return nil, ErrNotMbox
		}
		r.from, r.fromAt = line, 0
	}
	m := &Message{Offset: r.fromAt}
	fromLine := r.from
	var body []byte
	prevEmpty := false
	for {
		line, err := r.readLine()
		if err == io.EOF {
			r.done = true
			break
		}
		if err != nil {
			return nil, err
		}
		if isFromLine(line) && prevEmpty {
			r.from, r.fromAt = line, r.off-int64(len(line))
			break
		}
		prevEmpty = isEmptyLine(line)
		if q := bytes.TrimLeft(line, ">"); len(q) < len(line) && isFromLine(q) {
			line = line[1:] // mboxrd/mboxo quoting
		}
		body = append(body, line...)
	}
	// The empty line before the next From_ line (or at the end of the
	// file) belongs to the format.
	if prevEmpty {
		if bytes.HasSuffix(body, []byte("\r\n")) {
			body = body[:len(body)-2]
		} else {
			body = body[:len(body)-1]
		}
	}
	m.Date = fromDate(fromLine)
	m.Body, m.Flags = bookkeeping(body)
	if m.Date.IsZero() {
		if h, err := mail.ReadMessage(bytes.NewReader(m.Body)); err == nil {
			if d, err := h.Header.Date(); err == nil {
				m.Date = d
			}
		}
	}
	return m, nil
}

// fromDate reads the date of a From_ line: "From sender date", the date in
// asctime form (RFC 4155 2), sometimes with a zone after it.
func fromDate(line []byte) time.Time {
	s := strings.TrimRight(string(line), "\r\n")
	f := strings.Fields(s)
	// "From" sender Www Mmm dd hh:mm:ss yyyy [zone]
	for i := 2; i+5 <= len(f); i++ {
		cand := strings.Join(f[i:i+5], " ")
		if t, err := time.Parse("Mon Jan _2 15:04:05 2006", cand); err == nil {
			return t.UTC()
		}
		if t, err := time.Parse("Mon Jan 2 15:04:05 2006", cand); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// bookkeeping takes the mbox writer's header fields out of a message's
// header and turns them into flags.
func bookkeeping(msg []byte) ([]byte, []string) {
	var out []byte
	var status, xstatus, keywords string
	rest := msg
	skipping := false // inside a dropped field's continuation lines
	field := ""
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i+1], rest[i+1:]
		}
		if isEmptyLine(line) {
			out = append(out, line...)
			out = append(out, rest...)
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if skipping {
				if field == "x-keywords" {
					keywords += " " + strings.TrimSpace(string(line))
				}
				continue
			}
			out = append(out, line...)
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		skipping = false
		if ok {
			field = strings.ToLower(string(bytes.TrimSpace(name)))
			v := strings.TrimSpace(string(value))
			switch field {
			case "status":
				status, skipping = v, true
			case "x-status":
				xstatus, skipping = v, true
			case "x-keywords":
				keywords, skipping = v, true
			case "x-uid", "x-imap", "x-imapbase", "content-length":
				skipping = true
			}
		}
		if !skipping {
			out = append(out, line...)
		}
	}
	var flags []string
	if strings.ContainsRune(status, 'R') {
		flags = append(flags, `\Seen`)
	}
	for _, c := range []struct {
		letter rune
		flag   string
	}{{'A', `\Answered`}, {'F', `\Flagged`}, {'D', `\Deleted`}, {'T', `\Draft`}} {
		if strings.ContainsRune(xstatus, c.letter) {
			flags = append(flags, c.flag)
		}
	}
	for _, k := range strings.FieldsFunc(keywords, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		flags = append(flags, k)
	}
	return out, flags
}
