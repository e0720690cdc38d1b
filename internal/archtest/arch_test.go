package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// layers: a package may import Posta packages of a lower layer only.
var layers = map[string]int{
	"config": 0, "conntrack": 0, "pipenet": 0, "database": 0, "blob": 0, "guard": 0, "sasl": 0, "tlsconf": 0, "message": 0, "mbox": 0, "maildir": 0,
	"directory": 1, "mailstore": 1, "queue": 1, "files": 1, "mailauth": 1, "tlsrpt": 1,
	"delivery": 2, "queue/mx": 2,
	"smtpserver": 3, "pop3server": 3, "imapserver": 3, "imapwire": 0, "ftpserver": 3, "sftpserver": 3,
	"server":    4,
	"postatest": 5,
}

// outside lists, for packages that are leaves of the design, every module
// outside the standard library they may use.
var outside = map[string][]string{
	"config":     {"github.com/pelletier/go-toml/v2"},
	"database":   {"modernc.org/sqlite"},
	"blob":       {},
	"mbox":       {},
	"maildir":    {},
	"conntrack":  {},
	"pipenet":    {},
	"guard":      {},
	"sasl":       {"golang.org/x/text/"},
	"tlsconf":    {},
	"message":    {"github.com/emersion/go-message", "golang.org/x/text/"},
	"directory":  {"golang.org/x/crypto/argon2"},
	"mailauth":   {"github.com/emersion/go-msgauth", "blitiri.com.ar/go/spf", "golang.org/x/net/idna", "golang.org/x/net/publicsuffix"},
	"mailstore":  {},
	"tlsrpt":     {},
	"imapwire":   {},
	"pop3server": {},
	"ftpserver":  {},
}

func TestImportsPointDown(t *testing.T) {
	// Every package under internal/, nested ones (queue/mx) included.
	var names []string
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || path == ".." {
			return nil
		}
		if d.Name() == "testdata" || d.Name() == "archtest" {
			return filepath.SkipDir
		}
		names = append(names, filepath.ToSlash(strings.TrimPrefix(path, "../")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range names {
		pkg, err := build.Default.ImportDir(filepath.Join("..", name), 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				continue
			}
			t.Fatalf("%s: %v", name, err)
		}
		level, known := layers[name]
		if !known {
			t.Errorf("internal/%s has no layer: add it to layers (and to ARCHITECTURE.md's rooms)", name)
			continue
		}
		checked++
		for _, imp := range pkg.Imports {
			if dep, ok := strings.CutPrefix(imp, "posta/internal/"); ok {
				dl, known := layers[dep]
				if !known || dl >= level {
					t.Errorf("internal/%s (layer %d) imports internal/%s (layer %d): imports must point down", name, level, dep, dl)
				}
				continue
			}
			allowed, leaf := outside[name]
			if !leaf || isStdlib(imp) || strings.HasPrefix(imp, "posta/") {
				continue
			}
			ok := false
			for _, a := range allowed {
				if imp == a || strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a) || strings.HasPrefix(imp, a+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("internal/%s imports %s, not among its chosen dependencies %v", name, imp, allowed)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked", checked)
	}
}

// TestOnlyWiringImportsProtocolServers: cmd/posta and internal/server wire
// protocol servers; nothing else may import one.
func TestOnlyWiringImportsProtocolServers(t *testing.T) {
	var protos []string
	for name, l := range layers {
		if l == 3 {
			protos = append(protos, name)
		}
	}
	sort.Strings(protos)
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		pkg, err := build.Default.ImportDir(path, 0)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel("../..", path)
		if rel == "internal/server" || rel == "cmd/posta" {
			return nil
		}
		for _, imp := range pkg.Imports {
			for _, p := range protos {
				if imp == "posta/internal/"+p {
					t.Errorf("%s imports the protocol server %s", rel, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
