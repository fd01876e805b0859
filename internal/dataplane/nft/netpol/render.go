package netpol

import (
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/kname"
)

// Chains of network policy (see policy.go for the design).
const (
	chainPolicy     = "netpol"
	chainPolEgress  = "pol_egress"
	chainPolIngress = "pol_ingress"
)

// PolicyLogGroup is the NFLOG group that denied packets are logged to (see
// NewDropReader). Each of the four drop rules logs at most
// policyLogRate packets a second (after a burst of policyLogBurst); every
// denied packet is counted and dropped all the same.
const (
	PolicyLogGroup = kname.PolicyLogGroup
	policyLogRate  = 100
	policyLogBurst = 100
	// policySnaplen is how much of a packet the log carries: the network
	// and transport headers' start, enough for addresses and ports.
	policySnaplen = 128
)

// Prefixes of the log messages: the direction that denied the packet. The
// group is in the packet mark of the message (see NewDropReader).
const (
	logPrefixEgress  = kname.PolicyLogPrefix + "egress "
	logPrefixIngress = kname.PolicyLogPrefix + "ingress "
)

// polDir is one direction of policy: which address of the packet is the
// isolated pod's (egress: the source) and the sets it is checked in.
type polDir struct {
	egress bool
	name   string // "egress" or "ingress", for comments
	chain  string
	prefix string
	maps   [2]string // by family: IPv4, IPv6
	allows [2]string
}

var polDirs = [2]polDir{
	{egress: true, name: "egress", chain: chainPolEgress, prefix: logPrefixEgress,
		maps: [2]string{mapPolEg4, mapPolEg6}, allows: [2]string{setPolAllowEg4, setPolAllowEg6}},
	{egress: false, name: "ingress", chain: chainPolIngress, prefix: logPrefixIngress,
		maps: [2]string{mapPolIn4, mapPolIn6}, allows: [2]string{setPolAllowIn4, setPolAllowIn6}},
}

// Order of the feature's rules in the forward and input hooks: after the
// services' refusals and the networks' isolation.
const hookOrder = 30

// policyShape is the policy chains and their rules, and the jumps to them:
// from forward (every forwarded packet, after isolate) and from input for
// packets that arrive from a knit bridge (a pod talking to the host, e.g.
// to knit's DNS on the gateway).
func policyShape() *nft.Shape {
	pol := nft.ChainSpec{Name: chainPolicy, Rules: []nft.Rule{
		rule("knit: replies and related packets of allowed connections pass",
			exprs.Join(exprs.CtStateEstablishedRelated(), exprs.Return())...),
		rule("knit: neighbour discovery is not policed",
			exprs.Join(icmp6NeighbourDiscovery(), exprs.Return())...),
		rule("knit: egress policy of the sending pod", exprs.Jump(chainPolEgress)...),
		rule("knit: ingress policy of the receiving pod", exprs.Jump(chainPolIngress)...),
	}}
	chains := []nft.ChainSpec{pol}
	for _, d := range polDirs {
		c := nft.ChainSpec{Name: d.chain}
		for _, family := range []int{4, 6} {
			c.Rules = append(c.Rules, polDirRules(d, family)...)
		}
		chains = append(chains, c)
	}
	return &nft.Shape{
		Sets:   policySetSpecs(),
		Chains: chains,
		Hooks: []nft.HookRule{
			{Hook: nft.HookForward, Order: hookOrder, Rule: rule("knit: network policy", exprs.Jump(chainPolicy)...)},
			{Hook: nft.HookInput, Order: hookOrder, Rule: rule("knit: network policy of pods talking to the host",
				exprs.Join(exprs.IfLookup(exprs.IIF, networks.SetBridges), exprs.Jump(chainPolicy))...)},
		},
	}
}

// rule is a rule with a comment.
func rule(comment string, e ...expr.Any) nft.Rule { return nft.Rule{Comment: comment, Exprs: e} }

