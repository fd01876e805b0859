package nstest

import (
	"os/exec"
	"testing"
)

// RequireTool fails the test when a program it uses is missing, naming the
// Debian package that has it: make test installs them all
// (scripts/test-deps.sh), so a missing one is a broken setup, not a reason
// to skip. It returns the program's path.
func RequireTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (make test installs what the tests need: scripts/test-deps.sh)", tool, pkg)
	}
	return path
}
