// Package networks is the data-plane feature of knit's bridge networks:
// containers of different networks cannot reach each other, internal
// networks reach nothing beyond their own bridge and nothing reaches them,
// and traffic leaving a non-internal network is masqueraded.
//
// Design notes:
//
//   - Rules never grow with the number of networks: bridges and subnets
//     are elements of sets ("bridges", "internal_bridges", "masq_v4",
//     "masq_v6").
//   - nftables cannot compare iifname with oifname. "Same bridge" is a
//     lookup of "iifname . oifname" in a hash set holding "br" . "br" for
//     every bridge ("intra_bridge").
//   - Masquerade skips everything leaving through any knit bridge, then
//     masquerades sources in the non-internal subnets. Docker's rule is
//     "! -o own-bridge"; the difference (traffic from network X into bridge
//     Y) is traffic the forward chain already drops. The exact form needs an
//     "ip saddr . oifname" set with intervals (a pipapo set), which measured
//     36 ms per sync at 100 networks against 2 ms for this one.
//   - DNATed traffic (published ports, services) crosses networks: the
//     isolate chain returns for it before the network checks.
//
// Other features use SetBridges and SetIntra (published ports' hairpin,
// network policy of pods talking to the host).
package networks

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// Sets and chains of the feature.
const (
	SetBridges  = "bridges"          // ifname: every knit bridge
	SetInternal = "internal_bridges" // ifname: bridges of internal networks
	SetIntra    = "intra_bridge"     // ifname . ifname: "br" . "br" per bridge
	setMasq4    = "masq_v4"          // ipv4_addr interval: non-internal subnets
	setMasq6    = "masq_v6"          // ipv6_addr interval: non-internal subnets

	chainIsolate = "isolate"
	chainMasq    = "masq"
)

// Order of the feature's rules in the forward and postrouting hooks:
// after the services' refusals (forward) and published ports' hairpin
// (postrouting), before network policy.
const hookOrder = 20

// Network is the data plane's view of one bridge network: only what the
// ruleset depends on.
type Network struct {
	// Bridge is the kernel bridge's name (at most 15 bytes).
	Bridge string
	// Subnets are the network's address ranges, IPv4 and/or IPv6.
	Subnets []netip.Prefix
	// Internal networks neither reach nor are reached from any interface
	// other than their own bridge, and are never masqueraded.
	Internal bool
}

// FromNetworks converts the API's networks, keeping only networks with
// driver "bridge" (host, none and other drivers have no part in the table).
func FromNetworks(nets []v1.Network) []Network {
	var out []Network
	for _, n := range nets {
		if n.Driver != v1.DriverBridge {
			continue
		}
		dn := Network{Bridge: n.Bridge, Internal: n.Internal}
		for _, s := range n.Subnets {
			dn.Subnets = append(dn.Subnets, s.Subnet)
		}
		out = append(out, dn)
	}
	return out
}

// Feature keeps the networks in the table. Safe for concurrent use.
type Feature struct {
	*nft.Static
	bridges, internal, intra *nft.KeyedSet
	masq4, masq6             *nft.IntervalSet
	nets                     []Network
}

var _ nft.Feature = (*Feature)(nil)

// New returns the feature with no networks.
func New() *Feature {
	f := &Feature{
		bridges: nft.NewKeyedSet(SetBridges), internal: nft.NewKeyedSet(SetInternal), intra: nft.NewKeyedSet(SetIntra),
		masq4: nft.NewIntervalSet(setMasq4), masq6: nft.NewIntervalSet(setMasq6),
	}
	f.Static = nft.NewStatic("networks", shape, f.bridges, f.internal, f.intra, f.masq4, f.masq6)
	return f
}

// Set replaces the networks. An invalid network changes nothing; the
// error names it.
func (f *Feature) Set(nets []Network) error {
	norm, err := Normalize(nets)
	if err != nil {
		return err
	}
	f.Lock()
	defer f.Unlock()
	want := map[string]bool{}
	var masq4, masq6 []netip.Prefix
	for _, n := range norm {
		name := exprs.IfName(n.Bridge)
		want[string(name)] = true
		f.bridges.Put(nftables.SetElement{Key: name})
		f.intra.Put(nftables.SetElement{Key: exprs.Concat(name, name)})
		if n.Internal {
			f.internal.Put(nftables.SetElement{Key: name})
			continue
		}
		f.internal.Delete(name)
		for _, p := range n.Subnets {
			if p.Addr().Is4() {
				masq4 = append(masq4, p)
			} else {
				masq6 = append(masq6, p)
			}
		}
	}
	for _, n := range f.nets {
		if name := exprs.IfName(n.Bridge); !want[string(name)] {
			f.bridges.Delete(name)
			f.internal.Delete(name)
			f.intra.Delete(exprs.Concat(name, name))
		}
	}
	f.masq4.Set(exprs.IntervalElems(masq4))
	f.masq6.Set(exprs.IntervalElems(masq6))
	f.nets = norm
	return nil
}

