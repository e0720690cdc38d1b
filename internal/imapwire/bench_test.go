package imapwire

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

func benchDecode(b *testing.B, line string) {
	in := []byte(line)
	src := bytes.NewReader(in)
	br := bufio.NewReader(src)
	d := NewDecoder(br, Limits{})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		d.Reset(br)
		if _, err := d.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeUIDFetch: Thunderbird's header fetch.
func BenchmarkDecodeUIDFetch(b *testing.B) {
	benchDecode(b, "8 UID fetch 4327:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n")
}

// BenchmarkDecodeSearch: a mixed search program.
func BenchmarkDecodeSearch(b *testing.B) {
	benchDecode(b, "A282 UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 UNDELETED SINCE 1-Feb-1994 OR FROM \"Smith\" (TO smith@example.com SUBJECT {5+}\r\nlunch) NOT UID 1:100,200:*\r\n")
}

// BenchmarkEncodeFetch: one FETCH response with FLAGS, UID, RFC822.SIZE and a pre-rendered
// ENVELOPE, as the server writes for each message of a header sync.
func BenchmarkEncodeFetch(b *testing.B) {
	envelope := []byte(`("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "<B27397-0100000@cac.washington.edu>")`)
	var sink bytes.Buffer
	w := bufio.NewWriterSize(&sink, 64<<10)
	e := NewEncoder(w)
	flags := []string{`\Seen`, `\Answered`, `$Forwarded`}
	date := time.Date(1996, 7, 17, 2, 44, 25, 0, time.UTC)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		fw := e.Fetch(uint32(n%50000 + 1))
		fw.UID(uint32(4827313 + n))
		fw.Flags(flags...)
		fw.RFC822Size(4286)
		fw.InternalDate(date)
		fw.Envelope(envelope)
		if err := fw.Close(); err != nil {
			b.Fatal(err)
		}
		n++
		if sink.Len() > 1<<20 {
			w.Flush()
			sink.Reset()
		}
	}
}
