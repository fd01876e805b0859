package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKnitdCrashKeepsConnections kills knitd with SIGKILL while a TCP
// connection between two containers is open, restarts it, and checks that
// the connection never broke and that new containers still work.
func TestKnitdCrashKeepsConnections(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "back")
	h.serve("db", "--network", "back")
	dbAddr := h.ip("db", "back") + ":8080"
	h.knit("run", "-d", "--name", "client", "--network", "back", "--", bins.probe, "hold", dbAddr)
	h.waitLog("client", "ok 10")
	linksBefore := strings.Join(h.links(), ",")
	id := h.container("client").ID

	h.killKnitd()
	// knit logs needs knitd, so watch the log file while it is down.
	if !eventually(t, 10*time.Second, "the connection to carry traffic while knitd is down", h.holdAdvances(id)) {
		t.FailNow()
	}
	h.startKnitd()
	mark := strings.Count(h.knit("logs", "client"), "ok ")
	// The log file only grows, so a new ok line there is one past mark.
	eventually(t, 10*time.Second, "the connection to carry traffic after the restart", h.holdAdvances(id))

	logs := h.knit("logs", "client")
	if strings.Contains(logs, "FAIL") || strings.Count(logs, "ok ") <= mark {
		t.Fatalf("the connection broke across the knitd restart:\n%s", logs)
	}
	if c := h.container("client"); c.Status.State != "running" {
		t.Fatalf("client is %s after restart", c.Status.State)
	}
	if after := strings.Join(h.links(), ","); after != linksBefore {
		t.Errorf("links changed across restart:\n before %s\n after  %s", linksBefore, after)
	}
	h.serve("new", "--network", "back")
	if out, ok := h.dial("client", h.ip("new", "back")+":8080"); !ok {
		t.Fatalf("new container after restart unreachable: %s", out)
	}
}

// TestRestartRemovesWhatDiedWhileDown: a container whose process dies while
// knitd is down is found exited on restart, its veth and namespace removed.
func TestRestartRemovesWhatDiedWhileDown(t *testing.T) {
	h := newHost(t)
	h.knit("run", "-d", "--name", "victim", "--", "sleep", "300")
	c := h.container("victim")
	h.stopKnitd() // SIGTERM: networking stays in place
	if !contains(h.links(), "knv"+c.ID[:9]+"-0") {
		t.Fatalf("SIGTERM of knitd removed the container's veth: %v", h.links())
	}
	p, err := os.FindProcess(c.Status.Pid)
	must(t, err)
	must(t, p.Kill())
	eventually(t, 10*time.Second, "the killed process to die", func() error { return procDead(c.Status.Pid) })
	h.startKnitd()
	if st := h.container("victim").Status.State; st != "exited" {
		t.Fatalf("dead container is %s after restart", st)
	}
	if contains(h.links(), "knv"+c.ID[:9]+"-0") {
		t.Errorf("veth of the dead container survived the restart")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run", "netns", c.ID)); !os.IsNotExist(err) {
		t.Errorf("namespace file of the dead container survived the restart: %v", err)
	}
}

// TestConcurrentRuns starts 100 containers at once: every one gets a
// distinct address, and removing them all leaves nothing behind.
func TestConcurrentRuns(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "many", "--subnet", "10.77.0.0/24")
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.try("run", "-d", "--name", fmt.Sprintf("c%d", i), "--network", "many", "--", "sleep", "300")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("c%d", i)
		ip := h.ip(name, "many")
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s and %s both got %s", name, other, ip)
		}
		seen[ip] = name
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.try("rm", "-f", fmt.Sprintf("c%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	h.knit("network", "rm", "many")
	assertClean(t, h)
}

// assertClean checks that no container, network or knit object remains but
// the predefined networks.
func assertClean(t *testing.T, h *Host) {
	t.Helper()
	for _, l := range h.links() {
		if strings.HasPrefix(l, "knv") || (strings.HasPrefix(l, "kn-") && l != "knit0") {
			t.Errorf("link %s left behind", l)
		}
	}
	files, _ := os.ReadDir(filepath.Join(h.dir, "run", "netns"))
	for _, f := range files {
		t.Errorf("namespace file %s left behind", f.Name())
	}
	dirs, _ := os.ReadDir(filepath.Join(h.dir, "run", "containers"))
	for _, d := range dirs {
		t.Errorf("container state %s left behind", d.Name())
	}
	nets := h.knit("network", "ls", "-q")
	if strings.Fields(nets) == nil || strings.Join(strings.Fields(nets), ",") != "bridge,host,none" {
		t.Errorf("networks left: %q", nets)
	}
}

// procDead reports an error while pid is a live process; a zombie counts as
// dead, as it does for knitd.
func procDead(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// The state follows the command name, which may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return fmt.Errorf("malformed /proc/%d/stat: %q", pid, b)
	}
	if st := b[i+2]; st != 'Z' && st != 'X' {
		return fmt.Errorf("process %d is still in state %c", pid, st)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
