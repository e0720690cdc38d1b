package e2e

import (
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireTool returns the path of an outside client. Missing, the test is
// skipped, unless POSTA_REQUIRE_TOOLS=1 (CI), where it fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("POSTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (POSTA_REQUIRE_TOOLS=1) but not on PATH", name)
		}
		t.Skipf("%s not on PATH", name)
	}
	return p
}
