package e2e

import (
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/miekg/dns"

	v1 "github.com/knit-net/knit/api/v1"
)

// networkView is what knit network inspect prints for one network.
type networkView struct {
	v1.Network
	Containers map[string]struct {
		Name      string   `json:"name"`
		Addresses []string `json:"addresses"`
	} `json:"containers"`
}

func (h *Host) inspectNetwork(name string) networkView {
	h.t.Helper()
	var vs []networkView
	must(h.t, json.Unmarshal([]byte(h.knit("network", "inspect", name)), &vs))
	return vs[0]
}

// TestCNIPlugin drives knit-cni through libcni, the library podman,
// containerd and CRI-O use, against knitd in the test host: two pods on a
// knit network reach each other by address and by name, a published port is
// reachable from outside, CHECK notices a veth deleted behind knit's back,
// and DEL is idempotent with or without a netns or a cached result.
func TestCNIPlugin(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "kc")
	n := h.inspectNetwork("kc")
	gw := n.Subnets[0].Gateway
	r := newCNIRuntime(t, h.conflist("kt-cni", "kc", "1.1.0"))

	a, b := newPod(t, "ctr-a", "alpha"), newPod(t, "ctr-b", "beta")
	b.caps["portMappings"] = []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}}
	resA, resB := r.mustAdd(a), r.mustAdd(b)

	// The result describes the interface, address, route and resolver.
	if resA.CNIVersion != "1.1.0" || len(resA.Interfaces) != 1 || resA.Interfaces[0].Name != "eth0" ||
		resA.Interfaces[0].Sandbox != a.Path || resA.Interfaces[0].Mac == "" {
		t.Fatalf("ADD result interfaces: %v", resA.Interfaces)
	}
	if len(resA.IPs) != 1 || resA.IPs[0].Interface == nil || *resA.IPs[0].Interface != 0 ||
		!n.Subnets[0].Subnet.Contains(addrOf(resA.IPs[0].Address.IP)) || resA.IPs[0].Gateway.String() != gw.String() {
		t.Fatalf("ADD result ips: %v (network %v)", resA.IPs, n.Subnets)
	}
	if len(resA.Routes) != 1 || resA.Routes[0].Dst.String() != "0.0.0.0/0" || resA.Routes[0].GW.String() != gw.String() {
		t.Fatalf("ADD result routes: %v", resA.Routes)
	}
	if !reflect.DeepEqual(resA.DNS.Nameservers, []string{gw.String()}) {
		t.Fatalf("ADD result dns: %+v, want the gateway %s", resA.DNS, gw)
	}
	ipA, ipB := resA.IPs[0].Address.IP.String(), resB.IPs[0].Address.IP.String()
	eth0, err := a.Netlink.LinkByName("eth0")
	must(t, err)
	if eth0.Attrs().HardwareAddr.String() != resA.Interfaces[0].Mac {
		t.Errorf("eth0 in pod a has MAC %s, the result says %s", eth0.Attrs().HardwareAddr, resA.Interfaces[0].Mac)
	}

	// They show in knit ps and knit network inspect, named after the pods.
	if got := h.cniContainers(); got["ctr-a"] != "alpha" || got["ctr-b"] != "beta" {
		t.Fatalf("knit ps: CNI containers %v, want ctr-a=alpha ctr-b=beta", got)
	}
	inspected := map[string]string{}
	for _, c := range h.inspectNetwork("kc").Containers {
		inspected[c.Name] = strings.Join(c.Addresses, ",")
	}
	if !strings.HasPrefix(inspected["alpha"], ipA+"/") || !strings.HasPrefix(inspected["beta"], ipB+"/") {
		t.Errorf("knit network inspect kc: %v", inspected)
	}

	// Real TCP between the pods, by address and by the name knit's
	// resolver (the gateway, from the result's DNS) gives.
	serveTCP(t, b.NS, ":8080", "beta")
	if got, err := podDial(t, a.NS, net.JoinHostPort(ipB, "8080")); err != nil || got != "hello from beta" {
		t.Fatalf("alpha -> beta %s:8080: %q %v", ipB, got, err)
	}
	if got := lookupFrom(t, a, gw.String(), "beta."); got != ipB {
		t.Fatalf("alpha resolves beta through %s as %q, want %s", gw, got, ipB)
	}
	// The published port, from outside the host.
	var line string
	h.Outside.Do(t, func() {
		c, err := net.DialTimeout("tcp", h.UplinkIP+":18080", 2*time.Second)
		if err == nil {
			b := make([]byte, 64)
			n, _ := c.Read(b)
			line = strings.TrimSpace(string(b[:n]))
			c.Close()
		}
	})
	if line != "hello from beta" {
		t.Fatalf("outside -> %s:18080 (beta's published 8080): %q", h.UplinkIP, line)
	}

	// CHECK passes; ADD again answers the same.
	must(t, r.check(a))
	again := r.mustAdd(a)
	if ja, jb := resultJSON(t, resA), resultJSON(t, again); ja != jb {
		t.Errorf("second ADD:\n%s\nfirst:\n%s", jb, ja)
	}
	// CHECK fails once the host veth is gone behind knit's back.
	veth := h.container("alpha").Endpoints[0].HostVeth
	l, err := h.NS.Netlink.LinkByName(veth)
	must(t, err)
	must(t, h.NS.Netlink.LinkDel(l))
	if err := r.check(a); err == nil || !strings.Contains(err.Error(), "knit CHECK") {
		t.Errorf("CHECK after deleting %s: %v", veth, err)
	}

	// DEL, twice; DEL with an empty netns; DEL without a cached result
	// (another runtime's cache); DEL of something never added.
	must(t, r.del(a.rt()))
	must(t, r.del(a.rt()))
	must(t, r.del(&libcni.RuntimeConf{ContainerID: b.id, IfName: "eth0"}))
	c := newPod(t, "ctr-c", "gamma")
	r.mustAdd(c)
	fresh := newCNIRuntime(t, h.conflist("kt-cni", "kc", "1.1.0"))
	must(t, fresh.del(c.rt()))
	must(t, r.del(&libcni.RuntimeConf{ContainerID: "never-added", IfName: "eth0", NetNS: "/run/netns/never"}))
	if got := h.cniContainers(); len(got) != 0 {
		t.Errorf("after DEL: CNI containers %v left", got)
	}
	if _, err := c.Netlink.LinkByName("eth0"); err == nil {
		t.Error("eth0 still in pod c after DEL")
	}
	if got, err := podDial(t, h.Outside, h.UplinkIP+":18080"); err == nil {
		t.Errorf("port 18080 still published after DEL: %q", got)
	}
	h.knit("network", "rm", "kc")
	assertClean(t, h)
}

