package nft

import (
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// newDataplane returns a Dataplane bound to ns, closed at cleanup.
func newDataplane(t testing.TB, ns *nstest.NS) *Dataplane {
	t.Helper()
	d, err := New(Options{NetNSPath: ns.Path})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func mustSync(t testing.TB, d *Dataplane, cfg Config) {
	t.Helper()
	if err := d.Sync(cfg); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// execIn runs a command inside ns (tests only: for looking at the kernel).
func execIn(ns *nstest.NS, name string, args ...string) ([]byte, error) {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
}

// nft runs the nft binary inside ns, for looking only.
func nft(t testing.TB, ns *nstest.NS, args ...string) string {
	t.Helper()
	out, err := execIn(ns, "nft", args...)
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

var (
	counterRE  = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	elementsRE = regexp.MustCompile(`elements = \{([^}]*)\}`)
)

// canonical makes nft listings comparable: counters zeroed (whatever
// traffic passed) and set elements sorted on one line (hash sets list in
// hash order).
func canonical(listing string) string {
	s := counterRE.ReplaceAllString(listing, "counter packets 0 bytes 0")
	return elementsRE.ReplaceAllStringFunc(s, func(m string) string {
		inner := elementsRE.FindStringSubmatch(m)[1]
		var elems []string
		for _, e := range strings.Split(inner, ",") {
			elems = append(elems, strings.TrimSpace(e))
		}
		slices.Sort(elems)
		return "elements = { " + strings.Join(elems, ", ") + " }"
	})
}

// listKnit is "nft list table inet knit", canonical.
func listKnit(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	return canonical(nft(t, ns, "list", "table", "inet", "knit"))
}

// hasTable reports whether ns has the table "family name".
func hasTable(t testing.TB, ns *nstest.NS, family, name string) bool {
	t.Helper()
	return strings.Contains(nft(t, ns, "list", "tables"), "table "+family+" "+name+"\n")
}

var handleRE = regexp.MustCompile(`(?m)^table inet knit \{ # handle (\d+)$`)

// tableHandle returns the kernel handle of table inet knit.
func tableHandle(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	m := handleRE.FindStringSubmatch(nft(t, ns, "-a", "list", "table", "inet", "knit"))
	if m == nil {
		t.Fatalf("no handle for table inet knit in %s", ns.Name)
	}
	return m[1]
}

// addForeignTable creates "table ip foreign" with a chain and one rule through the library, as another program would.
func addForeignTable(t testing.TB, ns *nstest.NS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "foreign", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("add foreign table: %v", err)
	}
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// sampleConfig has a dual-stack network, an internal one and a plain one,
// ports published on every address, on one address and on 127.0.0.1, a
// dual-stack service with a load balancer address and a node port, and a
// UDP service without endpoints.
func sampleConfig() Config {
	return Config{
		Networks: []Network{
			{Bridge: "kn-front", Subnets: pfx("10.1.0.0/24", "fd00:1::/64")},
			{Bridge: "kn-db", Subnets: pfx("10.2.0.0/24"), Internal: true},
			{Bridge: "kn-back", Subnets: pfx("10.3.0.0/24")},
		},
		Ports: []Port{
			{Proto: "tcp", HostPort: 8080, ContainerIP: addr("10.1.0.2"), ContainerPort: 80},
			{Proto: "tcp", HostPort: 8080, ContainerIP: addr("fd00:1::2"), ContainerPort: 80},
			{Proto: "udp", HostIP: addr("192.0.2.1"), HostPort: 5353, ContainerIP: addr("10.3.0.2"), ContainerPort: 53},
			{Proto: "sctp", HostIP: addr("2001:db8::1"), HostPort: 3868, ContainerIP: addr("fd00:1::3"), ContainerPort: 3868},
			{Proto: "tcp", HostIP: addr("127.0.0.1"), HostPort: 9000, ContainerIP: addr("10.1.0.3"), ContainerPort: 9000},
		},
		Services: []ServicePort{
			{Name: "default/web:http", VIPs: addrs("10.96.0.10", "fd00:96::10", "192.0.2.80"), Protocol: "tcp", Port: 80, NodePort: 30080,
				Backends: addrPorts("10.1.0.2:8080", "10.3.0.2:8080", "[fd00:1::2]:8080")},
			{Name: "default/dns:dns", VIPs: addrs("10.96.0.53"), Protocol: "udp", Port: 53},
		},
		ServiceRanges: pfx("10.96.0.0/16", "fd00:96::/112"),
	}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func addrPorts(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddrPort(a)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// addForeignForwardDrop creates "table ip foreign_fw" with an empty forward
// chain of policy drop, as a host firewall might, and returns its removal.
func addForeignForwardDrop(t testing.TB, ns *nstest.NS) (remove func()) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "foreign_fw", Family: nftables.TableFamilyIPv4})
	policy := nftables.ChainPolicyDrop
	c.AddChain(&nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	if err := c.Flush(); err != nil {
		t.Fatalf("add table ip foreign_fw: %v", err)
	}
	return func() {
		c.DelTable(tbl)
		if err := c.Flush(); err != nil {
			t.Fatalf("delete table ip foreign_fw: %v", err)
		}
	}
}
