package nft

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
)

// Names of the service chains and sets that are not per count (see
// countChain and svcSetNames for those).
const (
	chainServices    = "services"
	chainInput       = "input"
	chainFilterOut   = "filter_output"
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
		return cmp.Compare(ifElse(a.kind.np, 1, 0), ifElse(b.kind.np, 1, 0))
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
// come from service ports are added by the caller (materialize or a
// delta); the ranges are the config's; the affinity sets are learned.
func svcSetSpecs(t *nftables.Table, ranges []netip.Prefix) []setSpec {
	set := func(s svcSet, key nftables.SetDatatype) setSpec {
		return setSpec{set: &nftables.Set{Table: t, Name: svcSetNames[s], KeyType: key}, owner: ownServices, svc: s}
	}
	dmap := func(s svcSet, key, val nftables.SetDatatype) setSpec {
		sp := set(s, key)
		sp.set.IsMap, sp.set.DataType = true, val
		return sp
	}
	var r4, r6 []netip.Prefix
	for _, p := range ranges {
		if p.Addr().Is4() {
			r4 = append(r4, p)
		} else {
			r6 = append(r6, p)
		}
	}
	affinity := func(name string, key nftables.SetDatatype) setSpec {
		return setSpec{owner: ownLearned, set: &nftables.Set{Table: t, Name: name, KeyType: key,
			HasTimeout: true, Dynamic: true, Size: affinitySetLimit}}
	}
	out := []setSpec{
		set(ssVIPs4, nftables.TypeIPAddr),
		set(ssVIPs6, nftables.TypeIP6Addr),
		{set: &nftables.Set{Table: t, Name: setSvcRanges4, KeyType: nftables.TypeIPAddr, Interval: true}, elems: intervalElems(r4)},
		{set: &nftables.Set{Table: t, Name: setSvcRanges6, KeyType: nftables.TypeIP6Addr, Interval: true}, elems: intervalElems(r6)},
		set(ssNodeports, typeProtoPort),
		dmap(ssMap4, typePortKey4, nftables.TypeVerdict),
		dmap(ssMap6, typePortKey6, nftables.TypeVerdict),
		dmap(ssBackends4, typeSvcSlot4, typeAddrPort4),
		dmap(ssBackends6, typeSvcSlot6, typeAddrPort6),
		dmap(ssAffBackends4, typeSvcSlot4, typeAddrPort4),
		dmap(ssAffBackends6, typeSvcSlot6, typeAddrPort6),
		dmap(ssNPMap4, typeProtoPort, nftables.TypeVerdict),
		dmap(ssNPMap6, typeProtoPort, nftables.TypeVerdict),
		dmap(ssNPBackends4, typeNPSlot, typeAddrPort4),
		dmap(ssNPBackends6, typeNPSlot, typeAddrPort6),
		dmap(ssNPAffBackends4, typeNPSlot, typeAddrPort4),
		dmap(ssNPAffBackends6, typeNPSlot, typeAddrPort6),
		affinity(setSvcAffinity4, typeAffinity4),
		affinity(setSvcAffinity6, typeAffinity6),
	}
	for _, s := range out {
		// How nft prints keys that are not concatenations (addresses).
		s.set.KeyByteOrder = binaryutil.BigEndian
	}
	return out
}

// svcCoreRules returns the rules of the services chain (nat, jumped to
// from prerouting and output), of svc_check (filter, jumped to from input,
// forward and filter_output for new connections) and of svc_reject.
func svcCoreRules(services, check, reject *nftables.Chain) []*nftables.Rule {
	loopback6 := netip.IPv6Loopback().AsSlice()
	return []*nftables.Rule{
		rule(services, "knit: service ports on their IPv4 virtual addresses", join(nfproto(4),
			[]expr.Any{loadAddr(4, false, 0)}, loadProtoPort(1), []expr.Any{vmapLookup(0, svcSetNames[ssMap4])})...),
		rule(services, "knit: service ports on their IPv6 virtual addresses", join(nfproto(6),
			[]expr.Any{loadAddr(6, false, 0)}, loadProtoPort(4), []expr.Any{vmapLookup(0, svcSetNames[ssMap6])})...),
		rule(services, "knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)",
			join(daddrLookup(4, svcSetNames[ssVIPs4]), fibType(false, expr.CmpOpNeq), accept())...),
		rule(services, "knit: nor is any IPv4 address of the service ranges",
			join(daddrLookup(4, setSvcRanges4), accept())...),
		rule(services, "knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)",
			join(daddrLookup(6, svcSetNames[ssVIPs6]), fibType(false, expr.CmpOpNeq), accept())...),
		rule(services, "knit: nor is any IPv6 address of the service ranges",
			join(daddrLookup(6, setSvcRanges6), accept())...),
		rule(services, "knit: node ports answer on the host's own addresses only",
			join(fibType(false, expr.CmpOpNeq), verdictReturn())...),
		rule(services, "knit: ::1 cannot be DNATed (no route_localnet for IPv6)",
			join(netHeaderIs(6, ip6Daddr, 16, loopback6), verdictReturn())...),
		rule(services, "knit: IPv4 node ports", join(nfproto(4), loadProtoPort(0),
			[]expr.Any{vmapLookup(0, svcSetNames[ssNPMap4])})...),
		rule(services, "knit: IPv6 node ports", join(nfproto(6), loadProtoPort(0),
			[]expr.Any{vmapLookup(0, svcSetNames[ssNPMap6])})...),

		rule(check, "knit: nothing but a service port answers in the IPv4 service ranges",
			join(daddrLookup(4, setSvcRanges4), gotoChain(chainSvcReject))...),
		rule(check, "knit: nothing but a service port answers in the IPv6 service ranges",
			join(daddrLookup(6, setSvcRanges6), gotoChain(chainSvcReject))...),
		rule(check, "knit: nor on an IPv4 virtual address that is not the host's",
			join(daddrLookup(4, svcSetNames[ssVIPs4]), fibType(false, expr.CmpOpNeq), gotoChain(chainSvcReject))...),
		rule(check, "knit: nor on an IPv6 virtual address that is not the host's",
			join(daddrLookup(6, svcSetNames[ssVIPs6]), fibType(false, expr.CmpOpNeq), gotoChain(chainSvcReject))...),
		rule(check, "knit: a node port no backend took (none of the family) is refused",
			join(loadProtoPort(0), []expr.Any{setLookup(0, svcSetNames[ssNodeports], false)},
				ctStatusNotDNAT(), fibType(false, expr.CmpOpEq), gotoChain(chainSvcReject))...),

		rule(reject, "knit: refuse TCP at once", join(l4protoIs(6), rejectTCPReset())...),
		rule(reject, "knit: refuse the rest with port unreachable", rejectPortUnreachable()...),
	}
}

// daddrLookup matches "ip daddr @set" or "ip6 daddr @set".
func daddrLookup(family int, set string) []expr.Any {
	return append(nfproto(family), loadAddr(family, false, 0), setLookup(0, set, false))
}

// renderSvcChains returns the count chains of a shape and their rules: for
// every kind in use and every block of backend counts it uses, svc_n<K>
// (VIPs) or svc_np_n<K> (node ports), or with an affinity timeout of T
// seconds svc_a<T>_n<K> and svc_a<T>_np_n<K>, plus the chain that sends
// returning clients back to their backend, svc_a<T>_ret or
// svc_a<T>_np_ret.
func renderSvcChains(t *nftables.Table, key svcShapeKey) ([]*nftables.Chain, []*nftables.Rule) {
	var chains []*nftables.Chain
	var rules []*nftables.Rule
	add := func(name string) *nftables.Chain {
		c := &nftables.Chain{Table: t, Name: name}
		chains = append(chains, c)
		return c
	}
	for _, kb := range key {
		np, secs := kb.kind.np, kb.kind.secs
		if secs == 0 {
			backends := ifElse(np, ssNPBackends4, ssBackends4)
			forCounts(kb.blocks, func(n int) {
				c := add(countChain(np, n, 0))
				for _, fam := range []int{4, 6} {
					rules = append(rules, rule(c, "knit: a backend at random",
						pickRule(fam, np, uint32(n), svcSetNames[famSet(backends, fam == 6)])...))
				}
			})
			continue
		}
		timeout := time.Duration(secs) * time.Second
		backends := ifElse(np, ssNPAffBackends4, ssAffBackends4)
		ret := add(retChain(np, secs))
		for s := range (kb.blocks[len(kb.blocks)-1] + 1) * countBlockSize {
			for _, fam := range []int{4, 6} {
				rules = append(rules, rule(ret, "knit: a returning client goes back to its backend",
					affinityRule(fam, np, true, 1, uint32(s), svcSetNames[famSet(backends, fam == 6)], timeout)...))
			}
		}
		forCounts(kb.blocks, func(n int) {
			c := add(countChain(np, n, secs))
			rules = append(rules, rule(c, "knit: clients seen within the affinity timeout", jump(retChain(np, secs))...))
			for _, fam := range []int{4, 6} {
				set := svcSetNames[famSet(backends, fam == 6)]
				rules = append(rules,
					rule(c, "knit: a new client gets a backend at random, remembered",
						affinityRule(fam, np, false, uint32(n), 0, set, timeout)...),
					rule(c, "knit: the affinity set is full: a backend at random, not remembered",
						pickRule(fam, np, uint32(n), set)...))
			}
		})
	}
	return chains, rules
}

// forCounts calls fn for every backend count K of the blocks.
func forCounts(blocks []int, fn func(k int)) {
	for _, b := range blocks {
		for n := 1; n <= countBlockSize; n++ {
			fn(b*countBlockSize + n)
		}
	}
}

// ifElse is yes when cond, else no.
func ifElse[T any](cond bool, yes, no T) T {
	if cond {
		return yes
	}
	return no
}

// retChain names the chain of returning clients for timeout secs.
func retChain(np bool, secs uint32) string {
	return "svc_a" + strconv.FormatUint(uint64(secs), 10) + ifElse(np, "_np_ret", "_ret")
}

// pickRule is "dnat ip to ip daddr . meta l4proto . th dport . numgen
// random mod N map @backends" (np: without the address).
func pickRule(family int, np bool, n uint32, backends string) []expr.Any {
	a := addrSlots(family)
	out := nfproto(family)
	slot := uint32(0)
	if !np {
		out = append(out, loadAddr(family, false, 0))
		slot = a
	}
	return join(out, loadProtoPort(slot), []expr.Any{
		numgen(slot+2, n, 0),
		mapLookup(0, 0, backends),
		dnatTo(family, 0),
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
	a := addrSlots(family)
	set := ifElse(family == 6, setSvcAffinity6, setSvcAffinity4)
	out := join(nfproto(family),
		[]expr.Any{loadAddr(family, true, 0), loadAddr(family, false, a)},
		loadProtoPort(2*a),
		[]expr.Any{numgen(2*a+2, n, off)})
	if returning {
		out = append(out, setLookup(0, set, false))
	}
	key := ifElse(np, 2*a, a)
	return append(out,
		mapLookup(key, 2*a+3, backends),
		dynsetUpdate(0, set, timeout),
		dnatTo(family, 2*a+3),
	)
}