// TestCNIGC adds three attachments and has a runtime that remembers none of
// them (empty cache) collect all but one.
func TestCNIGC(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "kc")
	h.knit("network", "create", "other")
	r := newCNIRuntime(t, h.conflist("kt-cni", "kc", "1.1.0"))
	keep, drop1, drop2 := newPod(t, "keep", "keep"), newPod(t, "drop1", ""), newPod(t, "drop2", "")
	for _, p := range []*pod{keep, drop1, drop2} {
		r.mustAdd(p)
	}
	// An attachment on another network is not this GC's to collect.
	elsewhere := newPod(t, "elsewhere", "elsewhere")
	newCNIRuntime(t, h.conflist("kt-other", "other", "1.1.0")).mustAdd(elsewhere)

	fresh := newCNIRuntime(t, h.conflist("kt-cni", "kc", "1.1.0"))
	ctx, cancel := ctx30()
	defer cancel()
	must(t, fresh.cfg.GCNetworkList(ctx, fresh.list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}}))
	got := h.cniContainers()
	if _, ok := got["keep"]; !ok || len(got) != 2 || got["elsewhere"] == "" {
		t.Fatalf("after GC: %v, want keep and elsewhere", got)
	}
	if _, err := drop1.Netlink.LinkByName("eth0"); err == nil {
		t.Error("GC left eth0 in drop1")
	}
	// STATUS through libcni (spec 1.1.0).
	must(t, fresh.cfg.GetStatusNetworkList(ctx, fresh.list))
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func resultJSON(t *testing.T, r *types100.Result) string {
	b, err := json.Marshal(r)
	must(t, err)
	return string(b)
}

// lookupFrom asks server for name's A record from inside the pod.
func lookupFrom(t *testing.T, p *pod, server, name string) string {
	t.Helper()
	var in *dns.Msg
	var err error
	p.Do(t, func() {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		in, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, net.JoinHostPort(server, "53"))
	})
	if err != nil {
		t.Fatalf("query %s at %s: %v", name, server, err)
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return dns.RcodeToString[in.Rcode]
}
