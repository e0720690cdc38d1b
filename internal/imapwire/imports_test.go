package imapwire

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports enforces doc.go: the grammar uses only the standard library, and none of net, log
// or log/slog (the session owns the socket and the logging), and no Posta package.
func TestImports(t *testing.T) {
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case strings.Contains(first, ".") || strings.HasPrefix(imp, "posta"):
			t.Errorf("imports %s: only the standard library is allowed", imp)
		case imp == "net" || strings.HasPrefix(imp, "net/") || imp == "log" || strings.HasPrefix(imp, "log/") || imp == "os":
			t.Errorf("imports %s: no I/O policy in the grammar", imp)
		}
	}
}
