package services

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// Names of the service chains and sets that are not per count (see
// countChain and svcSetNames for those).
const (
	chainServices    = "services"
	chainSvcCheck    = "svc_check"
	chainSvcReject   = "svc_reject"
	setSvcRanges4    = "svc_ranges_v4"
	setSvcRanges6    = "svc_ranges_v6"
	setSvcAffinity4  = "svc_affinity_v4"
	setSvcAffinity6  = "svc_affinity_v6"
	affinitySetLimit = 65535 // nft's default for sets a rule adds to
)

var (
	// A slot is of type mark: an integer type in a concatenated key makes
	// nft 1.0.6 abort when it lists the set (ENVIRONMENT.md).
	typeSvcSlot4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
	typeSvcSlot6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
	typeNPSlot    = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
	typeAffinity4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
	typeAffinity6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
)

// svcShapeKey is what the service chains depend on: the kinds of count
// chain in use, each with its blocks of backend counts, sorted (plain VIP,
// plain node port, then by affinity timeout). Element changes that keep it
// keep the ruleset's shape. Block 0 is always there for a kind in use, so
// that small services coming and going do not change the shape; a kind
// nobody uses has no chains at all (a host without services has none).
type svcShapeKey []kindBlocks

type kindBlocks struct {
	kind   chainKind
	blocks []int
}

func (s *svcShape) key() svcShapeKey {
	var k svcShapeKey
	for kind, blocks := range s.blocks {
		k = append(k, kindBlocks{kind: kind, blocks: sortedKeys(blocks, 0)})
	}
	slices.SortFunc(k, func(a, b kindBlocks) int {
		if a.kind.secs != b.kind.secs {
			return cmp.Compare(a.kind.secs, b.kind.secs)
		}
		return cmp.Compare(exprs.IfElse(a.kind.np, 1, 0), exprs.IfElse(b.kind.np, 1, 0))
	})
	return k
}

// sortedKeys returns m's keys and always, sorted.
func sortedKeys(m map[int]int, always int) []int {
	out := append(slices.Collect(maps.Keys(m)), always)
	slices.Sort(out)
	return slices.Compact(out)
}

// svcSetSpecs returns the service sets and maps. Elements of the sets that
// come from service ports are handed out by the state (materialize or a
// delta); the ranges' are the ranges given; the affinity sets are learned.
func svcSetSpecs() []nft.SetSpec {
	// KeyByteOrder: how nft prints keys that are not concatenations
	// (addresses).
	set := func(name string, key nftables.SetDatatype) nft.SetSpec {
		return nft.SetSpec{Set: &nftables.Set{Name: name, KeyType: key, KeyByteOrder: binaryutil.BigEndian}}
	}
	dmap := func(s svcSet, key, val nftables.SetDatatype) nft.SetSpec {
		sp := set(svcSetNames[s], key)
		sp.Set.IsMap, sp.Set.DataType = true, val
		return sp
	}
	ranges := func(name string, key nftables.SetDatatype) nft.SetSpec {
		sp := set(name, key)
		sp.Set.Interval = true
		return sp
	}
	affinity := func(name string, key nftables.SetDatatype) nft.SetSpec {
		sp := set(name, key)
		sp.Set.HasTimeout, sp.Set.Dynamic, sp.Set.Size = true, true, affinitySetLimit
		sp.Learned = true
		return sp
	}
	return []nft.SetSpec{
		set(svcSetNames[ssVIPs4], nftables.TypeIPAddr),
		set(svcSetNames[ssVIPs6], nftables.TypeIP6Addr),
		ranges(setSvcRanges4, nftables.TypeIPAddr),
		ranges(setSvcRanges6, nftables.TypeIP6Addr),
		set(svcSetNames[ssNodeports], exprs.TypeProtoPort),
		dmap(ssMap4, exprs.TypePortKey4, nftables.TypeVerdict),
		dmap(ssMap6, exprs.TypePortKey6, nftables.TypeVerdict),
		dmap(ssBackends4, typeSvcSlot4, exprs.TypeAddrPort4),
		dmap(ssBackends6, typeSvcSlot6, exprs.TypeAddrPort6),
		dmap(ssAffBackends4, typeSvcSlot4, exprs.TypeAddrPort4),
		dmap(ssAffBackends6, typeSvcSlot6, exprs.TypeAddrPort6),
		dmap(ssNPMap4, exprs.TypeProtoPort, nftables.TypeVerdict),
		dmap(ssNPMap6, exprs.TypeProtoPort, nftables.TypeVerdict),
		dmap(ssNPBackends4, typeNPSlot, exprs.TypeAddrPort4),
		dmap(ssNPBackends6, typeNPSlot, exprs.TypeAddrPort6),
		dmap(ssNPAffBackends4, typeNPSlot, exprs.TypeAddrPort4),
		dmap(ssNPAffBackends6, typeNPSlot, exprs.TypeAddrPort6),
		affinity(setSvcAffinity4, typeAffinity4),
		affinity(setSvcAffinity6, typeAffinity6),
	}
}

