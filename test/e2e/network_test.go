package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// TestDualStackMTUAndConnect: an IPv6-enabled network with a custom MTU;
// containers reach each other over IPv6; connect and disconnect at runtime
// add and remove an interface.
func TestDualStackMTUAndConnect(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "ds", "--ipv6", "--mtu", "1400", "--label", "tier=web")
	var nets []v1.Network
	must(t, json.Unmarshal([]byte(h.knit("network", "inspect", "ds")), &nets))
	if len(nets[0].Subnets) != 2 || !nets[0].Subnets[1].Subnet.Addr().Is6() || nets[0].Labels["tier"] != "web" {
		t.Fatalf("network ds: %+v", nets[0])
	}
	h.serve("a", "--network", "ds")
	h.serve("b", "--network", "ds")
	var v6 string
	for _, p := range h.container("b").Endpoints[0].Addresses {
		if p.Addr().Is6() {
			v6 = p.Addr().String()
		}
	}
	if out, ok := h.dial("a", "["+v6+"]:8080"); !ok {
		t.Fatalf("a → b over IPv6 [%s]: %s", v6, out)
	}

	// connect / disconnect at runtime.
	h.knit("network", "create", "extra")
	h.serve("c", "--network", "extra")
	target := h.ip("c", "extra") + ":8080"
	if _, ok := h.dial("a", target); ok {
		t.Fatal("a reaches c before being connected to extra")
	}
	h.knit("network", "connect", "extra", "a")
	if eps := h.container("a").Endpoints; len(eps) != 2 || eps[1].Interface != "eth1" {
		t.Fatalf("after connect: %+v", eps)
	}
	if out, ok := h.dial("a", target); !ok {
		t.Fatalf("a → c after connect: %s", out)
	}
	h.knit("network", "disconnect", "extra", "a")
	if _, ok := h.dial("a", target); ok {
		t.Fatal("a still reaches c after disconnect")
	}
	if dev := h.knit("exec", "a", "--", "cat", "/proc/net/dev"); strings.Contains(dev, "eth1") {
		t.Fatalf("eth1 still present after disconnect:\n%s", dev)
	}
}

// TestMTUApplied checks the container interface's MTU from inside.
func TestMTUApplied(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "small", "--mtu", "1280")
	h.knit("run", "-d", "--name", "m", "--network", "small", "--", "sleep", "300")
	pid := h.container("m").Status.Pid
	out, err := exec.Command("nsenter", "--target", itoa(pid), "--net", "--", "cat", "/proc/sys/net/ipv6/conf/eth0/mtu").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1280" {
		t.Fatalf("eth0 mtu inside the container: %q %v", out, err)
	}
}

// TestRemovalLeavesNothing: removing containers and networks leaves no link,
// namespace, state directory or nftables element behind.
func TestRemovalLeavesNothing(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "gone", "--subnet", "10.66.0.0/24")
	h.knit("network", "create", "gone2", "--internal")
	h.knit("run", "-d", "--name", "g1", "--network", "gone", "--network", "gone2", "--", "sleep", "300")
	h.knit("run", "-d", "--name", "g2", "--network", "container:g1", "--", "sleep", "300")
	h.knit("rm", "-f", "g2", "g1")
	if out := h.knit("network", "prune"); !strings.Contains(out, "gone") || !strings.Contains(out, "gone2") {
		t.Fatalf("prune removed %q", out)
	}
	assertClean(t, h)
	rules := h.nft("list", "table", "inet", "knit")
	if strings.Contains(rules, "10.66.0.0") || strings.Count(rules, `"kn-`) > 0 {
		t.Errorf("nftables still mentions removed networks:\n%s", rules)
	}
}

// TestCLIErrors: bad input through the CLI exits non-zero with a message
// that names the object and the fix, and changes nothing.
func TestCLIErrors(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "front", "--subnet", "10.1.0.0/24")
	before := h.knit("network", "ls")
	cases := map[string][]string{
		`--subnet "10.0.0.0/33" is not a valid CIDR`:              {"network", "create", "x", "--subnet", "10.0.0.0/33"},
		`overlaps network "front" (10.1.0.0/24)`:                  {"network", "create", "x", "--subnet", "10.1.0.128/25"},
		`gateway 10.9.1.1 is outside subnet 10.9.0.0/24`:          {"network", "create", "x", "--subnet", "10.9.0.0/24", "--gateway", "10.9.1.1"},
		`network "front" already exists`:                          {"network", "create", "front"},
		`network "nope" not found`:                                {"run", "--network", "nope", "--", "true"},
		`--ip 10.2.0.5 is outside the subnets`:                    {"run", "--network", "front", "--ip", "10.2.0.5", "--", "true"},
		`Linux interface names have at most 15`:                   {"network", "create", "x", "--bridge", "averyveryverylongname"},
		`command "no-such-command-knit" not found`:                {"run", "--name", "bad", "--", "no-such-command-knit"},
		`container "nope" not found`:                              {"rm", "nope"},
		`network "front" has containers attached (holder)`:        nil, // filled below
		`-o "yaml": unknown output format; use table or json`:     {"ps", "-o", "yaml"},
		`is predefined and cannot be removed`:                     {"network", "rm", "bridge"},
		`cannot reach knitd at /nonexistent.sock: is it running?`: {"--socket", "/nonexistent.sock", "ps"},
	}
	h.knit("run", "-d", "--name", "holder", "--network", "front", "--", "sleep", "300")
	cases[`network "front" has containers attached (holder)`] = []string{"network", "rm", "front"}
	for want, args := range cases {
		_, err := h.try(args...)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "exit status") {
			t.Errorf("knit %v: %v; want a non-zero exit saying %q", args, err, want)
		}
	}
	if after := h.knit("network", "ls"); after != before {
		t.Errorf("rejected commands changed the networks:\n%s\n%s", before, after)
	}
	if ps := h.knit("ps", "-a", "-q"); strings.TrimSpace(ps) != "holder" {
		t.Errorf("rejected runs left containers: %q", ps)
	}
}
