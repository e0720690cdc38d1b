package directory

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"posta/internal/database"
	"posta/internal/sasl"
)

func open(t *testing.T, dir string) *Directory {
	t.Helper()
	db, err := database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func TestParseAddress(t *testing.T) {
	good := map[string]string{
		"Alice@Example.TEST":       "alice@example.test",
		" bob.smith@example.test ": "bob.smith@example.test",
		"o'hara+tag@ex-ample.test": "o'hara+tag@ex-ample.test",
		"Ünïcödé@example.test":     "ünïcödé@example.test",
		"x@localhost":              "x@localhost",
	}
	for in, want := range good {
		a, err := ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, a, err, want)
		}
	}
	for _, in := range []string{"", "alice", "@example.test", "alice@", "a..b@example.test", ".a@example.test",
		"a b@example.test", "\"q\"@example.test", "a@exa_mple.test", "a@-bad.test", "a@bücher.test",
		"a@example..test", string(make([]byte, 65)) + "@example.test", "a\x00@example.test", "a\xff@example.test"} {
		if _, err := ParseAddress(in); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q) err = %v, want ErrBadAddress", in, err)
		}
	}
}

func TestDomainCRUD(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	must(t, d.AddDomain(ctx, "Example.TEST"))
	wantErr(t, d.AddDomain(ctx, "example.test"), ErrDomainExists)
	wantErr(t, d.AddDomain(ctx, "not a domain"), ErrBadDomain)
	must(t, d.AddDomain(ctx, "other.test"))
	doms, err := d.Domains(ctx)
	must(t, err)
	if len(doms) != 2 || doms[0].Name != "example.test" || doms[1].Name != "other.test" {
		t.Fatalf("domains = %+v", doms)
	}
	must(t, d.AddAccount(ctx, "alice@example.test", "correct horse", AccountOptions{}))
	wantErr(t, d.DeleteDomain(ctx, "example.test"), ErrDomainNotEmpty)
	wantErr(t, d.DeleteDomain(ctx, "nowhere.test"), ErrUnknownDomain)
	must(t, d.DeleteDomain(ctx, "other.test"))
	if ok, err := d.IsLocalDomain(ctx, "OTHER.test"); ok || err != nil {
		t.Fatalf("deleted domain still local: %v %v", ok, err)
	}
	if ok, err := d.IsLocalDomain(ctx, "EXAMPLE.test"); !ok || err != nil {
		t.Fatalf("example.test not local: %v %v", ok, err)
	}
}

func TestAccountCRUDAndPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := open(t, dir)
	must(t, d.AddDomain(ctx, "example.test"))
	wantErr(t, d.AddAccount(ctx, "alice@unknown.test", "correct horse", AccountOptions{}), ErrUnknownDomain)
	wantErr(t, d.AddAccount(ctx, "alice", "correct horse", AccountOptions{}), ErrBadAddress)
	wantErr(t, d.AddAccount(ctx, "alice@example.test", "short", AccountOptions{}), ErrWeakPassword)
	must(t, d.AddAccount(ctx, "Alice@example.test", "correct horse", AccountOptions{QuotaBytes: 1 << 30}))
	wantErr(t, d.AddAccount(ctx, "alice@EXAMPLE.test", "another one", AccountOptions{}), ErrAccountExists)
	must(t, d.AddAccount(ctx, "bob@example.test", "battery staple", AccountOptions{FilesReadOnly: true}))

	// A second handle on the same database file sees what the first wrote,
	// as a running server sees what the CLI writes.
	d2 := open(t, dir)
	accs, err := d2.Accounts(ctx, "example.test")
	must(t, err)
	if len(accs) != 2 || accs[0].Address != "alice@example.test" || accs[0].QuotaBytes != 1<<30 ||
		accs[1].Address != "bob@example.test" || !accs[1].FilesReadOnly {
		t.Fatalf("accounts = %+v", accs)
	}
	_, err = d2.Accounts(ctx, "nowhere.test")
	wantErr(t, err, ErrUnknownDomain)

	q := int64(5 << 20)
	ro := true
	must(t, d.UpdateAccount(ctx, "alice@example.test", AccountUpdate{QuotaBytes: &q, FilesReadOnly: &ro}))
	acc, err := d2.Account(ctx, "ALICE@example.test")
	must(t, err)
	if acc.QuotaBytes != q || !acc.FilesReadOnly || acc.Domain != "example.test" {
		t.Fatalf("after update: %+v", acc)
	}
	wantErr(t, d.UpdateAccount(ctx, "carol@example.test", AccountUpdate{QuotaBytes: &q}), ErrNoSuchAccount)

	if got, err := d2.VerifyPassword(ctx, "Alice@Example.test", "correct horse"); err != nil || got != "alice@example.test" {
		t.Fatalf("VerifyPassword = %q, %v", got, err)
	}
	must(t, d.SetPassword(ctx, "alice@example.test", "new password!"))
	if _, err := d2.VerifyPassword(ctx, "alice@example.test", "correct horse"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	if _, err := d2.VerifyPassword(ctx, "alice@example.test", "new password!"); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	wantErr(t, d.SetPassword(ctx, "carol@example.test", "whatever123"), ErrNoSuchAccount)

	must(t, d.DeleteAccount(ctx, "bob@example.test"))
	wantErr(t, d.DeleteAccount(ctx, "bob@example.test"), ErrNoSuchAccount)
	_, err = d.Account(ctx, "bob@example.test")
	wantErr(t, err, ErrNoSuchAccount)
}

