package sftpserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// HostKeyDir is the directory under the data directory that holds the
// generated host keys, in OpenSSH's file format (ssh_host_*_key, 0600, and
// ssh_host_*_key.pub).
const HostKeyDir = "ssh"

// rsaBits is the size of the generated RSA host key (NIST SP 800-57: 3072
// bits for security beyond 2030).
const rsaBits = 3072

// HostKey is one host key as an operator sees it.
type HostKey struct {
	Type        string // "ED25519" or "RSA", as ssh-keygen -l prints it
	Bits        int
	Fingerprint string // "SHA256:..." (unpadded base64), as OpenSSH prints it
	File        string // the private key file
	PublicKey   ssh.PublicKey
	signer      ssh.Signer
}

// String is the line `ssh-keygen -l -f FILE` prints: "256 SHA256:... (ED25519)".
func (k HostKey) String() string { return fmt.Sprintf("%d %s (%s)", k.Bits, k.Fingerprint, k.Type) }

// AuthorizedKey is the public key in authorized_keys / known_hosts form,
// without a trailing newline.
func (k HostKey) AuthorizedKey() string {
	b := ssh.MarshalAuthorizedKey(k.PublicKey)
	return string(b[:len(b)-1])
}

// HostKeys loads the host keys from <dataDir>/ssh, generating any that is
// missing (first run). The ed25519 key comes first. Safe to call from
// several processes at once: a key is written under a temporary name, made
// durable, and linked into place only if no other process did first.
func HostKeys(dataDir string) ([]HostKey, error) {
	dir := filepath.Join(dataDir, HostKeyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sftpserver: host keys: %w", err)
	}
	var out []HostKey
	for _, kind := range []struct{ name, typ string }{{"ssh_host_ed25519_key", "ED25519"}, {"ssh_host_rsa_key", "RSA"}} {
		file := filepath.Join(dir, kind.name)
		signer, err := loadOrCreate(file, kind.typ)
		if err != nil {
			return nil, err
		}
		pub := signer.PublicKey()
		bits := 256
		if cp, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey); ok {
				bits = rk.N.BitLen()
				// Offer SHA-2 signatures only (RFC 8332); ssh-rsa (SHA-1)
				// is off in OpenSSH since 8.8.
				as, ok := signer.(ssh.AlgorithmSigner)
				if !ok {
					return nil, fmt.Errorf("sftpserver: host key %s cannot choose its algorithm", file)
				}
				if signer, err = ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}); err != nil {
					return nil, fmt.Errorf("sftpserver: host key %s: %w", file, err)
				}
			}
		}
		out = append(out, HostKey{Type: kind.typ, Bits: bits, Fingerprint: ssh.FingerprintSHA256(pub), File: file,
			PublicKey: pub, signer: signer})
	}
	return out, nil
}

// Fingerprints returns the host keys' lines for the start-up banner, e.g.
// "256 SHA256:... (ED25519)", generating the keys on first use.
func Fingerprints(dataDir string) ([]string, error) {
	keys, err := HostKeys(dataDir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out, nil
}

func loadOrCreate(file, typ string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(file, typ); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("sftpserver: host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sftpserver: host key %s: %w", file, err)
	}
	if err := writePublic(file+".pub", s.PublicKey()); err != nil {
		return nil, err
	}
	return s, nil
}

// create generates a key and links it into place unless one appeared
// meanwhile (then that one is used).
func create(file, typ string) error {
	var key any
	switch typ {
	case "ED25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("sftpserver: generate host key: %w", err)
		}
		key = k
	case "RSA":
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return fmt.Errorf("sftpserver: generate host key: %w", err)
		}
		key = k
	}
	block, err := ssh.MarshalPrivateKey(key, "posta host key")
	if err != nil {
		return fmt.Errorf("sftpserver: encode host key: %w", err)
	}
	tmp, err := writeTemp(filepath.Dir(file), pem.EncodeToMemory(block))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// link(2) fails if the name exists: the first process to get here wins,
	// and every process then reads the same key.
	if err := os.Link(tmp, file); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sftpserver: install host key: %w", err)
	}
	return syncDir(filepath.Dir(file))
}

// writePublic (re)writes the .pub file beside a private key when it is
// missing or differs, atomically (temporary file, fsync, rename).
func writePublic(file string, pub ssh.PublicKey) error {
	want := ssh.MarshalAuthorizedKey(pub)
	if have, err := os.ReadFile(file); err == nil && string(have) == string(want) {
		return nil
	}
	tmp, err := writeTemp(filepath.Dir(file), want)
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sftpserver: host key: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sftpserver: host key: %w", err)
	}
	return syncDir(filepath.Dir(file))
}

// writeTemp writes b to a new 0600 file in dir and fsyncs it.
func writeTemp(dir string, b []byte) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("sftpserver: host key: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("sftpserver: host key: %w", err)
	}
	return name, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sftpserver: host key: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sftpserver: host key: %w", err)
	}
	return nil
}
