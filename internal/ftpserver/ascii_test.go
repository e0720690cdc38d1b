package ftpserver

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestASCIIConversion(t *testing.T) {
	for _, tc := range []struct{ disk, wire string }{
		{"", ""},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\r\nb", "a\r\nb"},           // already CRLF: unchanged
		{"lone\rcr\n", "lone\rcr\r\n"}, // a lone CR stays
		{"\n\n", "\r\n\r\n"},
		{"end", "end"},
	} {
		got, _ := io.ReadAll(newToWire(strings.NewReader(tc.disk)))
		if string(got) != tc.wire {
			t.Errorf("toWire(%q) = %q, want %q", tc.disk, got, tc.wire)
		}
		if n, _ := wireSize(strings.NewReader(tc.disk)); n != int64(len(tc.wire)) {
			t.Errorf("wireSize(%q) = %d", tc.disk, n)
		}
	}
	for _, tc := range []struct{ wire, disk string }{
		{"a\r\nb\r\n", "a\nb\n"},
		{"a\rb", "a\rb"},
		{"a\r", "a\r"},
		{"\r\r\n", "\r\n"},
		{"bare\nlf", "bare\nlf"},
	} {
		for _, chunk := range []int{1, 2, 1 << 20} {
			got, _ := io.ReadAll(newFromWire(&chunked{strings.NewReader(tc.wire), chunk}))
			if string(got) != tc.disk {
				t.Errorf("fromWire(%q) in chunks of %d = %q, want %q", tc.wire, chunk, got, tc.disk)
			}
		}
	}
	// A 1 MB text survives both ways.
	text := bytes.Repeat([]byte("some text line\n"), 70000)
	wire, _ := io.ReadAll(newToWire(bytes.NewReader(text)))
	back, _ := io.ReadAll(newFromWire(bytes.NewReader(wire)))
	if !bytes.Equal(back, text) {
		t.Fatal("round trip differs")
	}
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}