// Normalize validates networks and returns a copy sorted by bridge name,
// with subnets masked, de-duplicated and sorted.
func Normalize(in []Network) ([]Network, error) {
	out := make([]Network, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, n := range in {
		if n.Bridge == "" {
			return nil, fmt.Errorf("network with subnets %v: bridge name is empty; every bridge network needs one", n.Subnets)
		}
		if len(n.Bridge) > exprs.MaxIfNameLen {
			return nil, fmt.Errorf("bridge %q: name is %d bytes, longer than the kernel's limit of %d", n.Bridge, len(n.Bridge), exprs.MaxIfNameLen)
		}
		if seen[n.Bridge] {
			return nil, fmt.Errorf("bridge %q: listed by two networks; a bridge belongs to one network", n.Bridge)
		}
		seen[n.Bridge] = true
		subnets := make([]netip.Prefix, 0, len(n.Subnets))
		for _, p := range n.Subnets {
			if !p.IsValid() {
				return nil, fmt.Errorf("bridge %q: subnet %v is not a valid prefix", n.Bridge, p)
			}
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("bridge %q: subnet %v is IPv4-mapped IPv6; give it in IPv4 form", n.Bridge, p)
			}
			subnets = append(subnets, p.Masked())
		}
		slices.SortFunc(subnets, exprs.ComparePrefix)
		n.Subnets = slices.Compact(subnets)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Network) int { return cmp.Compare(a.Bridge, b.Bridge) })
	return out, nil
}

// shape is the feature's sets, chains and hook rules; they do not depend
// on the networks.
var shape = func() *nft.Shape {
	set := func(name string, key nftables.SetDatatype, interval bool) nft.SetSpec {
		// KeyByteOrder only changes how nft prints elements: it shows
		// ifname keys of sets without a host byte order mark as "".
		return nft.SetSpec{Set: &nftables.Set{Name: name, KeyType: key, Interval: interval, KeyByteOrder: binaryutil.NativeEndian}}
	}
	r := func(comment string, e ...[]expr.Any) nft.Rule {
		return nft.Rule{Comment: comment, Exprs: exprs.Join(e...)}
	}
	return &nft.Shape{
		Sets: []nft.SetSpec{
			set(SetBridges, nftables.TypeIFName, false),
			set(SetInternal, nftables.TypeIFName, false),
			set(SetIntra, exprs.TypeIfPair, false),
			set(setMasq4, nftables.TypeIPAddr, true),
			set(setMasq6, nftables.TypeIP6Addr, true),
		},
		Chains: []nft.ChainSpec{
			{Name: chainIsolate, Rules: []nft.Rule{
				r("knit: traffic within one bridge is never isolated", exprs.IfPairLookup(SetIntra), exprs.Return()),
				r("knit: internal networks have no way out", exprs.IfLookup(exprs.IIF, SetInternal), exprs.Drop()),
				r("knit: internal networks have no way in", exprs.IfLookup(exprs.OIF, SetInternal), exprs.Drop()),
				r("knit: published ports are reachable from other networks", exprs.CtStatusDNAT(), exprs.Return()),
				r("knit: no traffic between knit networks",
					exprs.IfLookup(exprs.IIF, SetBridges), exprs.IfLookup(exprs.OIF, SetBridges), exprs.Drop()),
			}},
			{Name: chainMasq, Rules: []nft.Rule{
				r("knit: traffic into a knit bridge keeps its source", exprs.IfLookup(exprs.OIF, SetBridges), exprs.Return()),
				r("knit: masquerade IPv4 leaving a network", exprs.SaddrLookup(4, setMasq4), exprs.Masq()),
				r("knit: masquerade IPv6 leaving a network", exprs.SaddrLookup(6, setMasq6), exprs.Masq()),
			}},
		},
		Hooks: []nft.HookRule{
			{Hook: nft.HookForward, Order: hookOrder, Rule: r("knit: isolate networks", exprs.Jump(chainIsolate))},
			{Hook: nft.HookPostrouting, Order: hookOrder, Rule: r("knit: masquerade egress of networks", exprs.Jump(chainMasq))},
		},
	}
}()
