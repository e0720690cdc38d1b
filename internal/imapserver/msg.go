package imapserver

import (
	"context"
	"errors"
	"fmt"
	"io"

	"posta/internal/mailstore"
	"posta/internal/message"
)

// msgStore is what a msg needs from the mail store (mailstore.Store implements it; tests use a fake).
type msgStore interface {
	Message(ctx context.Context, mailbox int64, uid uint32) (mailstore.Message, error)
	OpenBody(ctx context.Context, ref mailstore.BodyRef) (mailstore.Body, error)
}

// msg is one message as FETCH and SEARCH see it: metadata at hand, structure and body loaded on first use.
// FLAGS, UID, INTERNALDATE, RFC822.SIZE, MODSEQ and the flag, size, date and UID search keys need only Meta, so
// a FETCH FLAGS over a large mailbox never touches the store row or the body. A msg is used by one goroutine
// and must be closed.
type msg struct {
	Seq  uint32
	Meta mailstore.MessageMeta

	st      msgStore
	mailbox int64

	stored  *mailstore.Message // the store row, once read
	msgErr  error
	parsedM *message.Message
	bodyR   mailstore.Body
	bodyErr error
	hdr     []byte // top-level header bytes, once read
	hdrRead bool

	hdrText   string // the header as SEARCH TEXT matches it, once built
	hdrTextOK bool

	// texts caches the searchable text of the body (folded for case-insensitive matching), filled part by part as
	// SEARCH asks, so several BODY/TEXT keys read and decode each part once and a match stops the reading early.
	texts    []string
	textNext []searchTextUnit // units still to turn into texts, in order
	textInit bool
}

func newMsg(st msgStore, mailbox int64, seq uint32, meta mailstore.MessageMeta) *msg {
	return &msg{Seq: seq, Meta: meta, st: st, mailbox: mailbox}
}

// row reads the message's store row once: its body reference and stored structure.
func (m *msg) row(ctx context.Context) (*mailstore.Message, error) {
	if m.stored == nil && m.msgErr == nil {
		sm, err := m.st.Message(ctx, m.mailbox, m.Meta.UID)
		if err != nil {
			// mailstore.ErrNoMessage stays visible to errors.Is: the message was expunged meanwhile.
			m.msgErr = fmt.Errorf("imapserver: message UID %d: %w", m.Meta.UID, err)
		} else {
			m.stored = &sm
		}
	}
	return m.stored, m.msgErr
}

// parsed returns the message structure computed at delivery, decoding the stored form once.
func (m *msg) parsed(ctx context.Context) (*message.Message, error) {
	if m.parsedM != nil {
		return m.parsedM, nil
	}
	sm, err := m.row(ctx)
	if err != nil {
		return nil, err
	}
	pm := new(message.Message)
	if err := pm.UnmarshalBinary(sm.Structure); err != nil {
		return nil, fmt.Errorf("imapserver: structure of UID %d: %w", m.Meta.UID, err)
	}
	if pm.Root == nil {
		return nil, fmt.Errorf("imapserver: structure of UID %d: %w", m.Meta.UID, message.ErrBadEncoding)
	}
	m.parsedM = pm
	return pm, nil
}

// body opens the message body once; Close closes it.
func (m *msg) body(ctx context.Context) (mailstore.Body, error) {
	if m.bodyR != nil || m.bodyErr != nil {
		return m.bodyR, m.bodyErr
	}
	sm, err := m.row(ctx)
	if err != nil {
		return nil, err
	}
	b, err := m.st.OpenBody(ctx, sm.Body)
	if err != nil {
		m.bodyErr = fmt.Errorf("imapserver: body of UID %d: %w", m.Meta.UID, err)
		return nil, m.bodyErr
	}
	m.bodyR = b
	return b, nil
}

// readSpan reads [start, end) of the body into memory; callers use it for headers and single parts only.
func (m *msg) readSpan(ctx context.Context, start, end int64) ([]byte, error) {
	if end <= start {
		return nil, nil
	}
	b, err := m.body(ctx)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, end-start)
	n, err := b.ReadAt(buf, start)
	if n == len(buf) {
		// io.ReaderAt may report io.EOF together with the last octets.
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("imapserver: body of UID %d, octets %d-%d: %w", m.Meta.UID, start, end, err)
}

// header returns the top-level header block (BODY[HEADER] without the need for a FETCH), read once.
func (m *msg) header(ctx context.Context) (message.Header, error) {
	if m.hdrRead {
		return m.hdr, nil
	}
	pm, err := m.parsed(ctx)
	if err != nil {
		return nil, err
	}
	h, err := m.readSpan(ctx, pm.Root.HeaderStart, pm.Root.BodyStart)
	if err != nil {
		return nil, err
	}
	m.hdr, m.hdrRead = h, true
	return h, nil
}

// Close closes an opened body. The msg must not be used afterwards.
func (m *msg) Close() error {
	b := m.bodyR
	m.bodyR, m.bodyErr = nil, errors.New("imapserver: msg closed")
	m.texts, m.textNext = nil, nil
	if b == nil {
		return nil
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("imapserver: close body of UID %d: %w", m.Meta.UID, err)
	}
	return nil
}