func TestVerifyPasswordFailures(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	must(t, d.AddDomain(ctx, "example.test"))
	must(t, d.AddAccount(ctx, "alice@example.test", "correct horse", AccountOptions{}))
	for _, tc := range []struct{ user, pass string }{
		{"alice@example.test", "wrong horse"},
		{"alice@example.test", ""},
		{"nobody@example.test", "correct horse"},
		{"not an address", "correct horse"},
		{"alice@example.test", "correct horse "},
	} {
		start := time.Now()
		_, err := d.VerifyPassword(ctx, tc.user, tc.pass)
		if !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("VerifyPassword(%q, %q) = %v, want ErrInvalidCredentials", tc.user, tc.pass, err)
		}
		// Unknown users must cost an argon2id computation too (no timing
		// oracle); a computation takes well over a millisecond.
		if time.Since(start) < time.Millisecond {
			t.Errorf("VerifyPassword(%q) returned too fast to have hashed", tc.user)
		}
	}
}

func TestSCRAMKeysMatchPassword(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	must(t, d.AddDomain(ctx, "example.test"))
	must(t, d.AddAccount(ctx, "alice@example.test", "correct horse", AccountOptions{}))
	acc, k, err := d.SCRAMSHA256(ctx, "ALICE@example.test")
	must(t, err)
	if acc != "alice@example.test" || k.Iterations != SCRAMIterations || len(k.Salt) != saltLen {
		t.Fatalf("SCRAMSHA256 = %q %+v", acc, k)
	}
	want, err := sasl.SCRAMSHA256Keys("correct horse", k.Salt, k.Iterations)
	must(t, err)
	if !reflect.DeepEqual(want.StoredKey, k.StoredKey) || !reflect.DeepEqual(want.ServerKey, k.ServerKey) {
		t.Fatal("stored SCRAM keys do not derive from the password")
	}
	_, _, err = d.SCRAMSHA256(ctx, "nobody@example.test")
	wantErr(t, err, sasl.ErrInvalidCredentials)
}

