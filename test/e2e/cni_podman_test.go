package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// podman is podman 4.3 with the CNI backend, configured entirely through
// its own flags and a containers.conf of the test's (CONTAINERS_CONF), with
// storage, run state and network configs in temporary directories: the
// machine's configuration is not touched.
type podman struct {
	t      *testing.T
	env    []string
	global []string
	rootfs string
}

func newPodman(t *testing.T, pluginDir, confDir string) *podman {
	t.Helper()
	requireTools(t, "podman runc", "podman", "runc", "conmon")
	keepTidy(t, "/var/lib/cni", "/run/runc", "/run/libpod", "/run/containers")
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
`, pluginDir, confDir)), 0o644))
	p := &podman{
		t: t,
		// GORACE reaches knit-cni through podman's environment: a race-built
		// plugin would otherwise sleep a second at every exit.
		env:    []string{"CONTAINERS_CONF=" + conf, "GORACE=atexit_sleep_ms=0"},
		global: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp")},
		rootfs: busyboxRootfs(t),
	}
	t.Cleanup(func() { _, _ = p.try("rm", "-a", "-f", "-t", "0") })
	return p
}

func (p *podman) try(args ...string) (string, error) {
	return runTool(p.env, 60*time.Second, "podman", append(p.global, args...)...)
}

func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	must(p.t, err)
	return out
}

// TestCNIPodman runs two busybox containers with podman on a knit network
// installed by knit cni install: they resolve and reach each other by name
// through knit's resolver, -p publishes a port reachable from outside the
// host, and podman rm -f leaves no knit container behind.
func TestCNIPodman(t *testing.T) {
	h := newHost(t)
	knitCNI(t) // knit cni install copies knit-cni from next to knit
	h.knit("network", "create", "kpod")
	dir := t.TempDir()
	binDir, confDir, manifests := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d"), filepath.Join(dir, "manifests")
	h.knit("cni", "install", "--network", "kpod", "--name", "kt-knit", "--bin-dir", binDir, "--conf-dir", confDir, "--manifest-dir", manifests)
	p := newPodman(t, binDir, confDir)

	if out := p.run("network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, "kt-knit knit") {
		t.Fatalf("podman network ls does not list the installed conflist:\n%s", out)
	}
	serve := func(name string, flags ...string) {
		args := append([]string{"run", "-d", "--name", name, "--network", "kt-knit"}, flags...)
		p.run(append(args, "--rootfs", p.rootfs, "/bin/sh", "-c",
			// The rootfs directory is shared: each serves its own docroot.
			"mkdir -p /tmp/"+name+"; echo hello from "+name+" > /tmp/"+name+"/index.html; exec httpd -f -p 8080 -h /tmp/"+name)...)
	}
	serve("web", "-p", "18082:8080")
	serve("app")
	if got := h.cniContainers(); len(got) != 2 || !containsValue(got, "web") || !containsValue(got, "app") {
		t.Fatalf("knit ps after podman run: CNI containers %v, want web and app", got)
	}
	ips := map[string]string{"web": h.ip("web", "kpod"), "app": h.ip("app", "kpod")}
	// podman made the namespaces in the machine's root namespace; knitd put
	// the host ends of the veths in its own (the test host), by path.
	if v := h.knitVeths(); len(v) != 2 {
		t.Errorf("knit veths in the test host: %v, want web's and app's", v)
	}
	if v := rootKnitVeths(t); len(v) != 0 {
		t.Errorf("knit veths in the root namespace: %v", v)
	}

	// Each finds the other by name (podman's resolv.conf lists the result's
	// DNS server, knit's resolver) and fetches from it.
	for from, to := range map[string]string{"web": "app", "app": "web"} {
		var out string
		if !eventually(t, 20*time.Second, from+" to fetch from "+to+" by name", func() error {
			var err error
			out, err = p.try("exec", from, "/bin/sh", "-c", "nslookup "+to+"; timeout 3 wget -q -O - http://"+to+":8080/index.html")
			if err == nil && !strings.Contains(out, "hello from "+to) {
				err = fmt.Errorf("no greeting:\n%s", out)
			}
			return err
		}) {
			t.FailNow()
		}
		if !strings.Contains(out, "Address: "+ips[to]) {
			t.Errorf("%s resolved %s to something other than %s:\n%s", from, to, ips[to], out)
		}
	}
	// A container that comes and goes (--rm) is attached and detached too.
	if out, err := p.try("run", "--rm", "--name", "client", "--network", "kt-knit", "--rootfs", p.rootfs,
		"/bin/sh", "-c", "timeout 3 wget -q -O - http://web:8080/index.html"); err != nil || !strings.Contains(out, "hello from web") {
		t.Errorf("podman run --rm client -> web: %v\n%s", err, out)
	}

	// -p 18082:8080 from the outside namespace, at the host's uplink address.
	var got string
	h.Outside.Do(t, func() {
		c, err := net.DialTimeout("tcp", h.UplinkIP+":18082", 2*time.Second)
		if err != nil {
			got = err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /index.html HTTP/1.0\r\n\r\n")
		b := make([]byte, 512)
		n, _ := c.Read(b)
		for n > 0 && !strings.Contains(string(b[:n]), "hello from web") {
			m, err := c.Read(b[n:])
			if err != nil {
				break
			}
			n += m
		}
		got = string(b[:n])
	})
	if !strings.Contains(got, "hello from web") {
		t.Errorf("outside -> %s:18082: %q", h.UplinkIP, got)
	}

	// podman rm -f: DEL, and knit forgets the containers and their veths.
	p.run("rm", "-f", "-t", "0", "web", "app")
	if got := h.cniContainers(); len(got) != 0 {
		t.Errorf("knit ps after podman rm -f: %v", got)
	}
	if v := h.knitVeths(); len(v) != 0 {
		t.Errorf("veths left after podman rm -f: %v", v)
	}
	out := h.knit("cni", "uninstall", "--name", "kt-knit", "--manifest-dir", manifests)
	// Only podman's own lock file is left in the conf dir.
	if files := filesUnder(dir); len(files) != 1 || files[0] != filepath.Join(confDir, "cni.lock") {
		t.Errorf("knit cni uninstall left %v (it said:\n%s)", files, out)
	}
}

func rootKnitVeths(t *testing.T) []string {
	ls, err := netlink.LinkList()
	must(t, err)
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, "knv") {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
