package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the CLI in-process and returns stdout, stderr and the error.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	var err error
	switch code {
	case 1:
		err = errors.New("exit status 1")
	case 2:
		err = usageError{errors.New("exit status 2")}
	}
	return out.String(), errb.String(), err
}

func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := run(t, stdin, args...)
	if err != nil {
		t.Fatalf("posta %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func fails(t *testing.T, stdin, want string, args ...string) error {
	t.Helper()
	_, stderr, err := run(t, stdin, args...)
	if err == nil {
		t.Fatalf("posta %s succeeded; want an error containing %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(stderr, want) || strings.Count(stderr, "posta: ") != 1 {
		t.Fatalf("posta %s: stderr %q; want one line containing %q", strings.Join(args, " "), stderr, want)
	}
	return err
}

func TestDirectoryCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := "--data=" + data

	ok(t, "", "domain", "add", "Example.TEST", d)
	// --data before the arguments works as well as after.
	ok(t, "", d, "domain", "add", "other.test")
	fails(t, "", "domain already exists: example.test", "domain", "add", "example.test", d)
	fails(t, "", "bad domain", "domain", "add", "not_a_domain", d)

	ok(t, "correct horse\n", "user", "add", "alice@example.test", "--password-stdin", "--quota", "2GiB", d)
	ok(t, "battery staple\n", d, "user", "add", "--password-stdin", "bob@example.test", "--files-read-only")
	fails(t, "another pass\n", "account already exists: alice@example.test", "user", "add", "Alice@example.test", "--password-stdin", d)
	fails(t, "another pass\n", "unknown domain: nowhere.test (add it with: posta domain add nowhere.test)", "user", "add", "carol@nowhere.test", "--password-stdin", d)
	fails(t, "another pass\n", `bad address: "carol" has no @`, "user", "add", "carol", "--password-stdin", d)
	fails(t, "short\n", "password too short", "user", "add", "carol@example.test", "--password-stdin", d)
	fails(t, "", "no password on standard input", "user", "add", "carol@example.test", "--password-stdin", d)
	// No terminal and no --password-stdin: a usage error, not a hang.
	err := fails(t, "", "standard input is not a terminal", "user", "add", "carol@example.test", d)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("want a usage error, got %T", err)
	}
	err = fails(t, "", "accepts 1 arg(s)", "user", "add", d)
	if !errors.As(err, &ue) {
		t.Fatalf("want a usage error for a missing argument, got %T", err)
	}
	fails(t, "", "--quota", "user", "add", "carol@example.test", "--quota", "lots", "--password-stdin", d)

	out := ok(t, "", "user", "list", d)
	want := "ADDRESS             QUOTA  FILES\nalice@example.test  2GiB   read-write\nbob@example.test    none   read-only\n"
	if out != want {
		t.Fatalf("user list:\n%s\nwant:\n%s", out, want)
	}
	ok(t, "correct horse\n", "user", "test", "alice@example.test", "--password-stdin", d)
	fails(t, "wrong horse!\n", "login refused for alice@example.test", "user", "test", "alice@example.test", "--password-stdin", d)
	ok(t, "new password\n", "user", "passwd", "alice@example.test", "--password-stdin", d)
	fails(t, "correct horse\n", "login refused", "user", "test", "alice@example.test", "--password-stdin", d)
	ok(t, "new password\n", "user", "test", "alice@example.test", "--password-stdin", d)
	fails(t, "new password\n", "no such account: carol@example.test", "user", "passwd", "carol@example.test", "--password-stdin", d)

	ok(t, "", "user", "set", "bob@example.test", "--quota", "none", "--files-read-only=false", d)
	if out := ok(t, "", "user", "list", "example.test", d); !strings.Contains(out, "bob@example.test    none   read-write") {
		t.Fatalf("user set not applied:\n%s", out)
	}
	fails(t, "", "nothing to change", "user", "set", "bob@example.test", d)

	ok(t, "", "alias", "add", "sales@example.test", "alice@example.test", "bob@example.test", d)
	ok(t, "", "alias", "add", "@other.test", "alice@example.test", d)
	fails(t, "", "unknown local target", "alias", "add", "info@example.test", "nobody@example.test", d)
	fails(t, "", "address is already an account or alias", "alias", "add", "alice@example.test", "bob@example.test", d)
	out = ok(t, "", "alias", "list", d)
	want = "ALIAS               TARGETS\n@other.test         alice@example.test\nsales@example.test  alice@example.test, bob@example.test\n"
	if out != want {
		t.Fatalf("alias list:\n%q\nwant:\n%q", out, want)
	}
	ok(t, "", "alias", "del", "sales@example.test", "bob@example.test", d)
	ok(t, "", "alias", "del", "@other.test", d)
	fails(t, "", "no such alias", "alias", "del", "@other.test", d)

	out = ok(t, "", "domain", "list", d)
	want = "DOMAIN        ACCOUNTS  ALIASES\nexample.test  2         1\nother.test    0         0\n"
	if out != want {
		t.Fatalf("domain list:\n%q\nwant:\n%q", out, want)
	}
	fails(t, "", "domain still has accounts or aliases: example.test has 2 accounts and 1 aliases", "domain", "del", "example.test", d)
	ok(t, "", "domain", "del", "other.test", d)
	ok(t, "", "user", "del", "bob@example.test", d)
	fails(t, "", "no such account", "user", "del", "bob@example.test", d)
	if out := ok(t, "", "user", "list", d); strings.Contains(out, "bob@") {
		t.Fatalf("deleted user listed:\n%s", out)
	}
}

func TestInitAndCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "posta.toml")
	ok(t, "", "init", file)
	fails(t, "", "already exists", "init", file)
	ok(t, "", "init", file, "--force")
	out := ok(t, "", "check", "--config", file)
	if !strings.Contains(out, "configuration OK ("+file+")") || !strings.Contains(out, "data: "+filepath.Join(dir, "posta-data")) ||
		!strings.Contains(out, "imaps        :993") {
		t.Fatalf("check output:\n%s", out)
	}
	if out := ok(t, "", "init", "-"); !strings.Contains(out, "[guard]") {
		t.Fatalf("init - printed:\n%s", out)
	}
	if err := os.WriteFile(file, []byte("[imap]\nport = 99999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, "", "imap.port: 99999 is out of range", "check", "--config", file)
	fails(t, "", "imap.port: 99999 is out of range", "serve", "--config", file)
	fails(t, "", "--port-offset", "serve", "--port-offset", "70000", "--data", dir)
	fails(t, "", "unknown flag: --bogus", "user", "list", "--bogus")
}

func TestUserKeyCommands(t *testing.T) {
	data := "--data=" + filepath.Join(t.TempDir(), "data")
	ok(t, "", "domain", "add", "example.test", data)
	ok(t, "correct horse\n", "user", "add", "alice@example.test", "--password-stdin", data)
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlDbZK3BBq0r2PHj7FNFYOgOuVWf0FSH0AJyMc2Om7k alice@laptop"
	out := ok(t, key+"\n", "user", "key", "add", "alice@example.test", data)
	if !strings.Contains(out, "added ssh-ed25519 key SHA256:") {
		t.Fatalf("key add: %q", out)
	}
	fails(t, key+"\n", "", "user", "key", "add", "alice@example.test", data)
	fails(t, "not a key\n", "", "user", "key", "add", "alice@example.test", data)
	fails(t, key+"\n", "no such account", "user", "key", "add", "bob@example.test", data)
	out = ok(t, "", "user", "key", "list", "alice@example.test", data)
	if !strings.Contains(out, "ssh-ed25519") || !strings.Contains(out, "alice@laptop") {
		t.Fatalf("key list: %q", out)
	}
	fp := strings.Fields(strings.Split(out, "\n")[1])[0]
	ok(t, "", "user", "key", "del", "alice@example.test", fp, data)
	if out := ok(t, "", "user", "key", "list", "alice@example.test", data); strings.Contains(out, "ssh-ed25519") {
		t.Fatalf("key still listed: %q", out)
	}
}

// TestDomainDNS: a domain gets DKIM keys when added, and domain dns prints
// every record an operator publishes, with the same keys each time.
func TestDomainDNS(t *testing.T) {
	d := "--data=" + filepath.Join(t.TempDir(), "data")
	ok(t, "", "domain", "add", "example.test", d)
	out := ok(t, "", "domain", "dns", "example.test", d)
	for _, want := range []string{
		"example.test.\tIN\tMX\t10 ",
		"example.test.\tIN\tTXT\t\"v=spf1 ",
		"._domainkey.example.test.\tIN\tTXT\t\"v=DKIM1; k=ed25519; p=",
		"._domainkey.example.test.\tIN\tTXT\t\"v=DKIM1; k=rsa; p=",
		"_dmarc.example.test.\tIN\tTXT\t\"v=DMARC1; ",
		"_mta-sts.example.test.\tIN\tTXT\t\"v=STSv1; id=",
		"_smtp._tls.example.test.\tIN\tTXT\t\"v=TLSRPTv1; ",
		"_imaps._tcp.example.test.\tIN\tSRV\t0 1 993 ",
		"_submissions._tcp.example.test.\tIN\tSRV\t0 1 465 ",
		";   mode: testing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("domain dns output lacks %q:\n%s", want, out)
		}
	}
	if again := ok(t, "", "domain", "dns", "example.test", d); again != out {
		t.Errorf("domain dns changed between runs (keys regenerated?)")
	}
	fails(t, "", "unknown domain: nowhere.test", "domain", "dns", "nowhere.test", d)
}