// polDirRules are a direction's three rules for a family:
//
//	meta mark set ip saddr map @pol_eg_v4 meta mark . ip daddr . meta l4proto . th dport @pol_allow_eg_v4 meta mark set meta mark return
//	meta mark set ip saddr map @pol_eg_v4 meta mark set meta mark map @pol_groups update @pol_drops { meta mark } limit rate 100/second burst 100 packets log prefix "knit-policy egress " group 100 snaplen 128 counter drop
//	ip saddr @pol_eg_v4 counter drop
//
// (egress, IPv4, as nft lists them). The address map gives an isolated
// pod's key: its group's ID, or another value after a partial sync
// stored the group anew (see polState). The first rule returns when an
// element under the key allows the packet's peer, protocol and
// destination port. Its lookup is "key . peer . protocol . port": nft
// 1.0.6 aborts when it lists a concatenation that holds a map lookup's
// result, so the key passes through the packet mark, which nft lists as
// "meta mark". The mark is saved into register 3 first and restored
// before the return: an allowed packet leaves with the mark it came with.
// A packet the lookup does not allow is dropped by one of the two next
// rules: the second sets the mark to the key's group (pol_groups), counts
// the packet under it in pol_drops, logs it (the log message carries the
// mark) and drops it; when the log's rate limit is exceeded the limit
// ends that rule (after the counting) and the third drops the packet. A
// packet that is not isolated ends each rule at the map lookup,
// unchanged.
//
// Registers: the key is concatenated into 32-bit slots from 0 (key, then
// the peer's 1 or 4 slots, protocol, port); the saved mark is in slot 8
// (register 3), past the longest key (7 slots for IPv6).
func polDirRules(d polDir, family int) []nft.Rule {
	fam := "IPv4"
	if family == 6 {
		fam = "IPv6"
	}
	m, allow := d.maps[family/6], d.allows[family/6]
	peer := exprs.AddrSlots(family) // slots of the peer address
	saved := uint32(8)
	group := func() []expr.Any { // mark = the pod's key; a miss ends the rule
		return []expr.Any{exprs.LoadAddr(family, d.egress, 0), exprs.MapLookup(0, 0, m), exprs.SetMark(0)}
	}
	allowed := exprs.Join(exprs.NFProto(family), []expr.Any{exprs.LoadMark(saved)}, group(), []expr.Any{
		exprs.LoadMark(0),
		exprs.LoadAddr(family, !d.egress, 1),
	}, exprs.LoadProtoPort(1+peer), []expr.Any{
		exprs.SetLookup(0, allow, false),
		exprs.SetMark(saved),
	}, exprs.Return())
	logged := exprs.Join(exprs.NFProto(family), group(), []expr.Any{
		exprs.LoadMark(0),
		exprs.MapLookup(0, 0, mapPolGroups), // the key's group
		exprs.SetMark(0),
		exprs.LoadMark(0),
		&expr.Dynset{SrcRegKey: exprs.Reg32(0), SetName: setPolDrops, Operation: unix.NFT_DYNSET_OP_UPDATE},
		&expr.Limit{Type: expr.LimitTypePkts, Rate: policyLogRate, Unit: expr.LimitTimeSecond, Burst: policyLogBurst},
		&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN,
			Data: []byte(d.prefix), Group: PolicyLogGroup, Snaplen: policySnaplen},
	}, exprs.Drop())
	silent := exprs.Join(exprs.NFProto(family), []expr.Any{exprs.LoadAddr(family, d.egress, 0), exprs.SetLookup(0, m, false)}, exprs.Drop())
	return []nft.Rule{
		rule("knit: "+d.name+" allowed by a policy ("+fam+")", allowed...),
		rule("knit: "+d.name+" denied: count, log and drop ("+fam+")", logged...),
		rule("knit: "+d.name+" denied beyond the log's rate ("+fam+")", silent...),
	}
}

// icmp6NeighbourDiscovery matches ICMPv6 types 133-137 (router and
// neighbour solicitation and advertisement, redirect). Conntrack does not
// track them, and a pod resolves a neighbour's or the gateway's address
// from its own global address: policing them would cut IPv6 off for
// isolated pods, allowed connections included.
func icmp6NeighbourDiscovery() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: exprs.Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: exprs.Reg1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: exprs.Reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: exprs.Reg1, FromData: []byte{133}, ToData: []byte{137}},
	}
}
