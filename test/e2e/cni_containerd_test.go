package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// containerd is a containerd 1.6 of the test's own: its root, state and
// socket are in a temporary directory and the CRI plugin is off, so it
// shares nothing with a containerd the machine may run.
type containerd struct {
	t       *testing.T
	address string
}

func startContainerd(t *testing.T) *containerd {
	t.Helper()
	requireTools(t, "containerd runc", "containerd", "ctr", "containerd-shim-runc-v2", "runc")
	keepTidy(t, "/run/containerd", "/var/lib/cni", "/run/runc")
	dir := t.TempDir()
	c := &containerd{t: t, address: filepath.Join(dir, "containerd.sock")}
	conf := filepath.Join(dir, "config.toml")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.address, c.address+".ttrpc")), 0o644))
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	must(t, err)
	cmd := exec.Command("containerd", "--config", conf)
	cmd.Stdout, cmd.Stderr = log, log
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("containerd log:\n%s", b)
		}
	})
	if !eventually(t, 30*time.Second, "containerd to answer", func() error { _, err := c.try("version"); return err }) {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("containerd did not come up:\n%s", b)
	}
	return c
}

// syncBuffer is a bytes.Buffer that a command writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (c *containerd) try(args ...string) (string, error) {
	return runTool(nil, 30*time.Second, "ctr", append([]string{"--address", c.address}, args...)...)
}

// TestCNIContainerd runs a container with ctr run --cni, which reads the
// first conflist in /etc/cni/net.d and plugins from /opt/cni/bin (neither
// can be moved), so knit cni install writes there and uninstall removes
// exactly that again. The container gets an address on the knit network;
// killing its task makes ctr call DEL with an empty netns, which cleans up.
func TestCNIContainerd(t *testing.T) {
	h := newHost(t)
	plugin, _ := knitCNI(t)
	c := startContainerd(t)
	rootfs := busyboxRootfs(t)
	h.knit("network", "create", "kctr")
	confBefore, _ := os.ReadDir("/etc/cni/net.d")
	_, optBefore := os.Stat("/opt/cni")

	// The installed plugin is a wrapper that records each call.
	dir := t.TempDir()
	calls, wrapper := filepath.Join(dir, "calls.log"), filepath.Join(dir, "knit-cni-recording")
	must(t, os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\necho \"$CNI_COMMAND netns=[$CNI_NETNS]\" >> %s\nGORACE=atexit_sleep_ms=0 exec %s \"$@\"\n", calls, plugin)), 0o755))
	manifests := filepath.Join(dir, "manifests")
	h.knit("cni", "install", "--network", "kctr", "--name", "kt-ctr", "--priority", "00", "--plugin", wrapper, "--manifest-dir", manifests)
	uninstalled := false
	uninstall := func() {
		if !uninstalled {
			uninstalled = true
			h.knit("cni", "uninstall", "--name", "kt-ctr", "--manifest-dir", manifests)
		}
	}
	t.Cleanup(uninstall)
	if files, _ := libcni.ConfFiles("/etc/cni/net.d", []string{".conf", ".conflist", ".json"}); len(files) == 0 || files[0] != "/etc/cni/net.d/00-knit-kctr.conflist" {
		t.Fatalf("ctr takes the first conflist in /etc/cni/net.d, and that is not knit's: %v", files)
	}

	var b [4]byte
	_, _ = rand.Read(b[:])
	id := "kt-ctr-" + hex.EncodeToString(b[:])
	var out syncBuffer
	run := exec.Command("ctr", "--address", c.address, "run", "--cni", "--rm", "--rootfs", rootfs, id,
		"/bin/sh", "-c", "ip -4 addr show eth0; exec sleep 600")
	run.Stdout, run.Stderr = &out, &out
	must(t, run.Start())
	exited := make(chan struct{})
	go func() { _ = run.Wait(); close(exited) }()
	t.Cleanup(func() {
		_, _ = c.try("task", "kill", "-s", "KILL", id)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = run.Process.Kill()
			<-exited
		}
		_, _ = c.try("container", "rm", id)
	})

	var name string
	if !eventually(t, 30*time.Second, "knit to show the attachment of "+id, func() error {
		if name = h.cniContainers()["default-"+id]; name == "" {
			return fmt.Errorf("not in knit ps; ctr says:\n%s", out.String())
		}
		return nil
	}) {
		t.FailNow()
	}
	ip := h.ip(name, "kctr")
	eventually(t, 10*time.Second, "the container to show "+ip+" on eth0", func() error {
		if !strings.Contains(out.String(), "inet "+ip+"/") {
			return fmt.Errorf("ctr says:\n%s", out.String())
		}
		return nil
	})

	_, err := c.try("task", "kill", "-s", "KILL", id)
	must(t, err)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("ctr run did not return after its task was killed:\n%s", out.String())
	}
	if got := h.cniContainers(); len(got) != 0 {
		t.Errorf("knit ps after the task was killed: %v", got)
	}
	if v := h.knitVeths(); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
	log, _ := os.ReadFile(calls)
	if !strings.Contains(string(log), "DEL netns=[]") {
		t.Errorf("ctr did not call DEL with an empty netns; calls:\n%s", log)
	}
	if ls, _ := c.try("container", "ls", "-q"); strings.Contains(ls, id) {
		t.Errorf("container %s still exists after ctr run --rm", id)
	}

	uninstall()
	confAfter, _ := os.ReadDir("/etc/cni/net.d")
	if !slices.EqualFunc(confBefore, confAfter, func(a, b os.DirEntry) bool { return a.Name() == b.Name() }) {
		t.Errorf("/etc/cni/net.d was %v before, %v after", confBefore, confAfter)
	}
	if _, err := os.Stat("/opt/cni"); (err == nil) != (optBefore == nil) {
		t.Errorf("/opt/cni existed before: %v, after: %v", optBefore == nil, err == nil)
	}
}
