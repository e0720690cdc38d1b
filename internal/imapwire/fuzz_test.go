package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime/metrics"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzLimits are small, so that the fuzzer reaches them.
var fuzzLimits = Limits{MaxLine: 4096, MaxCommand: 16 << 10, MaxLiteral: 8 << 10, MaxAppend: 64 << 10,
	MaxArgs: 200, MaxDepth: 16, MaxSkip: 64 << 10}

// allocBound is what one ReadCommand (or NextMessage plus reading its body) may allocate under
// fuzzLimits: a multiple of MaxCommand and MaxAppend, never of a size the input announces.
const allocBound = 32*(16<<10) + 2*(64<<10) + 64<<10

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func allocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

type fuzzMessage struct {
	m    *AppendMessage
	body []byte
}

// FuzzReadCommand feeds arbitrary bytes to a Decoder (modes from the second argument, bufio
// buffers from 16 octets up so tokens straddle refills): it must not panic, must stay within
// allocBound per command, and every command it returns must come back equal from its String().
func FuzzReadCommand(f *testing.F) {
	for _, s := range seedChunks(f) {
		f.Add(s, uint8(0))
		f.Add(s, uint8(0x1b))
	}
	for _, tc := range decodeTests {
		f.Add([]byte(tc.in+"\r\n"), uint8(0))
	}
	for _, tc := range syntaxErrorTests {
		f.Add([]byte(tc.in+"z NOOP\r\n"), uint8(1))
	}
	f.Add([]byte("a LOGIN {99999999999}\r\nb NOOP\r\n"), uint8(1))
	f.Add([]byte("a APPEND INBOX (\\Seen) \"01-Jan-2020 10:00:00 +0100\" ~{3+}\r\na\x00b UTF8 (~{2+}\r\nxy)\r\n"), uint8(1))
	f.Add([]byte("a IDLE\r\nDONE\r\nb AUTHENTICATE PLAIN\r\n=\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		d := fuzzDecoder(data, mode)
		for i := range 1000 {
			before := allocated()
			c, err := d.ReadCommand()
			if err != nil {
				var se *SyntaxError
				if errors.As(err, &se) && !se.Fatal {
					if se.Status != BAD && se.Status != NO || se.Msg == "" {
						t.Fatalf("bad SyntaxError %+v", se)
					}
					continue
				}
				return
			}
			if c.Tag == "" || c.Name == "" {
				t.Fatalf("command without tag or name: %#v", c)
			}
			msgs := drainCommand(t, d, c)
			if a := allocated() - before; a > allocBound {
				// The counter is process-wide, and the fuzzing engine allocates beside us:
				// measure again on fresh decoders and fail only if every run is over.
				if a = remeasure(t, data, mode, i); a > allocBound {
					t.Fatalf("%s allocated %d bytes", c.Name, a)
				}
			}
			if c.Name == "APPEND" {
				if len(msgs) > 0 {
					checkAppendRoundTrip(t, c, msgs)
				}
				continue
			}
			checkRoundTrip(t, "fuzz", c)
		}
	})
}

// remeasure decodes data again up to its nth command three times and returns the least that
// command allocated.
func remeasure(t *testing.T, data []byte, mode uint8, nth int) uint64 {
	least := ^uint64(0)
	for range 3 {
		d := fuzzDecoder(data, mode)
		for i := 0; i <= nth; i++ {
			before := allocated()
			c, err := d.ReadCommand()
			if err == nil {
				drainCommand(t, d, c)
			}
			if i == nth {
				least = min(least, allocated()-before)
			}
		}
	}
	return least
}

// drainCommand reads what follows a command on the wire (APPEND messages, IDLE's DONE, a SASL
// response) and returns the APPEND messages.
func drainCommand(t *testing.T, d *Decoder, c *Command) []fuzzMessage {
	var msgs []fuzzMessage
	switch {
	case c.Name == "APPEND":
		for {
			m, err := d.NextMessage()
			if err != nil || m == nil {
				break
			}
			body, err := io.ReadAll(io.LimitReader(m.Body, fuzzLimits.MaxAppend+1))
			if err != nil {
				break
			}
			if int64(len(body)) != m.Size {
				t.Fatalf("APPEND body %d octets, announced %d", len(body), m.Size)
			}
			msgs = append(msgs, fuzzMessage{m, body})
		}
	case c.Name == "IDLE":
		d.ReadDone()
	case c.Name == "AUTHENTICATE" && c.Auth.Initial == nil:
		d.ReadSASLResponse()
	}
	return msgs
}

func fuzzDecoder(data []byte, mode uint8) *Decoder {
	var opts []Option
	if mode&1 != 0 {
		opts = append(opts, WithLiteralPlus())
	}
	if mode&2 != 0 {
		opts = append(opts, WithUTF8())
	}
	if mode&4 != 0 {
		n := 0
		opts = append(opts, WithContinue(func(LiteralInfo) error {
			n++
			if n%3 == 0 {
				return errors.New("refused")
			}
			return nil
		}))
	}
	return NewDecoder(bufio.NewReaderSize(bytes.NewReader(data), 16+int(mode>>3)*64), fuzzLimits, opts...)
}