// rule is a rule with a comment.
func rule(comment string, e ...expr.Any) nft.Rule { return nft.Rule{Comment: comment, Exprs: e} }

// svcCoreRules returns the rules of the services chain (nat, jumped to
// from prerouting and output), of svc_check (filter, jumped to from input,
// forward and filter_output for new connections) and of svc_reject.
func svcCoreRules() []nft.ChainSpec {
	loopback6 := netip.IPv6Loopback().AsSlice()
	return []nft.ChainSpec{{Name: chainServices, Rules: []nft.Rule{
		rule("knit: service ports on their IPv4 virtual addresses", exprs.Join(exprs.NFProto(4),
			[]expr.Any{exprs.LoadAddr(4, false, 0)}, exprs.LoadProtoPort(1), []expr.Any{exprs.VmapLookup(0, svcSetNames[ssMap4])})...),
		rule("knit: service ports on their IPv6 virtual addresses", exprs.Join(exprs.NFProto(6),
			[]expr.Any{exprs.LoadAddr(6, false, 0)}, exprs.LoadProtoPort(4), []expr.Any{exprs.VmapLookup(0, svcSetNames[ssMap6])})...),
		rule("knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)",
			exprs.Join(exprs.DaddrLookup(4, svcSetNames[ssVIPs4]), exprs.FibType(false, expr.CmpOpNeq), exprs.Accept())...),
		rule("knit: nor is any IPv4 address of the service ranges",
			exprs.Join(exprs.DaddrLookup(4, setSvcRanges4), exprs.Accept())...),
		rule("knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)",
			exprs.Join(exprs.DaddrLookup(6, svcSetNames[ssVIPs6]), exprs.FibType(false, expr.CmpOpNeq), exprs.Accept())...),
		rule("knit: nor is any IPv6 address of the service ranges",
			exprs.Join(exprs.DaddrLookup(6, setSvcRanges6), exprs.Accept())...),
		rule("knit: node ports answer on the host's own addresses only",
			exprs.Join(exprs.FibType(false, expr.CmpOpNeq), exprs.Return())...),
		rule("knit: ::1 cannot be DNATed (no route_localnet for IPv6)",
			exprs.Join(exprs.NetHeaderIs(6, exprs.IP6Daddr, 16, loopback6), exprs.Return())...),
		rule("knit: IPv4 node ports", exprs.Join(exprs.NFProto(4), exprs.LoadProtoPort(0),
			[]expr.Any{exprs.VmapLookup(0, svcSetNames[ssNPMap4])})...),
		rule("knit: IPv6 node ports", exprs.Join(exprs.NFProto(6), exprs.LoadProtoPort(0),
			[]expr.Any{exprs.VmapLookup(0, svcSetNames[ssNPMap6])})...),
	}}, {Name: chainSvcCheck, Rules: []nft.Rule{
		rule("knit: nothing but a service port answers in the IPv4 service ranges",
			exprs.Join(exprs.DaddrLookup(4, setSvcRanges4), exprs.Goto(chainSvcReject))...),
		rule("knit: nothing but a service port answers in the IPv6 service ranges",
			exprs.Join(exprs.DaddrLookup(6, setSvcRanges6), exprs.Goto(chainSvcReject))...),
		rule("knit: nor on an IPv4 virtual address that is not the host's",
			exprs.Join(exprs.DaddrLookup(4, svcSetNames[ssVIPs4]), exprs.FibType(false, expr.CmpOpNeq), exprs.Goto(chainSvcReject))...),
		rule("knit: nor on an IPv6 virtual address that is not the host's",
			exprs.Join(exprs.DaddrLookup(6, svcSetNames[ssVIPs6]), exprs.FibType(false, expr.CmpOpNeq), exprs.Goto(chainSvcReject))...),
		rule("knit: a node port no backend took (none of the family) is refused",
			exprs.Join(exprs.LoadProtoPort(0), []expr.Any{exprs.SetLookup(0, svcSetNames[ssNodeports], false)},
				exprs.CtStatusNotDNAT(), exprs.FibType(false, expr.CmpOpEq), exprs.Goto(chainSvcReject))...),
	}}, {Name: chainSvcReject, Rules: []nft.Rule{
		rule("knit: refuse TCP at once", exprs.Join(exprs.L4ProtoIs(6), exprs.RejectTCPReset())...),
		rule("knit: refuse the rest with port unreachable", exprs.RejectPortUnreachable()...),
	}}}
}

