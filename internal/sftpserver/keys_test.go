package sftpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/directory"
	"posta/internal/files"
)

func TestKeyFunctions(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	_, line := newClientKey(t)
	k, err := AddKey(ctx, e.db, alice, "  "+line+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if k.Type != "ssh-ed25519" || !strings.HasPrefix(k.Fingerprint, "SHA256:") || k.Comment != "test@key" ||
		k.Line != line {
		t.Fatalf("added %+v", k)
	}
	if _, err := AddKey(ctx, e.db, alice, line); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := AddKey(ctx, e.db, bob, line); err != nil {
		t.Fatalf("the same key for another account: %v", err)
	}
	if _, err := AddKey(ctx, e.db, "carol@example.test", line); !errors.Is(err, directory.ErrNoSuchAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := AddKey(ctx, e.db, "not an address", line); !errors.Is(err, directory.ErrBadAddress) {
		t.Fatalf("bad address: %v", err)
	}
	_, second := newClientKey(t)
	if _, err := AddKey(ctx, e.db, alice, `restrict,no-pty `+second); err != nil {
		t.Fatalf("harmless options: %v", err)
	}
	keys, err := ListKeys(ctx, e.db, "ALICE@example.test")
	if err != nil || len(keys) != 2 || keys[0].Fingerprint != k.Fingerprint {
		t.Fatalf("list: %+v, %v", keys, err)
	}
	if err := DeleteKey(ctx, e.db, alice, k.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if err := DeleteKey(ctx, e.db, alice, second); err != nil {
		t.Fatalf("delete by line: %v", err)
	}
	if err := DeleteKey(ctx, e.db, alice, k.Fingerprint); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("delete again: %v", err)
	}
	if keys, _ := ListKeys(ctx, e.db, alice); len(keys) != 0 {
		t.Fatalf("left: %+v", keys)
	}
	if keys, _ := ListKeys(ctx, e.db, bob); len(keys) != 1 {
		t.Fatalf("bob's key went too: %+v", keys)
	}
}

func TestParseKeyLineRefuses(t *testing.T) {
	_, good := newClientKey(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	for name, line := range map[string]string{
		"empty":       "",
		"garbage":     "hello world",
		"two keys":    good + "\n" + good,
		"from=":       `from="10.0.0.1" ` + good,
		"command=":    `command="/bin/sh" ` + good,
		"cert-auth":   `cert-authority ` + good,
		"touch":       `no-touch-required ` + good,
		"rsa 1024":    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(smallPub))),
		"nul":         good + "\x00",
		"private key": "-----BEGIN OPENSSH PRIVATE KEY-----",
	} {
		if _, _, err := ParseKeyLine(line); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v; want ErrBadKey", name, err)
		}
	}
	if _, c, err := ParseKeyLine(good[:len(good)-len("test@key")] + "a\x1b[31mb"); err != nil || c != "a[31mb" {
		t.Errorf("comment %q, %v: control characters must be dropped", c, err)
	}
}

func TestHostKeysGeneratedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	results := make([][]HostKey, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = HostKeys(dir)
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(results[i]) != 2 || results[i][0].Type != "ED25519" || results[i][1].Type != "RSA" ||
			results[i][1].Bits != 3072 {
			t.Fatalf("keys %+v", results[i])
		}
		for j := range results[i] {
			if results[i][j].Fingerprint != results[0][j].Fingerprint {
				t.Fatal("concurrent first runs made different keys")
			}
		}
	}
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"} {
		fi, err := os.Stat(filepath.Join(dir, HostKeyDir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want 0600", name, fi, err)
		}
		pub, err := os.ReadFile(filepath.Join(dir, HostKeyDir, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if fp := ssh.FingerprintSHA256(pk); fp != results[0][0].Fingerprint && fp != results[0][1].Fingerprint {
			t.Fatalf("%s.pub does not match", name)
		}
	}
	again, err := HostKeys(dir)
	if err != nil || again[0].Fingerprint != results[0][0].Fingerprint || again[1].Fingerprint != results[0][1].Fingerprint {
		t.Fatal("keys changed on the second run")
	}
	lines, err := Fingerprints(dir)
	if err != nil || len(lines) != 2 || lines[0] != "256 "+again[0].Fingerprint+" (ED25519)" ||
		lines[1] != "3072 "+again[1].Fingerprint+" (RSA)" {
		t.Fatalf("fingerprints %q, %v", lines, err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, HostKeyDir))
	if len(ents) != 4 {
		t.Fatalf("files left in the key directory: %v", ents)
	}
}

func TestFramer(t *testing.T) {
	var stream []byte
	for _, n := range []int{1, 5, 0, 40000, 3} {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(n))
		stream = append(append(stream, h[:]...), bytes.Repeat([]byte{7}, n)...)
	}
	for _, step := range []int{1, 2, 3, 7, 4096, len(stream)} {
		var f framer
		total := 0
		for i := 0; i < len(stream); i += step {
			k, err := f.feed(stream[i:min(i+step, len(stream))])
			if err != nil {
				t.Fatal(err)
			}
			total += k
		}
		if total != 5 {
			t.Fatalf("step %d: %d packets; want 5", step, total)
		}
	}
	var f framer
	if _, err := f.feed([]byte{0xff, 0xff, 0xff, 0xff}); !errors.Is(err, errLongPacket) {
		t.Fatalf("huge length: %v", err)
	}
}

func TestStatusFor(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     error
		text     string
		internal bool
	}{
		{&files.Error{Op: "open", Path: "/x", Kind: files.ErrNotExist}, sftp.ErrSSHFxNoSuchFile, "no such file", false},
		{&files.Error{Kind: files.ErrPermission}, sftp.ErrSSHFxPermissionDenied, "permission denied", false},
		{&files.Error{Kind: files.ErrReadOnly}, sftp.ErrSSHFxPermissionDenied, "read-only account", false},
		{&files.Error{Kind: files.ErrOutside}, sftp.ErrSSHFxPermissionDenied, "permission denied", false},
		{&files.Error{Kind: files.ErrQuota}, sftp.ErrSSHFxFailure, "quota exceeded", false},
		{&files.Error{Kind: files.ErrExist}, sftp.ErrSSHFxFailure, "file exists", false},
		{&files.Error{Kind: files.ErrNotEmpty}, sftp.ErrSSHFxFailure, "directory not empty", false},
		{&files.Error{Kind: files.ErrIsDir}, sftp.ErrSSHFxFailure, "is a directory", false},
		{&files.Error{Kind: files.ErrNotDir}, sftp.ErrSSHFxFailure, "not a directory", false},
		{&files.Error{Kind: files.ErrInvalidName}, sftp.ErrSSHFxBadMessage, "invalid file name", false},
		{errNotSymlinks, sftp.ErrSSHFxOpUnsupported, "symbolic links are not supported", false},
		{&files.Error{Op: "write", Path: "/secret/path", Err: errors.New("disk on fire at /srv/x")}, sftp.ErrSSHFxFailure,
			"internal server error", true},
	} {
		st, internal := statusFor(tc.err)
		var se *StatusError
		if !errors.As(st, &se) || se.Code != tc.code || se.Error() != tc.text || internal != tc.internal {
			t.Errorf("statusFor(%v) = %v (internal %v); want %v %q", tc.err, st, internal, tc.code, tc.text)
		}
	}
	if st, _ := statusFor(io.EOF); st != io.EOF {
		t.Errorf("EOF mapped to %v", st)
	}
}
