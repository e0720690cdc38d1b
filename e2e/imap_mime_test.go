package e2e

// A MIME message delivered over SMTP and read back over IMAP byte for
// byte: BODY[] is what the store holds (the sent octets after Posta's
// Return-Path and Received), sections and BINARY decode right, ENVELOPE
// decodes RFC 2047 words, BODYSTRUCTURE describes every part, SEARCH finds
// decoded text.

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"posta/internal/postatest"
)

func TestIMAPByteExact(t *testing.T) {
	in := postatest.Start(t)
	att := make([]byte, 3000)
	rand.NewChaCha8([32]byte{'p', 'o', 's', 't', 'a'}).Read(att)
	att[0], att[1] = 0, '\r' // a NUL and a bare CR in the attachment
	const (
		subject     = "Grüße aus Köln – Bericht Q3"
		fromName    = "Jürgen Müller"
		boundary    = "=_posta_42"
		part1Header = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
		part1Body   = "Hallo Bob,\r\n\r\nanbei die Zahlen. Gr=C3=BC=C3=9Fe aus K=C3=B6ln!\r\n"
		part1Text   = "Hallo Bob,\r\n\r\nanbei die Zahlen. Grüße aus Köln!\r\n"
		part2Header = "Content-Type: application/octet-stream; name=\"zahlen.bin\"\r\nContent-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"zahlen.bin\"\r\n"
	)
	part2Body := strings.TrimSuffix(imapB64Lines(att), "\r\n")
	sent := "From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <juergen@remote.test>\r\n" +
		"To: Bob <bob@example.test>\r\n" +
		"Subject: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(subject)) + "?=\r\n" +
		"Date: Tue, 04 Jun 2024 10:20:30 +0200\r\n" +
		"Message-ID: <bytes-1@remote.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n" +
		"\r\n" +
		"This is a multi-part message in MIME format.\r\n" +
		"--" + boundary + "\r\n" + part1Header + "\r\n" + part1Body +
		"\r\n--" + boundary + "\r\n" + part2Header + "\r\n" + part2Body +
		"\r\n--" + boundary + "--\r\n"
	stored := imapDeliver(t, in, imapBob, sent, 1)[0]
	if !bytes.HasSuffix(stored, []byte(sent)) {
		t.Fatalf("the store does not hold the sent octets as a suffix")
	}
	headerEnd := bytes.Index(stored, []byte("\r\n\r\n")) + 4

	c := dialIMAPClient(t, in, imapBob, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sec := func(spec imap.PartSpecifier, part ...int) *imap.FetchItemBodySection {
		return &imap.FetchItemBodySection{Specifier: spec, Part: part, Peek: true}
	}
	whole, header, text := sec(imap.PartSpecifierNone), sec(imap.PartSpecifierHeader), sec(imap.PartSpecifierText)
	p1, p1mime, p2, p2mime := sec(imap.PartSpecifierNone, 1), sec(imap.PartSpecifierMIME, 1), sec(imap.PartSpecifierNone, 2), sec(imap.PartSpecifierMIME, 2)
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 10}}
	bin1, bin2 := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}, &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Flags: true, RFC822Size: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:       []*imap.FetchItemBodySection{whole, header, text, p1, p1mime, p2, p2mime, partial},
		BinarySection:     []*imap.FetchItemBinarySection{bin1, bin2},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}, {Part: []int{2}}},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %d, %v", len(msgs), err)
	}
	m := msgs[0]

	// BODY[] is exactly what the store holds; RFC822.SIZE is its length.
	if got := m.FindBodySection(whole); !bytes.Equal(got, stored) {
		t.Errorf("BODY[]: %d octets, stored %d", len(got), len(stored))
	}
	if m.RFC822Size != int64(len(stored)) {
		t.Errorf("RFC822.SIZE %d, BODY[] has %d octets", m.RFC822Size, len(stored))
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"BODY[HEADER]", m.FindBodySection(header), string(stored[:headerEnd])},
		{"BODY[TEXT]", m.FindBodySection(text), string(stored[headerEnd:])},
		{"BODY[1]", m.FindBodySection(p1), part1Body},
		{"BODY[1.MIME]", m.FindBodySection(p1mime), part1Header + "\r\n"},
		{"BODY[2]", m.FindBodySection(p2), part2Body},
		{"BODY[2.MIME]", m.FindBodySection(p2mime), part2Header + "\r\n"},
		{"BODY[]<0.10>", m.FindBodySection(partial), string(stored[:10])},
		{"BINARY[1]", m.FindBinarySection(bin1), part1Text},
		{"BINARY[2]", m.FindBinarySection(bin2), string(att)},
	} {
		if string(c.got) != c.want {
			t.Errorf("%s: %d octets %q..., want %d octets %q...", c.name, len(c.got), c.got[:min(len(c.got), 40)], len(c.want), c.want[:min(len(c.want), 40)])
		}
	}
	if n, ok := m.FindBinarySectionSize([]int{2}); !ok || n != uint32(len(att)) {
		t.Errorf("BINARY.SIZE[2] %d %v, want %d", n, ok, len(att))
	}
	if n, ok := m.FindBinarySectionSize([]int{1}); !ok || n != uint32(len(part1Text)) {
		t.Errorf("BINARY.SIZE[1] %d %v, want %d", n, ok, len(part1Text))
	}

	// ENVELOPE, decoded by the client (RFC 2047).
	env := m.Envelope
	if env == nil || env.Subject != subject || len(env.From) != 1 || env.From[0].Name != fromName || env.From[0].Addr() != "juergen@remote.test" ||
		len(env.To) != 1 || env.To[0].Name != "Bob" || env.To[0].Addr() != imapBob || env.MessageID != "bytes-1@remote.test" ||
		!env.Date.Equal(time.Date(2024, 6, 4, 8, 20, 30, 0, time.UTC)) || len(env.Sender) != 1 || env.Sender[0].Addr() != "juergen@remote.test" {
		t.Errorf("ENVELOPE: %+v", env)
	}

	// BODYSTRUCTURE: types, parameters, encodings, sizes, lines.
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || !strings.EqualFold(mp.Subtype, "mixed") || len(mp.Children) != 2 || mp.Extended == nil || mp.Extended.Params["boundary"] != boundary {
		t.Fatalf("BODYSTRUCTURE: %#v", m.BodyStructure)
	}
	t1, ok1 := mp.Children[0].(*imap.BodyStructureSinglePart)
	t2, ok2 := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !ok1 || !strings.EqualFold(t1.Type, "text") || !strings.EqualFold(t1.Subtype, "plain") || !strings.EqualFold(t1.Params["charset"], "utf-8") ||
		!strings.EqualFold(t1.Encoding, "quoted-printable") || t1.Size != uint32(len(part1Body)) || t1.Text == nil || t1.Text.NumLines != 3 {
		t.Errorf("part 1: %#v (text %+v)", mp.Children[0], t1.Text)
	}
	if !ok2 || !strings.EqualFold(t2.Type, "application") || !strings.EqualFold(t2.Subtype, "octet-stream") || t2.Params["name"] != "zahlen.bin" ||
		!strings.EqualFold(t2.Encoding, "base64") || t2.Size != uint32(len(part2Body)) || t2.Extended == nil || t2.Extended.Disposition == nil ||
		!strings.EqualFold(t2.Extended.Disposition.Value, "attachment") || t2.Extended.Disposition.Params["filename"] != "zahlen.bin" {
		t.Errorf("part 2: %#v", mp.Children[1])
	}

	// \Seen: none of the PEEKs set it; BODY[] does, and says so.
	if len(m.Flags) != 0 {
		t.Errorf("flags after BODY.PEEK: %v", m.Flags)
	}
	r := rawIMAPLogin(t, in, imapBob)
	if st := imapStatus(t, r, "INBOX", "UNSEEN"); st["UNSEEN"] != 1 {
		t.Errorf("UNSEEN after PEEKs: %v", st)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].FindBodySection(&imap.FetchItemBodySection{}), stored) ||
		!slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("FETCH BODY[]: %v flags %v", err, msgs)
	}
	if st := imapStatus(t, r, "INBOX", "UNSEEN"); st["UNSEEN"] != 0 {
		t.Errorf("UNSEEN after BODY[]: %v", st)
	}

	// SEARCH by decoded text (RFC 9051 6.4.4), CHARSET UTF-8 literals.
	r.ok("EXAMINE INBOX")
	for _, c := range []struct{ key, value string }{
		{"SUBJECT", "Köln"}, {"SUBJECT", "grüße aus köln"}, {"SUBJECT", "bericht q3"},
		{"FROM", "Müller"}, {"FROM", "juergen@remote.test"}, {"TO", "bob"},
		{"BODY", "Grüße aus Köln"}, {"TEXT", "Jürgen"}, {"TEXT", "anbei"},
	} {
		if got := imapSeqs(t, r.ok("SEARCH CHARSET UTF-8 %s %s", c.key, imapLiteral(c.value))); !slices.Equal(got, []uint32{1}) {
			t.Errorf("SEARCH %s %q: %v, want [1]", c.key, c.value, got)
		}
	}
	if got := imapSeqs(t, r.ok("SEARCH CHARSET UTF-8 BODY %s", imapLiteral("Jürgen"))); len(got) != 0 {
		t.Errorf("SEARCH BODY Jürgen (only in a header): %v", got)
	}
	// imapclient after ENABLE IMAP4rev2 (UTF-8 quoted strings allowed).
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "köln"}}}, nil).Wait()
	if err != nil || len(sd.AllUIDs()) != 1 {
		t.Errorf("imapclient SEARCH HEADER Subject köln: %+v %v", sd, err)
	}
}
