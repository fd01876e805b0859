package nft

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// Names of everything in knit's table. Chains are named after their hook
// (base chains) or their job (regular chains).
const (
	TableName = "knit"

	chainForward     = "forward"
	chainIsolate     = "isolate"
	chainPostrouting = "postrouting"
	chainMasquerade  = "masq"

	setBridges  = "bridges"          // ifname: every knit bridge
	setInternal = "internal_bridges" // ifname: bridges of internal networks
	setIntra    = "intra_bridge"     // ifname . ifname: "br" . "br" per bridge
	setMasq4    = "masq_v4"          // ipv4_addr interval: non-internal subnets
	setMasq6    = "masq_v6"          // ipv6_addr interval: non-internal subnets
)

var typeIfPair = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)

// ruleset is a rendered desired state: everything Sync writes, in order.
type ruleset struct {
	table  *nftables.Table
	sets   []setSpec
	chains []*nftables.Chain
	rules  []*nftables.Rule
}

type setSpec struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

func knitTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// render turns normalized networks into the full ruleset. It is pure: no
// kernel access, so it is cheap to test.
func render(nets []Network) *ruleset {
	t := knitTable()
	rs := &ruleset{table: t}

	var bridges, internal, intra []nftables.SetElement
	var masq4, masq6 []netip.Prefix
	for _, n := range nets {
		name := ifname(n.Bridge)
		bridges = append(bridges, nftables.SetElement{Key: name})
		intra = append(intra, nftables.SetElement{Key: concat(name, name)})
		if n.Internal {
			internal = append(internal, nftables.SetElement{Key: name})
			continue
		}
		for _, p := range n.Subnets {
			if p.Addr().Is4() {
				masq4 = append(masq4, p)
			} else {
				masq6 = append(masq6, p)
			}
		}
	}

	rs.sets = []setSpec{
		{set: &nftables.Set{Table: t, Name: setBridges, KeyType: nftables.TypeIFName}, elems: bridges},
		{set: &nftables.Set{Table: t, Name: setInternal, KeyType: nftables.TypeIFName}, elems: internal},
		{set: &nftables.Set{Table: t, Name: setIntra, KeyType: typeIfPair}, elems: intra},
		{set: &nftables.Set{Table: t, Name: setMasq4, KeyType: nftables.TypeIPAddr, Interval: true}, elems: intervalElems(masq4)},
		{set: &nftables.Set{Table: t, Name: setMasq6, KeyType: nftables.TypeIP6Addr, Interval: true}, elems: intervalElems(masq6)},
	}
	for i, s := range rs.sets {
		// A transaction-local ID, given here so that the library does not
		// draw one from its unsynchronised global counter.
		s.set.ID = uint32(i + 1)
		s.set.Comment = "knit"
		// Only for how nft prints elements: it shows ifname keys of sets
		// without a host byte order mark as "". (Interval sets are always
		// marked big endian by the library, which is right for addresses.)
		s.set.KeyByteOrder = binaryutil.NativeEndian
	}

	accept := nftables.ChainPolicyAccept
	forward := &nftables.Chain{
		Table: t, Name: chainForward, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	}
	isolate := &nftables.Chain{Table: t, Name: chainIsolate}
	postrouting := &nftables.Chain{
		Table: t, Name: chainPostrouting, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept,
	}
	masquerade := &nftables.Chain{Table: t, Name: chainMasquerade}
	rs.chains = []*nftables.Chain{forward, isolate, postrouting, masquerade}

	rs.rules = []*nftables.Rule{
		rule(forward, "knit: isolate networks", jump(chainIsolate)...),

		rule(isolate, "knit: traffic within one bridge is never isolated",
			join(ifPairLookup(setIntra), verdictReturn())...),
		rule(isolate, "knit: no traffic between knit networks",
			join(ifLookup(iif, setBridges), ifLookup(oif, setBridges), drop())...),
		rule(isolate, "knit: internal networks have no way out",
			join(ifLookup(iif, setInternal), drop())...),
		rule(isolate, "knit: internal networks have no way in",
			join(ifLookup(oif, setInternal), drop())...),

		rule(postrouting, "knit: masquerade egress of networks", jump(chainMasquerade)...),

		rule(masquerade, "knit: traffic into a knit bridge keeps its source",
			join(ifLookup(oif, setBridges), verdictReturn())...),
		rule(masquerade, "knit: masquerade IPv4 leaving a network",
			join(saddrLookup(4, setMasq4), masq())...),
		rule(masquerade, "knit: masquerade IPv6 leaving a network",
			join(saddrLookup(6, setMasq6), masq())...),
	}
	return rs
}

// elemCount is the number of set elements the ruleset holds.
func (rs *ruleset) elemCount() int {
	n := 0
	for _, s := range rs.sets {
		n += len(s.elems)
	}
	return n
}
