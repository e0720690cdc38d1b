package message

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func benchMessages(b *testing.B) map[string][]byte {
	b.Helper()
	typical, err := os.ReadFile("testdata/mime/023-dmarc-outlook.eml") // 9 KiB, three levels of multipart
	if err != nil {
		b.Fatal(err)
	}
	small, err := os.ReadFile("testdata/mime/001-rfc5322-a1-simple.eml")
	if err != nil {
		b.Fatal(err)
	}
	big, err := io.ReadAll(newHugeReader(1 << 20))
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]byte{"small": small, "typical-9KiB": typical, "attachment-1MiB": big}
}

// BenchmarkParse measures Parse, which runs once per delivered message.
func BenchmarkParse(b *testing.B) {
	msgs := benchMessages(b)
	for _, name := range []string{"small", "typical-9KiB", "attachment-1MiB"} {
		raw := msgs[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			r := bytes.NewReader(raw)
			for b.Loop() {
				r.Reset(raw)
				if _, err := Parse(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnmarshal measures decoding the stored structure, which FETCH does per message.
func BenchmarkUnmarshal(b *testing.B) {
	m, err := Parse(bytes.NewReader(benchMessages(b)["typical-9KiB"]))
	if err != nil {
		b.Fatal(err)
	}
	blob, err := m.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(blob)), "blob-bytes")
	b.ReportAllocs()
	for b.Loop() {
		var back Message
		if err := back.UnmarshalBinary(blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender measures rendering BODYSTRUCTURE and ENVELOPE from a decoded structure.
func BenchmarkRender(b *testing.B) {
	m, err := Parse(bytes.NewReader(benchMessages(b)["typical-9KiB"]))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.IMAPBodyStructure(true)
		_ = m.IMAPEnvelope()
	}
}