// checkAppendRoundTrip re-renders an APPEND with its messages and decodes it again.
func checkAppendRoundTrip(t *testing.T, c *Command, msgs []fuzzMessage) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(c.String())
	for _, m := range msgs {
		b.WriteString(" " + m.m.String() + "\r\n")
		b.Write(m.body)
		if m.m.UTF8 {
			b.WriteByte(')')
		}
	}
	b.WriteString("\r\n")
	opts := []Option{WithLiteralPlus()}
	if c.UTF8 {
		opts = append(opts, WithUTF8())
	}
	d := NewDecoder(bufio.NewReader(&b), Limits{}, opts...)
	again, err := d.ReadCommand()
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Fatalf("APPEND %q: got %#v, %v", c.String(), again, err)
	}
	for i := 0; ; i++ {
		m, err := d.NextMessage()
		if err != nil {
			t.Fatalf("APPEND message %d: %v", i, err)
		}
		if m == nil {
			if i != len(msgs) {
				t.Fatalf("APPEND: %d messages, want %d", i, len(msgs))
			}
			return
		}
		body, _ := io.ReadAll(m.Body)
		w := msgs[i]
		if !slices.Equal(m.Flags, w.m.Flags) || !m.Date.Equal(w.m.Date) || m.Size != w.m.Size || m.Binary != w.m.Binary ||
			m.UTF8 != w.m.UTF8 || !bytes.Equal(body, w.body) {
			t.Fatalf("APPEND message %d: got %+v %q, want %+v %q", i, m, body, w.m, w.body)
		}
	}
}

// FuzzSeqSet checks ParseSeqSet against its own String and the expansion helpers against
// Contains.
func FuzzSeqSet(f *testing.F) {
	for _, s := range []string{"1", "2,4:7,9,12:*", "*:4,5:7", "1:4294967295", "$", "1:3,$", "3291:*", "5:1,1:5,7", "*", "1,3:5,4:9,20:*,*:30"} {
		f.Add(s, uint8(10))
	}
	f.Fuzz(func(t *testing.T, s string, count uint8) {
		set, err := ParseSeqSet(s)
		if err != nil {
			return
		}
		again, err := ParseSeqSet(set.String())
		if err != nil || !reflect.DeepEqual(again, set) {
			t.Fatalf("%q -> %q -> %v, %v", s, set, again, err)
		}
		// Normalised: numeric ranges ascending, disjoint and not adjacent, before those with "*".
		var last uint64
		star := false
		for _, r := range set.Ranges {
			if r.Start == Star || r.Stop == Star {
				star = true
				continue
			}
			if star || r.Start > r.Stop || last != 0 && uint64(r.Start) <= last+1 {
				t.Fatalf("%q: not normalised: %v", s, set.Ranges)
			}
			last = uint64(r.Stop)
		}
		n := uint32(count)
		var want []uint32
		for i := uint32(1); i <= n; i++ {
			if set.Contains(i, n) {
				want = append(want, i)
			}
		}
		if got := slices.Collect(set.Seqs(n)); !slices.Equal(got, want) {
			t.Fatalf("%q in %d: Seqs %v, Contains %v", s, n, got, want)
		}
		uids := []uint32{1, 2, 7, 100, 3291, 65536, 4294967295}[:count%8]
		want = want[:0]
		for _, u := range uids {
			if set.Contains(u, uids[len(uids)-1]) {
				want = append(want, u)
			}
		}
		var got []uint32
		for _, u := range set.MatchUIDs(uids) {
			got = append(got, u)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q on %v: MatchUIDs %v, Contains %v", s, uids, got, want)
		}
	})
}

// FuzzUTF7 checks that DecodeUTF7 accepts only the canonical form (so encoding what it decodes
// gives the input back) and that every UTF-8 string survives EncodeUTF7 and DecodeUTF7.
func FuzzUTF7(f *testing.F) {
	for _, s := range []string{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "&-", "R&-D", "&2D3eAA-", "&AGE-", "&Jjo-&-&Jjo-", "Entwürfe", "a\tb", "&U,BTFw-&ZeVnLIqe-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if dec, err := DecodeUTF7(s); err == nil {
			if enc := EncodeUTF7(dec); enc != s {
				t.Fatalf("DecodeUTF7(%q) = %q, which encodes to %q", s, dec, enc)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := EncodeUTF7(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("EncodeUTF7(%q) = %q: not printable ASCII", s, enc)
			}
		}
		if dec, err := DecodeUTF7(enc); err != nil || dec != s {
			t.Fatalf("%q -> %q -> %q, %v", s, enc, dec, err)
		}
	})
}
