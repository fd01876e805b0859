package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// Real CNI runtimes (podman, containerd) run in the machine's own
// namespaces; only their containers' network namespaces are attached, by
// path, to knitd in the test host. What they leave on the machine is
// removed afterwards by the helpers here.

// requireTools fails the test when a runtime's binaries are missing: they
// come from Debian packages that make test installs.
func requireTools(t *testing.T, pkgs string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		nstest.RequireTool(t, tool, pkgs)
	}
}

// busyboxRootfs makes a root filesystem of static busybox and its applets.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb := nstest.RequireTool(t, "busybox", "busybox-static")
	dir := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	b, err := os.ReadFile(bb)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755))
	out, err := exec.Command(bb, "--list").Output()
	must(t, err)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			must(t, os.Symlink("busybox", filepath.Join(dir, "bin", applet)))
		}
	}
	return dir
}

// keepTidy removes, when the test ends, those of paths that did not exist
// before it and hold nothing but empty directories (state directories such
// as /run/runc or /var/lib/cni that runtimes create on first use). Anything
// with a file in it is left and reported.
func keepTidy(t *testing.T, paths ...string) {
	t.Helper()
	var fresh []string
	for _, p := range paths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			fresh = append(fresh, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range fresh {
			if files := filesUnder(p); len(files) > 0 {
				t.Errorf("%s was created during the test and still holds %v", p, files)
				continue
			}
			removeEmptyDirs(p)
		}
	})
}

func filesUnder(root string) []string {
	var files []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files
}

func removeEmptyDirs(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// runTool runs a runtime's command line with a deadline and returns its
// combined output.
func runTool(env []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// knitLinks lists the host namespace's knit veths.
func (h *Host) knitVeths() []string {
	var out []string
	for _, l := range h.links() {
		if strings.HasPrefix(l, "knv") {
			out = append(out, l)
		}
	}
	return out
}
