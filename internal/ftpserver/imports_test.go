package ftpserver

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRule enforces doc.go (ARCHITECTURE.md: arrows point down): the
// package's non-test files import only the standard library and the Posta
// packages below it, never internal/server, another protocol server or the
// mail store.
func TestImportRule(t *testing.T) {
	allowed := map[string]bool{
		"posta/internal/config":    true,
		"posta/internal/directory": true,
		"posta/internal/files":     true,
		"posta/internal/guard":     true,
		"posta/internal/sasl":      true,
		"posta/internal/tlsconf":   true,
	}
	checkImports(t, ".", allowed)
	// internal/files is shared by FTP and SFTP: standard library only.
	checkImports(t, "../files", map[string]bool{})
}

func checkImports(t *testing.T, dir string, allowed map[string]bool) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range names {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			stdlib := !strings.Contains(first, ".") && first != "posta"
			if !stdlib && !allowed[path] {
				t.Errorf("%s imports %q, which the import rule does not allow", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no source files checked in %s", dir)
	}
}