// renderSvcChains returns the count chains of a shape and their rules: for
// every kind in use and every block of backend counts it uses, svc_n<K>
// (VIPs) or svc_np_n<K> (node ports), or with an affinity timeout of T
// seconds svc_a<T>_n<K> and svc_a<T>_np_n<K>, plus the chain that sends
// returning clients back to their backend, svc_a<T>_ret or
// svc_a<T>_np_ret.
func renderSvcChains(key svcShapeKey) []nft.ChainSpec {
	var chains []nft.ChainSpec
	add := func(name string) int {
		chains = append(chains, nft.ChainSpec{Name: name, Keep: true})
		return len(chains) - 1
	}
	for _, kb := range key {
		np, secs := kb.kind.np, kb.kind.secs
		if secs == 0 {
			backends := exprs.IfElse(np, ssNPBackends4, ssBackends4)
			forCounts(kb.blocks, func(n int) {
				c := add(countChain(np, n, 0))
				for _, fam := range []int{4, 6} {
					chains[c].Rules = append(chains[c].Rules, rule("knit: a backend at random",
						pickRule(fam, np, uint32(n), svcSetNames[famSet(backends, fam == 6)])...))
				}
			})
			continue
		}
		timeout := time.Duration(secs) * time.Second
		backends := exprs.IfElse(np, ssNPAffBackends4, ssAffBackends4)
		ret := add(retChain(np, secs))
		for s := range (kb.blocks[len(kb.blocks)-1] + 1) * countBlockSize {
			for _, fam := range []int{4, 6} {
				chains[ret].Rules = append(chains[ret].Rules, rule("knit: a returning client goes back to its backend",
					affinityRule(fam, np, true, 1, uint32(s), svcSetNames[famSet(backends, fam == 6)], timeout)...))
			}
		}
		forCounts(kb.blocks, func(n int) {
			c := add(countChain(np, n, secs))
			chains[c].Rules = append(chains[c].Rules, rule("knit: clients seen within the affinity timeout", exprs.Jump(retChain(np, secs))...))
			for _, fam := range []int{4, 6} {
				set := svcSetNames[famSet(backends, fam == 6)]
				chains[c].Rules = append(chains[c].Rules,
					rule("knit: a new client gets a backend at random, remembered",
						affinityRule(fam, np, false, uint32(n), 0, set, timeout)...),
					rule("knit: the affinity set is full: a backend at random, not remembered",
						pickRule(fam, np, uint32(n), set)...))
			}
		})
	}
	return chains
}

// forCounts calls fn for every backend count K of the blocks.
func forCounts(blocks []int, fn func(k int)) {
	for _, b := range blocks {
		for n := 1; n <= countBlockSize; n++ {
			fn(b*countBlockSize + n)
		}
	}
}

// retChain names the chain of returning clients for timeout secs.
func retChain(np bool, secs uint32) string {
	return "svc_a" + strconv.FormatUint(uint64(secs), 10) + exprs.IfElse(np, "_np_ret", "_ret")
}

// pickRule is "dnat ip to ip daddr . meta l4proto . th dport . numgen
// random mod N map @backends" (np: without the address).
func pickRule(family int, np bool, n uint32, backends string) []expr.Any {
	a := exprs.AddrSlots(family)
	out := exprs.NFProto(family)
	slot := uint32(0)
	if !np {
		out = append(out, exprs.LoadAddr(family, false, 0))
		slot = a
	}
	return exprs.Join(out, exprs.LoadProtoPort(slot), []expr.Any{
		exprs.Numgen(slot+2, n, 0),
		exprs.MapLookup(0, 0, backends),
		exprs.DNATTo(family, 0),
	})
}

// affinityRule picks the backend of slot "numgen random mod n offset off",
// remembers the client (saddr . daddr . l4proto . dport . slot) in the
// affinity set for timeout, and DNATs to the backend. For a returning
// client (n = 1: the slot is off) it first checks that the client is in
// the set with that slot; the update then restarts the timeout.
//
// Registers: the affinity key from slot 0; the backend's key is its tail
// (daddr . l4proto . dport . slot, or l4proto . dport . slot for a node
// port), and the backend comes back after it. A slot with no backend (the
// service port has fewer now) ends the rule before the update.
func affinityRule(family int, np, returning bool, n, off uint32, backends string, timeout time.Duration) []expr.Any {
	a := exprs.AddrSlots(family)
	set := exprs.IfElse(family == 6, setSvcAffinity6, setSvcAffinity4)
	out := exprs.Join(exprs.NFProto(family),
		[]expr.Any{exprs.LoadAddr(family, true, 0), exprs.LoadAddr(family, false, a)},
		exprs.LoadProtoPort(2*a),
		[]expr.Any{exprs.Numgen(2*a+2, n, off)})
	if returning {
		out = append(out, exprs.SetLookup(0, set, false))
	}
	key := exprs.IfElse(np, 2*a, a)
	return append(out,
		exprs.MapLookup(key, 2*a+3, backends),
		exprs.DynsetUpdate(0, set, timeout),
		exprs.DNATTo(family, 2*a+3),
	)
}
