package ports

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
)

// Maps and chains of the feature.
const (
	mapPorts4    = iota // ports_v4: daddr . l4proto . dport : container addr . port
	mapPortsAny4        // ports_any_v4: l4proto . dport : container addr . port
	mapPorts6
	mapPortsAny6
	numMaps
)

var mapNames = [numMaps]string{"ports_v4", "ports_any_v4", "ports_v6", "ports_any_v6"}

const (
	chainGuard   = "guard"
	chainPorts   = "ports"
	chainHairpin = "hairpin"
)

// Order of the feature's rules in the hooks: after services in
// prerouting and output, before masquerade in postrouting.
const (
	orderDNAT    = 20
	orderHairpin = 10
)

// Options configure the feature.
type Options struct {
	// NodePort, when set, tells whether a service's node port takes the
	// protocol and port on every address of the host: a published port
	// there is refused. owner names the service port.
	NodePort func(proto string, port uint16) (owner string, taken bool)
}

// Feature keeps the published ports in the table. Safe for concurrent use.
type Feature struct {
	*nft.Static
	opts   Options
	maps   [numMaps]*nft.KeyedSet
	owners map[string][]Port // owner → its normal mappings

	claimsMu sync.RWMutex
	claims   map[portKey]claim // what each mapping takes, for Set's checks and HostPort
}

type claim struct {
	owner string
	given Port
}

var _ nft.Feature = (*Feature)(nil)

// New returns the feature with no published ports.
func New(opts Options) *Feature {
	f := &Feature{opts: opts, owners: map[string][]Port{}, claims: map[portKey]claim{}}
	var sets []nft.ElemSet
	for i := range f.maps {
		f.maps[i] = nft.NewKeyedSet(mapNames[i])
		sets = append(sets, f.maps[i])
	}
	f.Static = nft.NewStatic("ports", shape, sets...)
	return f
}

// Set replaces the published ports of one owner (a container); none
// removes them. Ranges must be expanded. A mapping that is invalid, or
// whose host address, protocol and port another owner or a node port
// already has, is refused and nothing changes; the error names it.
func (f *Feature) Set(owner string, ports []Port) error {
	norm, err := Normalize(ports)
	if err != nil {
		return err
	}
	f.Lock()
	defer f.Unlock()
	f.claimsMu.Lock()
	defer f.claimsMu.Unlock()
	// What the owner has now, by key: unchanged mappings cost nothing, and
	// what is left at the end is no longer published.
	prev := make(map[portKey]Port, len(f.owners[owner]))
	for _, p := range f.owners[owner] {
		prev[p.key()] = p
	}
	for i, p := range norm {
		if _, mine := prev[p.key()]; mine {
			continue
		}
		if c, ok := f.claims[p.key()]; ok {
			return fmt.Errorf("published port %s: host port already published by %s; a host address, protocol and port go to one container", ports[i], c.given)
		}
		if f.opts.NodePort != nil {
			if svc, taken := f.opts.NodePort(p.Proto, p.HostPort); taken {
				return fmt.Errorf("published port %s: %d/%s is the node port of %s; pick another host port", ports[i], p.HostPort, p.Proto, svc)
			}
		}
	}
	if len(f.claims) == 0 && len(prev) == 0 { // a first fill: room for all at once
		f.claims = make(map[portKey]claim, len(norm))
		var n [numMaps]int
		for _, p := range norm {
			n[p.mapIndex()]++
		}
		for i, m := range f.maps {
			m.Reserve(n[i])
		}
	}
	// Keys and values of the elements, cut from one buffer.
	buf := make([]byte, 0, len(norm)*44)
	for i, p := range norm {
		k := p.key()
		old, had := prev[k]
		delete(prev, k)
		if had && old == p {
			continue
		}
		m, e := p.elem(&buf)
		f.maps[m].Put(e)
		f.claims[k] = claim{owner: owner, given: ports[i]}
	}
	for k, p := range prev {
		m, e := p.elem(nil)
		f.maps[m].Delete(e.Key)
		delete(f.claims, k)
	}
	if len(norm) == 0 {
		delete(f.owners, owner)
	} else {
		f.owners[owner] = norm
	}
	return nil
}

