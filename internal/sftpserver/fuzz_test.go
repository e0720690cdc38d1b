package sftpserver

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/crypto/ssh"

	"posta/internal/files"
)

// FuzzParseKeyLine: whatever line `posta user key add` is given, parsing
// does not panic, an accepted key is of an allowed type, its comment is
// printable and bounded, and the stored form parses back to the same key.
func FuzzParseKeyLine(f *testing.F) {
	for _, s := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ2bVQ3mV+BZGcFXbHfzp6Jp+M7YUxAMZqN5kz0XtDl user@host",
		`restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ2bVQ3mV+BZGcFXbHfzp6Jp+M7YUxAMZqN5kz0XtDl`,
		`from="1.2.3.4",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ2bVQ3mV+BZGcFXbHfzp6Jp+M7YUxAMZqN5kz0XtDl`,
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x",
		"ssh-dss AAAAB3NzaC1kc3MAAACBAP",
		"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= c",
		"", "\n\n", "# comment only", `command="x y" `,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		key, comment, err := ParseKeyLine(line)
		if err != nil {
			return
		}
		switch key.Type() {
		case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoRSA:
		default:
			t.Fatalf("accepted key type %s", key.Type())
		}
		if len(comment) > maxComment || strings.ContainsFunc(comment, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("comment %q", comment)
		}
		again, c2, err := ParseKeyLine(keyLine(key, comment))
		if err != nil || string(again.Marshal()) != string(key.Marshal()) || c2 != strings.TrimSpace(comment) {
			t.Fatalf("stored form %q does not parse back: %v", keyLine(key, comment), err)
		}
	})
}

// FuzzFramer: the packet counter agrees with a straightforward parse of
// the same stream, however it is cut into reads.
func FuzzFramer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 5, 6}, uint8(1))
	f.Add([]byte{0, 0, 0, 5, 1, 2}, uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		// The reference: walk length prefixes.
		want, long := 0, false
		for b := stream; ; {
			if len(b) < 4 {
				break
			}
			n := binary.BigEndian.Uint32(b)
			if n > maxPacket {
				long = true
				break
			}
			if uint64(len(b)-4) < uint64(n) {
				break
			}
			b = b[4+n:]
			want++
		}
		var fr framer
		got := 0
		s := max(1, int(step))
		for i := 0; i < len(stream); i += s {
			k, err := fr.feed(stream[i:min(i+s, len(stream))])
			got += k
			if err != nil {
				if !long {
					t.Fatalf("error %v on a stream without a long packet", err)
				}
				if got != want {
					t.Fatalf("%d packets before the long one; want %d", got, want)
				}
				return
			}
		}
		if long || got != want {
			t.Fatalf("counted %d (long %v); want %d", got, long, want)
		}
	})
}

// FuzzUploadWrites drives an upload with writes at arbitrary offsets, in
// any order: either the upload fails (a write overlapped one already
// accepted) and leaves no file, or the file holds every write at its offset
// with zeros in the gaps (draft-ietf-secsh-filexfer-02 6.4).
func FuzzUploadWrites(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 10, 10})            // in order
	f.Add([]byte{0, 20, 10, 0, 0, 10, 0, 10, 10}) // reversed
	f.Add([]byte{0, 50, 1})                       // a hole
	f.Add([]byte{0, 0, 10, 0, 5, 10})             // overlap
	f.Add([]byte{0, 30, 10, 0, 35, 10, 0, 0, 30}) // overlap while held
	dir := f.TempDir()
	store, err := files.Open(files.Options{Dir: dir})
	if err != nil {
		f.Fatal(err)
	}
	tree, err := store.Tree(context.Background(), files.Account{Address: "fuzz@example.test"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tree.Close() })
	s := &Server{lim: DefaultLimits(), log: slog.New(slog.DiscardHandler)}
	c := &conn{s: s, account: "fuzz@example.test"}
	f.Fuzz(func(t *testing.T, script []byte) {
		tree.Remove("/f")
		h := newHandlers(c, tree)
		up, err := tree.Create("/f", files.Replace, 0)
		if err != nil {
			t.Fatal(err)
		}
		w := &upload{h: h, up: up, path: "/f", kind: kindReplace}
		h.takeHandle()
		c.fileOpened()
		var model []byte
		var mask []bool
		overlap := false
		for i := 0; i+3 <= len(script) && i < 60; i += 3 {
			off := int64(binary.BigEndian.Uint16(script[i:]))
			n := int(script[i+2])
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(i + j + 1)
			}
			_, werr := w.WriteAt(data, off)
			for j := 0; j < n; j++ {
				p := int(off) + j
				for len(model) <= p {
					model, mask = append(model, 0), append(mask, false)
				}
				if mask[p] {
					overlap = true
				}
			}
			if !overlap {
				if werr != nil {
					t.Fatalf("write %d at %d refused: %v", n, off, werr)
				}
				for j := 0; j < n; j++ {
					model[int(off)+j], mask[int(off)+j] = data[j], true
				}
			}
			if overlap && werr == nil && w.err == nil {
				t.Fatalf("overlapping write at %d accepted", off)
			}
			if overlap {
				break
			}
		}
		cerr := w.Close()
		got, rerr := os.ReadFile(filepath.Join(dir, "fuzz@example.test", "f"))
		if overlap {
			if cerr == nil || rerr == nil {
				t.Fatalf("after a refused write: close %v, file %q", cerr, got)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("close: %v", cerr)
		}
		if rerr != nil || string(got) != string(model) {
			t.Fatalf("file %q (%v); want %q", got, rerr, model)
		}
		if h.reorder != 0 || h.handles != 0 {
			t.Fatalf("budget %d, handles %d left", h.reorder, h.handles)
		}
	})
}
