package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestConnectivityMatrix is the seeds' scenario: frontend and an internal
// backend; web on both, app and db on backend, x on frontend only.
func TestConnectivityMatrix(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "frontend")
	h.knit("network", "create", "backend", "--internal")
	h.serve("web", "--network", "frontend", "--network", "backend")
	h.serve("app", "--network", "backend")
	h.serve("db", "--network", "backend")
	h.serve("x", "--network", "frontend")

	cases := []struct {
		from, to, network string
		want              bool
	}{
		{"app", "db", "backend", true},
		{"db", "app", "backend", true},
		{"web", "db", "backend", true},
		{"app", "web", "backend", true},
		{"web", "x", "frontend", true},
		{"x", "web", "frontend", true},
		{"x", "app", "backend", false}, // different networks
		{"x", "db", "backend", false},
		{"app", "x", "frontend", false},
	}
	for _, tc := range cases {
		addr := h.ip(tc.to, tc.network) + ":8080"
		out, ok := h.dial(tc.from, addr)
		if ok != tc.want {
			t.Errorf("%s → %s (%s): reached=%v, want %v (%s)", tc.from, tc.to, addr, ok, tc.want, out)
		}
		if ok && !strings.Contains(out, h.container(tc.to).Hostname) {
			t.Errorf("%s → %s: answer %q is not from %s", tc.from, tc.to, out, tc.to)
		}
	}

	// Egress: frontend containers go out masqueraded as the host; backend is
	// internal and goes nowhere.
	for _, tc := range []struct {
		from string
		want bool
	}{{"x", true}, {"web", true}, {"app", false}, {"db", false}} {
		out, ok := h.dial(tc.from, h.OutsideAddr)
		if ok != tc.want {
			t.Errorf("%s → outside: reached=%v, want %v (%s)", tc.from, ok, tc.want, out)
		}
		if ok && !strings.Contains(out, "outside "+h.UplinkIP+":") {
			t.Errorf("%s → outside: the server saw %q, want the host's uplink address %s (masquerade)", tc.from, out, h.UplinkIP)
		}
	}
}

func TestHostAndNoneModes(t *testing.T) {
	h := newHost(t)
	h.knit("run", "-d", "--name", "h", "--network", "host", "--", "sleep", "300")
	dev := h.knit("exec", "h", "--", "cat", "/proc/net/dev")
	if !strings.Contains(dev, "kt-up") {
		t.Errorf("host-mode container does not see the host's interfaces:\n%s", dev)
	}
	h.knit("run", "-d", "--name", "n", "--network", "none", "--", "sleep", "300")
	dev = h.knit("exec", "n", "--", "cat", "/proc/net/dev")
	var ifaces []string
	for _, line := range strings.Split(dev, "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	if strings.Join(ifaces, ",") != "lo" {
		t.Errorf("none-mode container has interfaces %v, want only lo", ifaces)
	}
	route := h.knit("exec", "n", "--", "cat", "/proc/net/route")
	if strings.Count(strings.TrimSpace(route), "\n") != 0 {
		t.Errorf("none-mode container has routes:\n%s", route)
	}
}

func TestPodSharesNamespace(t *testing.T) {
	h := newHost(t)
	h.serve("pod")
	// A second container in pod's namespace reaches pod's server on localhost.
	out := h.knit("run", "--name", "side", "--network", "container:pod", "--", bins.probe, "dial", "127.0.0.1:8080")
	if !strings.Contains(out, h.container("pod").Hostname) {
		t.Fatalf("sidecar on localhost got %q", out)
	}
	// Its own hostname and files are its own.
	if got := strings.TrimSpace(h.knit("run", "--network", "container:pod", "--hostname", "sidecar", "--", "cat", "/etc/hostname")); got != "sidecar" {
		t.Fatalf("sidecar hostname = %q", got)
	}
}

func TestContainerFiles(t *testing.T) {
	h := newHost(t)
	h.knit("run", "-d", "--name", "files", "--hostname", "web.example", "--", "sleep", "300")
	ip := h.ip("files", "bridge")
	hosts := h.knit("exec", "files", "--", "cat", "/etc/hosts")
	if !strings.Contains(hosts, ip+"\tweb.example files") || !strings.Contains(hosts, "127.0.0.1\tlocalhost") {
		t.Errorf("/etc/hosts:\n%s", hosts)
	}
	if got := strings.TrimSpace(h.knit("exec", "files", "--", "hostname")); got != "web.example" {
		t.Errorf("hostname = %q", got)
	}
	if got := h.knit("exec", "files", "--", "cat", "/etc/resolv.conf"); strings.Contains(got, "nameserver 127.") {
		t.Errorf("resolv.conf keeps a loopback name server:\n%s", got)
	}
}

func TestExitedContainerReleasesAddress(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "tiny", "--subnet", "10.55.0.0/30") // one usable address
	if _, err := h.try("run", "--name", "once", "--network", "tiny", "--", "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("knit run of a command exiting 3: %v, want exit status 3", err)
	}
	c := h.container("once")
	if c.Status.State != "exited" || c.Status.ExitCode != 3 || len(c.Endpoints[0].Addresses) != 0 {
		t.Fatalf("after exit: state %s code %d addresses %v", c.Status.State, c.Status.ExitCode, c.Endpoints[0].Addresses)
	}
	// The address is free again: a new container gets it.
	h.knit("run", "-d", "--name", "next", "--network", "tiny", "--", "sleep", "300")
	if got := h.ip("next", "tiny"); got != "10.55.0.2" {
		t.Fatalf("next container got %s, want the released 10.55.0.2", got)
	}
	_, err := h.try("run", "-d", "--network", "tiny", "--", "sleep", "300")
	if err == nil || !strings.Contains(err.Error(), `network "tiny": no free address`) {
		t.Fatalf("exhausted network: %v", err)
	}
	if !strings.Contains(h.knit("ps", "-a"), "exited (3)") {
		t.Errorf("ps -a does not show the exited container")
	}
	h.knit("stop", "-t", "1", "next")
	if st := h.container("next").Status.State; st != "exited" {
		t.Errorf("after stop: %s", st)
	}
	eventually(t, 10*time.Second, "every veth to go after every container exited", func() error {
		if v := h.knitVeths(); len(v) > 0 {
			return fmt.Errorf("veths left: %v", v)
		}
		return nil
	})
}
