package config

import (
	"testing"
)

// FuzzDecode: no file makes loading panic, and whatever decodes either fails
// validation or renders and reloads to the same configuration.
func FuzzDecode(f *testing.F) {
	b, err := Default().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	for _, s := range []string{"", "port_offset = 10000\n", "[guard]\nban_window = \"1h\"\n", "[smtp]\nport = -1\n",
		"[imap\n", "hostname = 3\n", "[tls]\ncert_file = \"x\"\nkey_file = \"y\"\n", "[[smtp]]\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Default()
		if err := c.decode([]byte(s)); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("valid config does not marshal: %v", err)
		}
		c2 := Default()
		if err := c2.decode(out); err != nil {
			t.Fatalf("marshalled config does not decode: %v\n%s", err, out)
		}
		if *c2 != *c {
			t.Fatalf("round trip differs:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzParseSize: no panic; a parsed size formats to something that parses
// back to the same value.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "100", "1KiB", "2.5 MB", "3g", "1e3", "-1", "kb", "9999999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("negative size %d from %q", v, s)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, v.String(), back, err)
		}
	})
}
