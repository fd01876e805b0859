package bridge_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/driver/bridge"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/testutil/nstest"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// env is a "host" namespace from nstest with a driver working in it, and a
// directory for container namespaces.
type env struct {
	t    testing.TB
	host *nstest.NS
	d    *bridge.Driver
	dir  string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	host := nstest.New(t, "br")
	d := bridge.New(bridge.Options{Handle: host.Netlink, HostNetNS: host.Path, Logger: testLogger(t)})
	t.Cleanup(func() { d.Close() })
	return &env{t: t, host: host, d: d, dir: t.TempDir()}
}

// container creates a container namespace file, deleted at cleanup.
func (e *env) container(name string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := netns.Create(p); err != nil {
		e.t.Fatalf("create netns %s: %v", name, err)
	}
	e.t.Cleanup(func() {
		if err := netns.Delete(p); err != nil {
			e.t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return p
}

// handle opens a netlink handle in a namespace file, closed at cleanup.
func (e *env) handle(path string) *netlink.Handle {
	e.t.Helper()
	h, err := netns.NetlinkHandle(path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(h.Close)
	return h
}

func (e *env) ensureNetwork(n *v1.Network) {
	e.t.Helper()
	if err := e.d.EnsureNetwork(n); err != nil {
		e.t.Fatalf("EnsureNetwork: %v", err)
	}
}

func (e *env) ensureEndpoint(ep driver.Endpoint) {
	e.t.Helper()
	if err := e.d.EnsureEndpoint(ep); err != nil {
		e.t.Fatalf("EnsureEndpoint: %v", err)
	}
}

// network returns a bridge network "kn-<id>" with the given "subnet gateway"
// pairs.
func network(id string, subnets ...string) *v1.Network {
	n := &v1.Network{ID: id, Name: "net-" + id, Driver: v1.DriverBridge, Bridge: "kn-" + id}
	for _, s := range subnets {
		sub, gw, _ := strings.Cut(s, " ")
		n.Subnets = append(n.Subnets, v1.Subnet{Subnet: netip.MustParsePrefix(sub), Gateway: netip.MustParseAddr(gw)})
	}
	return n
}

// endpoint returns an endpoint of n in netnsPath with the given addresses and,
// as default routes, the gateways of n.
func endpoint(n *v1.Network, veth, iface, netnsPath string, addrs ...string) driver.Endpoint {
	spec := &v1.Endpoint{Network: n.Name, NetworkID: n.ID, Interface: iface, HostVeth: veth}
	for _, a := range addrs {
		spec.Addresses = append(spec.Addresses, netip.MustParsePrefix(a))
	}
	if len(spec.Addresses) > 0 {
		spec.MAC = bridge.MACFromIP(spec.Addresses[0].Addr())
	}
	ep := driver.Endpoint{Network: n, Spec: spec, NetNSPath: netnsPath}
	for _, s := range n.Subnets {
		ep.Gateways = append(ep.Gateways, s.Gateway)
	}
	return ep
}

// addrsOf lists a link's addresses as prefixes, IPv6 link-local ones aside.
func addrsOf(t testing.TB, h *netlink.Handle, l netlink.Link) map[netip.Prefix]int {
	t.Helper()
	list, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Prefix]int{}
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		m[netip.PrefixFrom(ip, ones)] = a.Flags
	}
	return m
}

func link(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// watch records link, address and default-route notifications about the
// links with the given ifindexes in the namespace at path ("" for the
// caller's), until stop is called, which returns them. It returns once the
// links have been quiet for a moment, dropping what came before: some
// notifications of earlier changes come late, from the kernel's IPv6 work
// queue (shared by all namespaces, so busier on a loaded machine).
func watch(t testing.TB, path string, indexes ...int) (stop func() []string) {
	t.Helper()
	ns, err := vnetns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	done := make(chan struct{})
	lc, ac, rc := make(chan netlink.LinkUpdate, 64), make(chan netlink.AddrUpdate, 64), make(chan netlink.RouteUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(lc, done, netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrSubscribeWithOptions(ac, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteSubscribeWithOptions(rc, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	ours := map[int]bool{}
	for _, i := range indexes {
		ours[i] = true
	}
	var mu sync.Mutex
	var events []string
	last := time.Now()
	record := func(s string) { mu.Lock(); events, last = append(events, s), time.Now(); mu.Unlock() }
	go func() {
		for {
			select {
			case u, ok := <-lc:
				// AF_INET6 RTM_NEWLINKs report IPv6 protocol state, not the link.
				if ok && ours[u.Attrs().Index] && u.Family != unix.AF_INET6 {
					record(fmt.Sprintf("link %d %s flags %v", u.Header.Type, u.Attrs().Name, u.Attrs().Flags))
				}
			case u, ok := <-ac:
				if ok && ours[u.LinkIndex] && !u.LinkAddress.IP.IsLinkLocalUnicast() {
					record(fmt.Sprintf("addr new=%v %s", u.NewAddr, u.LinkAddress.String()))
				}
			case u, ok := <-rc:
				if ok && ours[u.LinkIndex] && (u.Dst == nil || u.Dst.IP.IsUnspecified()) {
					record(fmt.Sprintf("route %d %s", u.Type, u.Route))
				}
			case <-done:
				return
			}
		}
	}()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		quiet := time.Since(last) >= 50*time.Millisecond
		if quiet {
			events = nil
		}
		mu.Unlock()
		if quiet {
			break
		}
	}
	return func() []string {
		time.Sleep(100 * time.Millisecond) // let notifications arrive
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return events
	}
}

// testLogger logs through t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
