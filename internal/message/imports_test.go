package message

import (
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRule enforces doc.go: the package's non-test files use only the standard library, go-message and
// golang.org/x/text, so it can never depend on a protocol server or on the store (ARCHITECTURE.md).
func TestImportRule(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ast, err := goparser.ParseFile(token.NewFileSet(), f, src, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			stdlib := !strings.Contains(first, ".") && first != "posta"
			if !stdlib && !strings.HasPrefix(path, "github.com/emersion/go-message") &&
				!strings.HasPrefix(path, "golang.org/x/text/") {
				t.Errorf("%s imports %q: only the standard library, go-message and golang.org/x/text are allowed", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