func TestAliasesAndResolve(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	must(t, d.AddDomain(ctx, "example.test"))
	must(t, d.AddDomain(ctx, "other.test"))
	must(t, d.AddAccount(ctx, "alice@example.test", "correct horse", AccountOptions{}))
	must(t, d.AddAccount(ctx, "bob@example.test", "correct horse", AccountOptions{}))

	wantErr(t, d.AddAlias(ctx, "sales@nowhere.test", []string{"alice@example.test"}), ErrUnknownDomain)
	wantErr(t, d.AddAlias(ctx, "alice@example.test", []string{"bob@example.test"}), ErrAddressTaken)
	wantErr(t, d.AddAlias(ctx, "sales@example.test", []string{"carol@example.test"}), ErrUnknownTarget)
	wantErr(t, d.AddAlias(ctx, "sales@example.test", []string{"sales@example.test"}), ErrBadAddress)
	must(t, d.AddAlias(ctx, "sales@example.test", []string{"alice@example.test", "bob@example.test"}))
	wantErr(t, d.AddAlias(ctx, "sales@example.test", []string{"bob@example.test"}), ErrAliasExists)
	must(t, d.AddAlias(ctx, "team@example.test", []string{"sales@example.test", "partner@remote.test"}))
	wantErr(t, d.AddAccount(ctx, "sales@example.test", "correct horse", AccountOptions{}), ErrAddressTaken)

	resolve := func(addr string) []Recipient {
		t.Helper()
		r, err := d.Resolve(ctx, addr)
		must(t, err)
		return r
	}
	eq := func(got []Recipient, want ...Recipient) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	eq(resolve("Alice@Example.test"), Recipient{Account: "alice@example.test"})
	eq(resolve("alice+lists@example.test"), Recipient{Account: "alice@example.test", Detail: "lists"})
	eq(resolve("sales@example.test"), Recipient{Account: "alice@example.test"}, Recipient{Account: "bob@example.test"})
	eq(resolve("team@example.test"), Recipient{Account: "alice@example.test"}, Recipient{Account: "bob@example.test"},
		Recipient{External: "partner@remote.test"})
	eq(resolve("sales+x@example.test"), Recipient{Account: "alice@example.test"}, Recipient{Account: "bob@example.test"})

	_, err := d.Resolve(ctx, "carol@example.test")
	wantErr(t, err, ErrNoSuchUser)
	_, err = d.Resolve(ctx, "carol@remote.test")
	wantErr(t, err, ErrNotLocal)
	_, err = d.Resolve(ctx, "no-at-sign")
	wantErr(t, err, ErrBadAddress)

	// Catch-all: only what nothing else takes.
	must(t, d.AddAlias(ctx, "@example.test", []string{"bob@example.test"}))
	eq(resolve("carol@example.test"), Recipient{Account: "bob@example.test"})
	eq(resolve("alice@example.test"), Recipient{Account: "alice@example.test"})

	// A loop between aliases is refused, not followed forever.
	must(t, d.AddAlias(ctx, "ping@other.test", []string{"alice@example.test"}))
	must(t, d.AddAlias(ctx, "pong@other.test", []string{"ping@other.test"}))
	must(t, d.AddAlias(ctx, "ping@other.test", []string{"pong@other.test"}))
	_, err = d.Resolve(ctx, "ping@other.test")
	wantErr(t, err, ErrAliasLoop)

	als, err := d.Aliases(ctx, "example.test")
	must(t, err)
	if len(als) != 3 || als[0].Address != "@example.test" || als[1].Address != "sales@example.test" ||
		!reflect.DeepEqual(als[1].Targets, []string{"alice@example.test", "bob@example.test"}) {
		t.Fatalf("aliases = %+v", als)
	}

	must(t, d.DeleteAlias(ctx, "sales@example.test", "alice@example.test"))
	eq(resolve("sales@example.test"), Recipient{Account: "bob@example.test"})
	wantErr(t, d.DeleteAlias(ctx, "sales@example.test", "alice@example.test"), ErrNoSuchAlias)
	must(t, d.DeleteAlias(ctx, "@example.test"))
	wantErr(t, d.DeleteAlias(ctx, "@example.test"), ErrNoSuchAlias)

	// Deleting an account removes it from aliases; an emptied alias is gone.
	must(t, d.DeleteAccount(ctx, "bob@example.test"))
	_, err = d.Resolve(ctx, "sales@example.test")
	wantErr(t, err, ErrNoSuchUser)
	eq(resolve("team@example.test"), Recipient{External: "partner@remote.test"})
}
