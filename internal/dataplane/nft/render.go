package nft

import (
	"net/netip"
	"reflect"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Names of everything in knit's table. Chains are named after their hook
// (base chains) or their job (regular chains).
const (
	TableName = "knit"

	chainRawPrerouting = "raw_prerouting"
	chainGuard         = "guard"
	chainPrerouting    = "prerouting"
	chainOutput        = "output"
	chainPorts         = "ports"
	chainForward       = "forward"
	chainIsolate       = "isolate"
	chainPostrouting   = "postrouting"
	chainHairpin       = "hairpin"
	chainMasquerade    = "masq"

	setBridges  = "bridges"          // ifname: every knit bridge
	setInternal = "internal_bridges" // ifname: bridges of internal networks
	setIntra    = "intra_bridge"     // ifname . ifname: "br" . "br" per bridge
	setMasq4    = "masq_v4"          // ipv4_addr interval: non-internal subnets
	setMasq6    = "masq_v6"          // ipv6_addr interval: non-internal subnets

	mapPorts4    = "ports_v4"     // daddr . l4proto . dport : container addr . port
	mapPortsAny4 = "ports_any_v4" // l4proto . dport : container addr . port
	mapPorts6    = "ports_v6"
	mapPortsAny6 = "ports_any_v6"
)

var (
	typeIfPair    = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)
	typeProtoPort = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeAddrPort4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	typeAddrPort6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
	typePortKey4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typePortKey6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

// ruleset is a rendered desired state: everything Sync writes, in order.
type ruleset struct {
	table  *nftables.Table
	sets   []setSpec
	chains []*nftables.Chain
	rules  []*nftables.Rule
	// svcKey is the shape the service chains were rendered for.
	svcKey svcShapeKey
	// pol is the network policy the policy sets hold (see policy.go).
	pol *polState
}

type setSpec struct {
	set   *nftables.Set
	elems []nftables.SetElement
	owner setOwner
	svc   svcSet // which service set, for owner ownServices
}

// setOwner says where a set's elements come from, which decides how a sync
// writes them.
type setOwner int

const (
	// ownConfig: rendered from the config every sync; partial syncs send
	// the difference from the last one.
	ownConfig setOwner = iota
	// ownServices: from service ports; the svcState keeps them between
	// syncs and hands out differences (elems is filled for full syncs
	// only).
	ownServices
	// ownLearned: added by the packet path (affinity); never flushed,
	// pruned of what no longer applies (see affinity.go).
	ownLearned
	// ownPolicy: from the compiled network policy (ruleset.pol); partial
	// syncs diff it against the last one (elems is filled for full syncs
	// only, see policy.go).
	ownPolicy
)

func knitTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// render turns a normalized config into the full ruleset, every element
// included. It is pure: no kernel access, so it is cheap to test. Sync
// uses renderTable with the service state it keeps instead.
func render(cfg Config) *ruleset {
	p, err := planServices(cfg, nil)
	if err != nil {
		panic("render of an invalid config: " + err.Error())
	}
	p.apply()
	rs := renderTable(cfg, p.st, nil)
	rs.fillServices(p.st)
	rs.fillPolicy()
	return rs
}

// renderTable renders the ruleset for a normalized config and the service
// ports in st, without the elements of the service sets (fillServices adds
// them for a full sync). The chains and rules of prev are reused when the
// service chains' shape is the same: they are static otherwise.
func renderTable(cfg Config, st *svcState, prev *ruleset) *ruleset {
	t := knitTable()
	rs := &ruleset{table: t}

	var bridges, internal, intra []nftables.SetElement
	var masq4, masq6 []netip.Prefix
	for _, n := range cfg.Networks {
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
	for _, s := range rs.sets {
		// Only for how nft prints elements: it shows ifname keys of sets
		// without a host byte order mark as "". (Interval sets are always
		// marked big endian by the library, which is right for addresses.)
		s.set.KeyByteOrder = binaryutil.NativeEndian
	}
	pm := renderPortElems(cfg.Ports)
	rs.sets = append(rs.sets,
		setSpec{set: portMap(t, mapPorts4, typePortKey4, typeAddrPort4), elems: pm.v4},
		setSpec{set: portMap(t, mapPortsAny4, typeProtoPort, typeAddrPort4), elems: pm.any4},
		setSpec{set: portMap(t, mapPorts6, typePortKey6, typeAddrPort6), elems: pm.v6},
		setSpec{set: portMap(t, mapPortsAny6, typeProtoPort, typeAddrPort6), elems: pm.any6},
	)
	rs.sets = append(rs.sets, svcSetSpecs(t, cfg.ServiceRanges)...)
	if rs.pol = newPolState(cfg.Policy); rs.pol != nil {
		rs.sets = append(rs.sets, policySetSpecs(t)...)
	}
	for i, s := range rs.sets {
		// A transaction-local ID, given here so that the library does not
		// draw one from its unsynchronised global counter.
		s.set.ID = uint32(i + 1)
		s.set.Comment = "knit"
	}

	if st == nil {
		st = newSvcState()
	}
	rs.svcKey = st.shape.key()
	if prev != nil && reflect.DeepEqual(prev.svcKey, rs.svcKey) && (prev.pol == nil) == (rs.pol == nil) {
		rs.chains, rs.rules = prev.chains, prev.rules
		return rs
	}
	rs.chains, rs.rules = renderChains(t)
	chains, rules := renderSvcChains(t, rs.svcKey)
	rs.chains = append(rs.chains, chains...)
	rs.rules = append(rs.rules, rules...)
	if rs.pol != nil {
		chains, rules := renderPolicyChains(t, rs.chains)
		rs.chains = append(rs.chains, chains...)
		rs.rules = append(rs.rules, rules...)
	}
	return rs
}

// dropServiceElems forgets the elements of the service sets after a full
// sync: the svcState has them.
func (rs *ruleset) dropServiceElems() {
	for i := range rs.sets {
		if s := &rs.sets[i]; s.owner == ownServices {
			s.elems = nil
		}
	}
}

// fillServices puts every element of st into the service sets.
func (rs *ruleset) fillServices(st *svcState) {
	all := st.materialize()
	for i := range rs.sets {
		if s := &rs.sets[i]; s.owner == ownServices {
			s.elems = all[s.svc]
		}
	}
}

// portMap is a DNAT map of published ports. Its keys and values hold
// addresses and ports, which nft prints in network byte order.
func portMap(t *nftables.Table, name string, key, val nftables.SetDatatype) *nftables.Set {
	return &nftables.Set{Table: t, Name: name, IsMap: true, KeyType: key, DataType: val,
		KeyByteOrder: binaryutil.BigEndian}
}

// elemCount is the number of set elements the ruleset holds.
func (rs *ruleset) elemCount() int {
	n := 0
	for _, s := range rs.sets {
		n += len(s.elems)
	}
	return n
}

// renderChains returns knit's chains and their rules. They do not depend on
// the config: everything that changes lives in sets and maps, so the number
// of rules is the same for no networks and ports or for thousands.
func renderChains(t *nftables.Table) ([]*nftables.Chain, []*nftables.Rule) {
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		accept := nftables.ChainPolicyAccept
		return &nftables.Chain{Table: t, Name: name, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	regular := func(name string) *nftables.Chain { return &nftables.Chain{Table: t, Name: name} }

	rawPrerouting := base(chainRawPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	guard := regular(chainGuard)
	prerouting := base(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	output := base(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	services := regular(chainServices)
	ports := regular(chainPorts)
	input := base(chainInput, nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
	forward := base(chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	filterOut := base(chainFilterOut, nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)
	svcCheck := regular(chainSvcCheck)
	svcReject := regular(chainSvcReject)
	isolate := regular(chainIsolate)
	postrouting := base(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	hairpin := regular(chainHairpin)
	masquerade := regular(chainMasquerade)
	// In the order a packet meets them (nft lists chains in creation
	// order); the service count chains follow (renderSvcChains).
	chains := []*nftables.Chain{rawPrerouting, guard, prerouting, output, services, ports,
		input, forward, filterOut, svcCheck, svcReject, isolate, postrouting, hairpin, masquerade}

	loopback4 := []byte{127}
	loopback6 := netip.IPv6Loopback().AsSlice()
	rules := []*nftables.Rule{
		rule(rawPrerouting, "knit: guard the loopback range", jump(chainGuard)...),
		rule(guard, "knit: 127.0.0.0/8 arrives on lo only (CVE-2020-8558)",
			join(netHeaderIs(4, ip4Daddr, 1, loopback4), iifNameIsNot("lo"), drop())...),

		rule(prerouting, "knit: services", jump(chainServices)...),
		rule(prerouting, "knit: published ports", jump(chainPorts)...),
		rule(output, "knit: services, from the host itself", jump(chainServices)...),
		rule(output, "knit: published ports, from the host itself", jump(chainPorts)...),
		rule(ports, "knit: published ports answer on the host's own addresses only",
			join(fibType(false, expr.CmpOpNeq), verdictReturn())...),
		rule(ports, "knit: ::1 cannot be DNATed (no route_localnet for IPv6)",
			join(netHeaderIs(6, ip6Daddr, 16, loopback6), verdictReturn())...),
		rule(ports, "knit: IPv4 ports published on one host address", dnatMap(4, true, mapPorts4)...),
		rule(ports, "knit: IPv4 ports published on every host address", dnatMap(4, false, mapPortsAny4)...),
		rule(ports, "knit: IPv6 ports published on one host address", dnatMap(6, true, mapPorts6)...),
		rule(ports, "knit: IPv6 ports published on every host address", dnatMap(6, false, mapPortsAny6)...),

		rule(input, "knit: refuse what no service port took", join(ctStateNew(), jump(chainSvcCheck))...),
		rule(forward, "knit: refuse what no service port took", join(ctStateNew(), jump(chainSvcCheck))...),
		rule(forward, "knit: isolate networks", jump(chainIsolate)...),
		rule(filterOut, "knit: refuse what no service port took", join(ctStateNew(), jump(chainSvcCheck))...),
		rule(isolate, "knit: traffic within one bridge is never isolated",
			join(ifPairLookup(setIntra), verdictReturn())...),
		rule(isolate, "knit: internal networks have no way out",
			join(ifLookup(iif, setInternal), drop())...),
		rule(isolate, "knit: internal networks have no way in",
			join(ifLookup(oif, setInternal), drop())...),
		rule(isolate, "knit: published ports are reachable from other networks",
			join(ctStatusDNAT(), verdictReturn())...),
		rule(isolate, "knit: no traffic between knit networks",
			join(ifLookup(iif, setBridges), ifLookup(oif, setBridges), drop())...),

		rule(postrouting, "knit: hairpin to published ports", jump(chainHairpin)...),
		rule(postrouting, "knit: masquerade egress of networks", jump(chainMasquerade)...),
		rule(hairpin, "knit: DNATed traffic routed back into the bridge it came from",
			join(ctStatusDNAT(), ifPairLookup(setIntra), masq())...),
		rule(hairpin, "knit: DNATed traffic br_netfilter bridged back into its bridge",
			join(ctStatusDNAT(), noIif(), ifLookup(oif, setBridges), fibType(true, expr.CmpOpNeq), masq())...),
		rule(masquerade, "knit: the host's 127.0.0.1 reaching a published port",
			join(netHeaderIs(4, ip4Saddr, 1, loopback4), ifLookup(oif, setBridges), masq())...),
		rule(masquerade, "knit: traffic into a knit bridge keeps its source",
			join(ifLookup(oif, setBridges), verdictReturn())...),
		rule(masquerade, "knit: masquerade IPv4 leaving a network",
			join(saddrLookup(4, setMasq4), masq())...),
		rule(masquerade, "knit: masquerade IPv6 leaving a network",
			join(saddrLookup(6, setMasq6), masq())...),
	}
	return chains, append(rules, svcCoreRules(services, svcCheck, svcReject)...)
}