// HostPort reports whether some mapping publishes proto and port (on any
// address), naming one; services use it to refuse such a node port. It
// looks at every mapping: it is called for node ports that change, which
// are rare, and an index would cost every Set.
func (f *Feature) HostPort(proto string, port uint16) (string, bool) {
	f.claimsMu.RLock()
	defer f.claimsMu.RUnlock()
	for k, c := range f.claims {
		if k.port == port && k.proto == exprs.L4Proto[proto] {
			return c.given.String(), true
		}
	}
	return "", false
}

// shape is the feature's maps, chains and hook rules; they do not depend
// on the ports.
var shape = func() *nft.Shape {
	r := func(comment string, e ...[]expr.Any) nft.Rule {
		return nft.Rule{Comment: comment, Exprs: exprs.Join(e...)}
	}
	portMap := func(m int, key, val nftables.SetDatatype) nft.SetSpec {
		// Keys and values hold addresses and ports, which nft prints in
		// network byte order.
		return nft.SetSpec{Set: &nftables.Set{Name: mapNames[m], IsMap: true, KeyType: key, DataType: val,
			KeyByteOrder: binaryutil.BigEndian}}
	}
	loopback4 := []byte{127}
	loopback6 := netip.IPv6Loopback().AsSlice()
	return &nft.Shape{
		Sets: []nft.SetSpec{
			portMap(mapPorts4, exprs.TypePortKey4, exprs.TypeAddrPort4),
			portMap(mapPortsAny4, exprs.TypeProtoPort, exprs.TypeAddrPort4),
			portMap(mapPorts6, exprs.TypePortKey6, exprs.TypeAddrPort6),
			portMap(mapPortsAny6, exprs.TypeProtoPort, exprs.TypeAddrPort6),
		},
		Chains: []nft.ChainSpec{
			{Name: chainGuard, Rules: []nft.Rule{
				r("knit: 127.0.0.0/8 arrives on lo only (CVE-2020-8558)",
					exprs.NetHeaderIs(4, exprs.IP4Daddr, 1, loopback4), exprs.IifNameIsNot("lo"), exprs.Drop()),
			}},
			{Name: chainPorts, Rules: []nft.Rule{
				r("knit: published ports answer on the host's own addresses only",
					exprs.FibType(false, expr.CmpOpNeq), exprs.Return()),
				r("knit: ::1 cannot be DNATed (no route_localnet for IPv6)",
					exprs.NetHeaderIs(6, exprs.IP6Daddr, 16, loopback6), exprs.Return()),
				r("knit: IPv4 ports published on one host address", exprs.DNATMap(4, true, mapNames[mapPorts4])),
				r("knit: IPv4 ports published on every host address", exprs.DNATMap(4, false, mapNames[mapPortsAny4])),
				r("knit: IPv6 ports published on one host address", exprs.DNATMap(6, true, mapNames[mapPorts6])),
				r("knit: IPv6 ports published on every host address", exprs.DNATMap(6, false, mapNames[mapPortsAny6])),
			}},
			{Name: chainHairpin, Rules: []nft.Rule{
				r("knit: DNATed traffic routed back into the bridge it came from",
					exprs.CtStatusDNAT(), exprs.IfPairLookup(networks.SetIntra), exprs.Masq()),
				r("knit: DNATed traffic br_netfilter bridged back into its bridge",
					exprs.CtStatusDNAT(), exprs.NoIif(), exprs.IfLookup(exprs.OIF, networks.SetBridges),
					exprs.FibType(true, expr.CmpOpNeq), exprs.Masq()),
				r("knit: the host's 127.0.0.1 reaching a published port",
					exprs.NetHeaderIs(4, exprs.IP4Saddr, 1, loopback4), exprs.IfLookup(exprs.OIF, networks.SetBridges), exprs.Masq()),
			}},
		},
		Hooks: []nft.HookRule{
			{Hook: nft.HookRawPrerouting, Rule: r("knit: guard the loopback range", exprs.Jump(chainGuard))},
			{Hook: nft.HookPrerouting, Order: orderDNAT, Rule: r("knit: published ports", exprs.Jump(chainPorts))},
			{Hook: nft.HookOutput, Order: orderDNAT, Rule: r("knit: published ports, from the host itself", exprs.Jump(chainPorts))},
			{Hook: nft.HookPostrouting, Order: orderHairpin, Rule: r("knit: hairpin to published ports", exprs.Jump(chainHairpin))},
		},
	}
}()
