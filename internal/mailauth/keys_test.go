package mailauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"posta/internal/database"
)

func TestSelectorsFromDate(t *testing.T) {
	k, err := generateKeys(time.Date(2026, 7, 15, 23, 30, 0, 0, time.FixedZone("x", -3*3600)))
	if err != nil {
		t.Fatal(err)
	}
	if k.Ed25519Selector != "p20260716e" || k.RSASelector != "p20260716r" {
		t.Fatalf("selectors %q %q, want p20260716e, p20260716r (UTC date)", k.Ed25519Selector, k.RSASelector)
	}
	if k.RSA.N.BitLen() != 2048 || len(k.Ed25519) == 0 {
		t.Fatalf("keys: RSA %d bits, ed25519 %d bytes", k.RSA.N.BitLen(), len(k.Ed25519))
	}
}

func TestKeyStoreEnsureIsIdempotentAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get(ctx, "example.com"); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Get before Ensure: %v, want ErrNoKeys", err)
	}
	k1, err := ks.Ensure(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ks.Ensure(ctx, "Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b Keys) bool {
		return a.Ed25519.Equal(b.Ed25519) && a.RSA.Equal(b.RSA) &&
			a.Ed25519Selector == b.Ed25519Selector && a.RSASelector == b.RSASelector && a.Created.Equal(b.Created)
	}
	if !same(k1, k2) {
		t.Fatal("second Ensure made new keys")
	}
	var text string
	if err := db.QueryRow(`SELECT private_key FROM dkim_keys WHERE algorithm = 'rsa'`).Scan(&text); err != nil ||
		!strings.HasPrefix(text, "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("stored key is not PKCS#8 PEM: %.40q, %v", text, err)
	}
	db.Close()

	db, err = database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ks, err = Open(ctx, db) // migrations already applied: a no-op
	if err != nil {
		t.Fatal(err)
	}
	k3, err := ks.Ensure(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	k4, err := ks.Get(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !same(k1, k3) || !same(k1, k4) {
		t.Fatal("keys changed across reopen")
	}
	if _, err := ks.Get(ctx, "other.example"); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Get of another domain: %v, want ErrNoKeys", err)
	}
	// An Ensure in another process that generated keys too but stores
	// second keeps the first one's keys.
	other, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	edPEM, _ := marshalKey(other.Ed25519)
	rsaPEM, _ := marshalKey(other.RSA)
	if err := ks.storeIfAbsent(ctx, "example.com", other, edPEM, rsaPEM); err != nil {
		t.Fatalf("losing store: %v", err)
	}
	if k, err := ks.Get(ctx, "example.com"); err != nil || !same(k, k1) {
		t.Fatalf("after a losing store: keys changed (%v)", err)
	}

	// A Signer over the store signs with the stored keys, and refuses a
	// domain without keys.
	s := NewSigner(ks)
	sigs, err := s.Sign(ctx, "example.com", strings.NewReader(message("a@example.com")))
	if err != nil || strings.Count(string(sigs), "DKIM-Signature:") != 2 || !strings.Contains(string(sigs), "s="+k1.RSASelector) {
		t.Fatalf("Sign = %q, %v", sigs, err)
	}
	if _, err := s.Sign(ctx, "other.example", strings.NewReader(message("a@other.example"))); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Sign without keys: %v, want ErrNoKeys", err)
	}

	if err := ks.Delete(ctx, "EXAMPLE.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get(ctx, "example.com"); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := ks.Delete(ctx, "example.com"); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("second Delete: %v, want ErrNoKeys", err)
	}
	k5, err := ks.Ensure(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if k5.Ed25519.Equal(k1.Ed25519) {
		t.Fatal("Ensure after Delete returned the deleted key")
	}
	for _, bad := range []string{"", "a b.com", "x@example.com", ".example.com", "a..b"} {
		if _, err := ks.Ensure(ctx, bad); err == nil {
			t.Errorf("Ensure(%q): no error", bad)
		}
	}
}

func TestSignHeaderFields(t *testing.T) {
	keys := testKeys(t)
	sigs, err := NewSigner(staticKeys(keys)).Sign(context.Background(), "Sender.Test", strings.NewReader(message("a@sender.test")))
	if err != nil {
		t.Fatal(err)
	}
	fields := parseFields(append(sigs, "\r\n"...))
	if len(fields) != 2 || !strings.HasSuffix(string(sigs), "\r\n") {
		t.Fatalf("Sign returned %d fields: %q", len(fields), sigs)
	}
	for i, want := range []string{"ed25519-sha256", "rsa-sha256"} {
		tags, err := parseTags(fields[i].value)
		if err != nil {
			t.Fatal(err)
		}
		if tags["a"] != want || tags["c"] != "relaxed/relaxed" || tags["d"] != "sender.test" {
			t.Errorf("signature %d: a=%q c=%q d=%q", i, tags["a"], tags["c"], tags["d"])
		}
		h := strings.Split(strings.ToLower(stripSpace(tags["h"])), ":")
		if len(h) < 2 || h[0] != "from" || h[1] != "from" {
			t.Errorf("signature %d: From not oversigned: h=%s", i, tags["h"])
		}
		for _, f := range []string{"to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
			"mime-version", "content-type", "content-transfer-encoding", "reply-to"} {
			if !strings.Contains(":"+strings.Join(h, ":")+":", ":"+f+":") {
				t.Errorf("signature %d: %s not signed", i, f)
			}
		}
	}
	// A message the signer cannot read fails, and no goroutine is left
	// blocked (the race detector's run ends).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewSigner(staticKeys(keys)).Sign(ctx, "sender.test", strings.NewReader(message("a@sender.test"))); err == nil {
		t.Error("Sign with a cancelled context: no error")
	}
}
