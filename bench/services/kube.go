package main

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// kubeTable is the peer: the shape of kube-proxy's nftables mode
// (pkg/proxy/nftables), built by this program in its own table, "table ip
// kubebench", in the same namespace:
//
//	chain nat-prerouting { type nat hook prerouting priority dstnat; jump services }
//	chain nat-output     { type nat hook output priority -100; jump services }
//	chain services       { ip daddr . meta l4proto . th dport vmap @service-ips }
//	map service-ips      { ipv4_addr . inet_proto . inet_service : verdict }   one goto per service
//	chain service-<i>    { numgen random mod K vmap { 0 : goto endpoint-<i>-<j>, … } }
//	chain endpoint-<i>-<j> { meta l4proto tcp dnat ip to <addr>:<port> }
//
// A chain per service with its own numgen vmap to a chain per endpoint, as
// kube-proxy writes them (its masquerade marks, firewall and
// no-endpoint chains left out: they add rules, not lookups, to this path).
// One transaction per change, elements in batches of at most 512.
type kubeTable struct {
	c       *nftables.Conn
	t       *nftables.Table
	prio    *nftables.ChainPriority
	ips     *nftables.Set
	svcs    []service
	nextSet uint32
	gen     int // makes endpoint chain names unique across changes
}

// newKubeTable returns the peer's table "name" with its nat chains at
// priority dstnat+offset.
func newKubeTable(c *nftables.Conn, name string, offset int32) *kubeTable {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	prio := nftables.ChainPriority(int32(*nftables.ChainPriorityNATDest) + offset)
	return &kubeTable{c: c, t: t, prio: &prio, nextSet: 1, ips: &nftables.Set{Table: t, Name: "service-ips", ID: 1, IsMap: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
		DataType: nftables.TypeVerdict}}
}

// install creates the whole table for svcs in one transaction.
func (k *kubeTable) install(svcs []service) error {
	k.svcs = slices.Clone(svcs)
	c, t := k.c, k.t
	c.AddTable(t)
	prio := k.prio
	pre := c.AddChain(&nftables.Chain{Table: t, Name: "nat-prerouting", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: prio})
	out := c.AddChain(&nftables.Chain{Table: t, Name: "nat-output", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: prio})
	services := c.AddChain(&nftables.Chain{Table: t, Name: "services"})
	if err := c.AddSet(k.ips, nil); err != nil {
		return fmt.Errorf("add map service-ips: %w", err)
	}
	elems := make([]nftables.SetElement, 0, len(svcs))
	for i, s := range svcs {
		if err := k.addService(i, s); err != nil {
			return err
		}
		elems = append(elems, nftables.SetElement{Key: vipKey(s.vip, s.port),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: svcChain(i)}})
	}
	for b := range slices.Chunk(elems, 512) {
		if err := c.SetAddElements(k.ips, b); err != nil {
			return fmt.Errorf("add service-ips elements: %w", err)
		}
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: services, Exprs: []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: k.ips.Name, SetID: k.ips.ID},
	}})
	for _, ch := range []*nftables.Chain{pre, out} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "services"}}})
	}
	return c.Flush()
}

// addService queues service i's chain, its endpoint chains and their rules.
func (k *kubeTable) addService(i int, s service) error {
	ch := k.c.AddChain(&nftables.Chain{Table: k.t, Name: svcChain(i)})
	var eps []string
	for j, ep := range s.backends {
		name := fmt.Sprintf("endpoint-%d-%d-%d", i, j, k.gen)
		eps = append(eps, name)
		k.addEndpoint(name, ep)
	}
	return k.addPick(ch, eps)
}

func (k *kubeTable) addEndpoint(name string, ep netip.AddrPort) {
	ch := k.c.AddChain(&nftables.Chain{Table: k.t, Name: name})
	a := ep.Addr().As4()
	k.c.AddRule(&nftables.Rule{Table: k.t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ep.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1,
			RegProtoMin: 2, RegProtoMax: 2, Specified: true},
	}})
}

// addPick queues the service chain's rule: numgen random mod K vmap with an
// anonymous, constant map of K gotos, as nft writes it.
func (k *kubeTable) addPick(ch *nftables.Chain, eps []string) error {
	k.nextSet++
	set := &nftables.Set{Table: k.t, ID: k.nextSet, Name: fmt.Sprintf("__map%d", k.nextSet), Anonymous: true,
		Constant: true, IsMap: true, KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict}
	var elems []nftables.SetElement
	for j, ep := range eps {
		elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(j)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: ep}})
	}
	if err := k.c.AddSet(set, elems); err != nil {
		return fmt.Errorf("add numgen map of %s: %w", ch.Name, err)
	}
	k.c.AddRule(&nftables.Rule{Table: k.t, Chain: ch, Exprs: []expr.Any{
		&expr.Numgen{Register: 1, Modulus: uint32(len(eps)), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
	}})
	return nil
}

// setBackends replaces service i's endpoints as kube-proxy does for an
// endpoint change: new endpoint chains for new endpoints, the service
// chain flushed and its rule written again, the old endpoint chains
// deleted; one transaction.
func (k *kubeTable) setBackends(i int, backends []netip.AddrPort) error {
	k.gen++
	old := k.svcs[i].backends
	ch := &nftables.Chain{Table: k.t, Name: svcChain(i)}
	k.c.FlushChain(ch)
	var eps []string
	for j, ep := range backends {
		name := fmt.Sprintf("endpoint-%d-%d-%d", i, j, k.gen)
		eps = append(eps, name)
		k.addEndpoint(name, ep)
	}
	if err := k.addPick(ch, eps); err != nil {
		return err
	}
	for j := range old {
		k.c.DelChain(&nftables.Chain{Table: k.t, Name: fmt.Sprintf("endpoint-%d-%d-%d", i, j, k.svcs[i].gen)})
	}
	k.svcs[i].backends, k.svcs[i].gen = slices.Clone(backends), k.gen
	return k.c.Flush()
}

func (k *kubeTable) delete() error {
	k.c.DelTable(k.t)
	return k.c.Flush()
}

func svcChain(i int) string { return fmt.Sprintf("service-%d", i) }

// vipKey is "vip . tcp . port", each field padded to 4 bytes.
func vipKey(vip netip.Addr, port uint16) []byte {
	a := vip.As4()
	return append(a[:], unix.IPPROTO_TCP, 0, 0, 0, byte(port>>8), byte(port), 0, 0)
}
