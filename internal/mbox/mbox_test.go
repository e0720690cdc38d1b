package mbox

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, in string) []*Message {
	t.Helper()
	r := NewReader(strings.NewReader(in))
	var out []*Message
	for {
		m, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

const sample = "From alice@example.test Thu Nov 26 07:53:00 2026\n" +
	"From: alice@example.test\n" +
	"Status: RO\n" +
	"X-Status: AF\n" +
	"X-Keywords: $Label1 work\n" +
	"X-UID: 7\n" +
	"Subject: one\n" +
	"\n" +
	"first\n" +
	">From the quoted line\n" +
	">>From twice quoted\n" +
	"From inside a paragraph is not a separator\n" +
	"\n" +
	"From bob@example.test  Fri Nov 27 01:02:03 2026\n" +
	"From: bob@example.test\n" +
	"Date: Fri, 27 Nov 2026 01:02:03 +0000\n" +
	"Subject: two\n" +
	"\n" +
	"second\n" +
	"\n" +
	"\n"

func TestReader(t *testing.T) {
	ms := readAll(t, sample)
	if len(ms) != 2 {
		t.Fatalf("%d messages, want 2", len(ms))
	}
	want0 := "From: alice@example.test\nSubject: one\n\nfirst\nFrom the quoted line\n>From twice quoted\n" +
		"From inside a paragraph is not a separator\n"
	if string(ms[0].Body) != want0 {
		t.Errorf("message 1 body\n%q\nwant\n%q", ms[0].Body, want0)
	}
	if want := []string{`\Seen`, `\Answered`, `\Flagged`, "$Label1", "work"}; !reflect.DeepEqual(ms[0].Flags, want) {
		t.Errorf("message 1 flags %v, want %v", ms[0].Flags, want)
	}
	if want := time.Date(2026, 11, 26, 7, 53, 0, 0, time.UTC); !ms[0].Date.Equal(want) {
		t.Errorf("message 1 date %v, want %v", ms[0].Date, want)
	}
	// The last message keeps its own empty line; the writer's is dropped.
	if want := "From: bob@example.test\nDate: Fri, 27 Nov 2026 01:02:03 +0000\nSubject: two\n\nsecond\n\n"; string(ms[1].Body) != want {
		t.Errorf("message 2 body %q, want %q", ms[1].Body, want)
	}
	if want := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC); !ms[1].Date.Equal(want) || len(ms[1].Flags) != 0 {
		t.Errorf("message 2 date %v flags %v", ms[1].Date, ms[1].Flags)
	}
	if ms[1].Offset != int64(strings.Index(sample, "From bob")) {
		t.Errorf("message 2 offset %d", ms[1].Offset)
	}
}

func TestReaderCRLFAndNoDate(t *testing.T) {
	in := "From MAILER-DAEMON somewhere\r\nSubject: x\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\n\r\nbody\r\n\r\n"
	ms := readAll(t, in)
	if len(ms) != 1 || string(ms[0].Body) != "Subject: x\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\n\r\nbody\r\n" {
		t.Fatalf("got %d messages: %+v", len(ms), ms)
	}
	if !ms[0].Date.Equal(time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC)) {
		t.Errorf("date from the Date field: %v", ms[0].Date)
	}
}

func TestReaderRefusesOtherFiles(t *testing.T) {
	if _, err := NewReader(strings.NewReader("Subject: not an mbox\n\n")).Next(); !errors.Is(err, ErrNotMbox) {
		t.Fatalf("err %v, want ErrNotMbox", err)
	}
	if _, err := NewReader(strings.NewReader("")).Next(); err != io.EOF {
		t.Fatalf("empty file: %v, want io.EOF", err)
	}
	long := "From x Thu Nov 26 07:53:00 2026\n" + strings.Repeat("a", MaxLine+1) + "\n"
	if _, err := NewReader(strings.NewReader(long)).Next(); err == nil || err == io.EOF {
		t.Fatalf("overlong line: %v", err)
	}
}

// FuzzReader: any input splits without panic, and every message's body is
// no longer than the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("From a\n\nFrom b\n"))
	f.Add([]byte("From a\r\nStatus: R\r\n X-cont\r\n\r\n>From\r\n"))
	f.Add([]byte("From \nX-Keywords: a,\n\tb\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		for i := 0; i < len(in)+1; i++ {
			m, err := r.Next()
			if err != nil {
				return
			}
			if len(m.Body) > len(in) || m.Offset < 0 || m.Offset > int64(len(in)) {
				t.Fatalf("message %d: body %d octets, offset %d, input %d", i, len(m.Body), m.Offset, len(in))
			}
		}
		t.Fatal("more messages than input octets")
	})
}
