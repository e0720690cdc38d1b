package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := map[string]int{"smtp": 25, "submission": 587, "submissions": 465, "pop3": 110, "pop3s": 995,
		"imap": 143, "imaps": 993, "ftp": 21, "ftps": 990, "sftp": 2022}
	got := map[string]int{}
	for _, l := range c.Listeners() {
		got[l.Name] = l.Port
	}
	if len(got) != len(want) {
		t.Fatalf("listeners = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("listener %s port = %d, want %d", k, got[k], v)
		}
	}
	if c.DataDir != "./posta-data" {
		t.Errorf("data_dir default = %q", c.DataDir)
	}
}

func TestPortOffsetAndDisable(t *testing.T) {
	c := writeAndLoad(t, "port_offset = 10000\n[pop3]\nenabled = false\n[smtp]\nsubmissions_port = 0\n")
	addrs := map[string]string{}
	for _, l := range c.Listeners() {
		addrs[l.Name] = c.Addr(l)
	}
	if addrs["smtp"] != ":10025" || addrs["submission"] != ":10587" || addrs["sftp"] != ":12022" {
		t.Errorf("offset addresses wrong: %v", addrs)
	}
	for _, off := range []string{"pop3", "pop3s", "submissions"} {
		if _, ok := addrs[off]; ok {
			t.Errorf("listener %s should be off: %v", off, addrs)
		}
	}
}

func TestInitRoundTrip(t *testing.T) {
	// posta init writes Default() through Marshal; reading it back must give
	// the same configuration, and every key must be present and commented.
	b, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, key := range []string{"hostname", "data_dir", "port_offset", "[guard]", "ban_after", "fail_delay = '500ms'",
		"[smtp]", "submission_port = 587", "[sftp]", "port = 2022", "# How long a ban lasts."} {
		if !strings.Contains(text, key) {
			t.Errorf("init output lacks %q:\n%s", key, text)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "posta.toml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatalf("load init output: %v", err)
	}
	want := Default()
	want.DataDir = filepath.Join(dir, want.DataDir)
	want.file = p
	if *c != *want {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", c, want)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"unknown key", "[imap]\nprot = 1\n", "unknown key imap.prot"},
		{"bad duration", "[guard]\nban_window = \"ten\"\n", "guard.ban_window"},
		{"wrong type", "[smtp]\nport = \"twenty-five\"\n", "smtp.port"},
		{"port range", "[imap]\nport = 70000\n", "imap.port: 70000 is out of range"},
		{"negative port", "[ftp]\ntls_port = -3\n", "ftp.tls_port: -3 is out of range"},
		{"offset overflow", "port_offset = 65000\n", "smtp.submission_port: 587 plus port_offset 65000 is above 65535"},
		{"duplicate port", "[pop3]\nport = 143\n", "port 143 is also used by pop3.port"},
		{"hostname", "hostname = \"bad host\"\n", "hostname: \"bad host\" is not a valid host name"},
		{"level", "[log]\nlevel = \"loud\"\n", "log.level"},
		{"zero limit", "[guard]\nmax_conns = 0\n", "guard.max_conns: must be at least 1"},
		{"tls half", "[tls]\ncert_file = \"a.pem\"\n", "tls: cert_file and key_file must be set together"},
		{"delay order", "[guard]\nfail_delay = \"1m\"\nmax_fail_delay = \"1s\"\n", "guard.max_fail_delay: 1s is less than"},
		{"syntax", "[imap\n", "line 1"},
		{"bind", "bind_address = \"localhost\"\n", "bind_address: \"localhost\" is not an IP address"},
		{"remote port", "[queue]\nremote_port = 0\n", "queue.remote_port: 0 is out of range 1-65535"},
		{"dns no port", "[queue]\ndns_server = \"127.0.0.1\"\n", "queue.dns_server: \"127.0.0.1\" is not host:port"},
		{"dns bad port", "[queue]\ndns_server = \"127.0.0.1:99999\"\n", "queue.dns_server: \"127.0.0.1:99999\" has no port"},
		{"dns bad host", "[queue]\ndns_server = \"bad host:53\"\n", "queue.dns_server: \"bad host:53\" has no valid host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "posta.toml")
			if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestQueueDNSAndRemotePort(t *testing.T) {
	c := writeAndLoad(t, "[queue]\ndns_server = \"[::1]:5353\"\nremote_port = 2525\n")
	if c.Queue.DNSServer != "[::1]:5353" || c.Queue.RemotePort != 2525 {
		t.Errorf("queue = %+v", c.Queue)
	}
	if d := Default().Queue; d.DNSServer != "" || d.RemotePort != 25 {
		t.Errorf("queue defaults = %+v, want system resolver and port 25", d)
	}
}

func TestRelativeDataDir(t *testing.T) {
	c := writeAndLoad(t, "data_dir = \"var/mail\"\n")
	if !filepath.IsAbs(c.DataDir) || !strings.HasSuffix(c.DataDir, filepath.Join("var", "mail")) {
		t.Errorf("data_dir not resolved next to the file: %q", c.DataDir)
	}
	if filepath.Dir(filepath.Dir(c.DataDir)) != filepath.Dir(c.File()) {
		t.Errorf("data_dir %q not under %q", c.DataDir, filepath.Dir(c.File()))
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]Size{"100": 100, "1KiB": 1024, "2 MiB": 2 << 20, "1GB": 1e9, "1.5k": 1536, "3G": 3 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1", "5 parsecs", "1e30", "nan", "NaN KiB", "inf", "+Inf"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if s := Size(50 << 20).String(); s != "50MiB" {
		t.Errorf("Size.String = %q", s)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("90s")); err != nil || d.D() != 90*time.Second {
		t.Errorf("Duration = %v, %v", d, err)
	}
}

func writeAndLoad(t *testing.T, body string) *Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "posta.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
