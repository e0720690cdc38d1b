package directory

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseAddress: any input either fails with ErrBadAddress or yields a
// normalised address that parses again to itself.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"alice@example.test", "Alice+Tag@Example.TEST", "a..b@x", "\"q\"@x.test", "ü@x.test",
		"@x", "x@", "a@b@c.test", "a@xn--bcher-kva.test", " spaced@x.test ", "a@-x.test", "\xff@x.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("error %v is not ErrBadAddress", err)
			}
			return
		}
		again, err := ParseAddress(a.String())
		if err != nil || again != a {
			t.Fatalf("%q -> %q does not parse to itself: %q, %v", s, a, again, err)
		}
		if a.String() != strings.ToLower(a.String()) || strings.Count(a.Domain, "@") != 0 {
			t.Fatalf("not normalised: %q", a)
		}
		if _, _, ok := splitDetail(a.Local); ok && !strings.Contains(a.Local, "+") {
			t.Fatalf("detail split without separator: %q", a)
		}
	})
}
