package manifest

import (
	"os/exec"
	"strings"
	"testing"
)

// knitd is re-executed for every container start; the Kubernetes modules'
// package initialisation must stay out of it (and out of knit-cni, which
// runtimes execute for every attachment). Only cmd/knit may import them.
func TestDaemonsDoNotImportKubernetes(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	for _, cmd := range []string{"github.com/knit-net/knit/cmd/knitd", "github.com/knit-net/knit/cmd/knit-cni"} {
		out, err := exec.Command(goTool, "list", "-e", "-deps", "-f", "{{.ImportPath}}", cmd).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", cmd, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/") || pkg == "github.com/knit-net/knit/internal/manifest" {
				t.Errorf("%s imports %s; keep Kubernetes packages in the knit CLI only", cmd, pkg)
			}
		}
	}
}
