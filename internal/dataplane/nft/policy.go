package nft

// Network policy: Config.Policy, compiled by package policy, enforced
// with a fixed set of rules whatever the number of policies.
//
// Design notes (docs/datapath.md, "Network policy", has the listing):
//
//   - Per new connection and direction, a hash lookup of the isolated
//     pod's address (pol_eg_v4 for the source, pol_in_v4 for the
//     destination, and the v6 maps) gives its group's key, then "key .
//     peer . protocol . port" is looked up in an interval (pipapo) set of
//     allowed ranges. Established and related packets return first;
//     replies ride on conntrack.
//   - A policy change changes elements only: the chains are rendered when
//     Config.Policy is set, whatever it holds, so only nil to non-nil (and
//     back) is a change of shape. Partial syncs compare the last applied
//     Compiled with the new one group by group and send only what
//     changed, without deleting allow elements (see polState).
//   - Full syncs do not flush the pipapo sets: the kernel takes seconds to
//     flush one of 16,000 elements (it walks the set for each), against
//     0.1 s to delete the set and fill a new one. syncTable recreates them.
//   - Denied packets get their group as packet mark (pol_groups maps a key
//     to its group), are counted per group in pol_drops, a set the packet
//     path fills ("update @pol_drops { meta mark }": an element with a
//     counter per group ever denied), logged to NFLOG group PolicyLogGroup
//     at a bounded rate with the direction in the prefix and the group in
//     the mark, and dropped. Full syncs flush pol_drops: its counts start
//     again from zero then.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"

	"github.com/knit-net/knit/internal/policy"
)

// Sets and maps of network policy.
const (
	mapPolIn4      = "pol_in_v4"       // ipv4_addr : mark: ingress-isolated pod → its group's key
	mapPolIn6      = "pol_in_v6"       // ipv6_addr : mark
	mapPolEg4      = "pol_eg_v4"       // ipv4_addr : mark: egress-isolated pod → its group's key
	mapPolEg6      = "pol_eg_v6"       // ipv6_addr : mark
	setPolAllowIn4 = "pol_allow_in_v4" // mark . ipv4_addr . inet_proto . inet_service, intervals
	setPolAllowIn6 = "pol_allow_in_v6"
	setPolAllowEg4 = "pol_allow_eg_v4"
	setPolAllowEg6 = "pol_allow_eg_v6"
	mapPolGroups   = "pol_groups" // mark : mark: key → group (see polState)
	setPolDrops    = "pol_drops"  // mark, filled by the packet path, a counter per element

	polDropsSize = 65535 // groups with a drop count between two full syncs
)

var (
	typePolAllow4 = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typePolAllow6 = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

// polSet identifies one of the policy sets whose elements come from the
// compiled policy: direction (0 egress, 1 ingress as in polDirs), family
// (0 IPv4, 1 IPv6) and kind.
type polSet struct {
	dir, fam int
	allow    bool // the allow set, else the address map
}

func (p polSet) name() string {
	if p.allow {
		return polDirs[p.dir].allows[p.fam]
	}
	return polDirs[p.dir].maps[p.fam]
}

// polSets lists them in the order policySetSpecs renders them.
var polSets = func() []polSet {
	var out []polSet
	for dir := range 2 {
		for fam := range 2 {
			out = append(out, polSet{dir, fam, false}, polSet{dir, fam, true})
		}
	}
	return out
}()

// policySetSpecs returns the policy sets and maps, without elements
// (fillPolicy adds them for a full sync).
func policySetSpecs(t *nftables.Table) []setSpec {
	var out []setSpec
	for _, p := range polSets {
		s := &nftables.Set{Table: t, Name: p.name()}
		switch {
		case p.allow:
			s.Interval, s.Concatenation = true, true
			s.KeyType = []nftables.SetDatatype{typePolAllow4, typePolAllow6}[p.fam]
		default:
			s.IsMap, s.DataType = true, nftables.TypeMark
			s.KeyType = []nftables.SetDatatype{nftables.TypeIPAddr, nftables.TypeIP6Addr}[p.fam]
			s.KeyByteOrder = binaryutil.BigEndian // how nft prints the addresses
		}
		out = append(out, setSpec{set: s, owner: ownPolicy})
	}
	groups := &nftables.Set{Table: t, Name: mapPolGroups, IsMap: true, KeyType: nftables.TypeMark,
		DataType: nftables.TypeMark, KeyByteOrder: binaryutil.BigEndian}
	out = append(out, setSpec{set: groups, owner: ownPolicy})
	drops := &nftables.Set{Table: t, Name: setPolDrops, KeyType: nftables.TypeMark,
		Dynamic: true, Counter: true, Size: polDropsSize, KeyByteOrder: binaryutil.BigEndian}
	return append(out, setSpec{set: drops})
}

// polState is what the policy sets hold: the compiled policy, and the key
// each group's elements are stored under in the allow sets (the value the
// address maps give for the group's pods).
//
// A full sync stores every group under its own ID. A partial sync adds a
// group's new elements under its key when it only gained some; when it
// lost any, it stores all of the group's elements again under a new key
// and points the group's pods at it, rather than deleting the old ones:
// the kernel takes 5 to 15 µs per rule of the set to delete one element
// of a pipapo set (90 ms at 16,000), against microseconds to add one. The
// old elements stay behind, unreachable (no pod maps to their key), until
// the next full sync recreates the sets; one comes as soon as they
// outnumber rebuildFrom plus half of the live elements (rebuild).
//
// pol_groups maps each live key back to its group: a denied packet's mark
// is its group when it is counted and logged.
type polState struct {
	c *policy.Compiled
	// keys maps a group to the key of its elements; groups maps every key
	// with elements in the sets (live or left behind, never to be reused
	// while they are there) to its group.
	keys, groups map[uint32]uint32
	live, stale  int // elements under live keys, and left behind
}

// rebuildFrom is the number of elements left behind from which the next
// sync is a full one (plus half the live ones): they cost lookups and
// insertions time in proportion.
const rebuildFrom = 4096

func newPolState(c *policy.Compiled) *polState {
	if c == nil {
		return nil
	}
	return &polState{c: c}
}

// rebuild reports whether so many elements were left behind that the
// next sync should be a full one, which recreates the allow sets.
func (p *polState) rebuild() bool {
	return p != nil && p.stale > rebuildFrom+p.live/2
}

// fillPolicy puts every element of the compiled policy into the policy
// sets, for a full sync, each group under its own ID.
func (rs *ruleset) fillPolicy() {
	p := rs.pol
	if p == nil {
		return
	}
	p.keys = make(map[uint32]uint32, len(p.c.GroupPolicies))
	p.groups = make(map[uint32]uint32, len(p.c.GroupPolicies))
	for g := range p.c.GroupPolicies {
		p.keys[g], p.groups[g] = g, g
	}
	p.live, p.stale = len(p.c.Ingress)+len(p.c.Egress), 0
	for i := range rs.sets {
		s := &rs.sets[i]
		if ps, ok := polSetNamed(s.set.Name); ok && s.owner == ownPolicy {
			s.elems = policyElems(p, ps)
		} else if s.set.Name == mapPolGroups {
			for g, k := range p.keys {
				s.elems = append(s.elems, keyGroupElem(k, g))
			}
		}
	}
}

// keyGroupElem is "key : group" of pol_groups.
func keyGroupElem(key, group uint32) nftables.SetElement {
	return nftables.SetElement{Key: keyBytes(key), Val: keyBytes(group)}
}

// dropPolicyElems forgets them again after the full sync: the compiled
// policy has them, and partial syncs diff against it.
func (rs *ruleset) dropPolicyElems() {
	for i := range rs.sets {
		if s := &rs.sets[i]; s.owner == ownPolicy {
			s.elems = nil
		}
	}
}

func polSetNamed(name string) (polSet, bool) {
	for _, p := range polSets {
		if p.name() == name {
			return p, true
		}
	}
	return polSet{}, false
}

// famIndex is 0 for IPv4, 1 for IPv6.
func famIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// policyElems renders every element of one policy set, under the keys of
// p.
func policyElems(p *polState, ps polSet) []nftables.SetElement {
	var out []nftables.SetElement
	if !ps.allow {
		for a, g := range dirGroups(p.c, ps.dir) {
			if famIndex(a) == ps.fam {
				out = append(out, groupElem(a, p.keys[g]))
			}
		}
		return out
	}
	for _, a := range dirAllows(p.c, ps.dir) {
		if famIndex(a.Peer.Addr()) == ps.fam {
			out = append(out, allowElem(a, p.keys[a.Group]))
		}
	}
	return out
}

func dirGroups(c *policy.Compiled, dir int) map[netip.Addr]uint32 {
	if dir == 0 {
		return c.EgressGroup
	}
	return c.IngressGroup
}

func dirAllows(c *policy.Compiled, dir int) []policy.Allow {
	if dir == 0 {
		return c.Egress
	}
	return c.Ingress
}

// keyBytes is a key as the sets hold it: in network byte order, which is
// how nft lists a mark in these sets (the library cannot tell it that
// their data is in host order). The packet mark, loaded in host order,
// is the key with its bytes swapped on little-endian machines.
func keyBytes(key uint32) []byte { return binary.BigEndian.AppendUint32(nil, key) }

// keyOfMark is the key a packet mark (in host order) stands for.
func keyOfMark(mark uint32) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, mark))
}

// groupElem is "address : key".
func groupElem(a netip.Addr, key uint32) nftables.SetElement {
	return nftables.SetElement{Key: a.AsSlice(), Val: keyBytes(key)}
}

// allowElem is the range "key . first address . protocol . first port" to
// "key . last address . protocol . last port"; protocol 0 (any) is the
// range 0-255. Each field takes a multiple of 4 bytes, as in registers.
func allowElem(a policy.Allow, key uint32) nftables.SetElement {
	r := prefixRange(a.Peer.Masked())
	n := 12 + r.first.BitLen()/8
	buf := make([]byte, 2*n) // key, then key end
	lo, hi := a.Proto, a.Proto
	if a.Proto == policy.ProtoAny {
		lo, hi = 0, 255
	}
	fill := func(b []byte, addr netip.Addr, proto uint8, port uint16) {
		binary.BigEndian.PutUint32(b, key)
		m := copy(b[4:], addr.AsSlice())
		b[4+m] = proto
		binary.BigEndian.PutUint16(b[8+m:], port)
	}
	fill(buf[:n], r.first, lo, a.PortLo)
	fill(buf[n:], r.last, hi, a.PortHi)
	return nftables.SetElement{Key: buf[:n:n], KeyEnd: buf[n:]}
}

// PolicyDropCounts returns, per policy group (see policy.Compiled), the
// number of packets network policy denied since the last full sync (the
// first sync of a Dataplane, one after an error, one an hour, and one
// after many policy changes; see polState): a full sync starts the counts
// again. Groups without drops are absent. Without policy, before the first
// sync and after a failed one, the map is empty.
func (d *Dataplane) PolicyDropCounts() (map[uint32]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	conn, err := d.connLocked()
	if err != nil {
		return nil, fmt.Errorf("read policy drop counts: %w", err)
	}
	if d.applied == nil || d.applied.rs.pol == nil {
		return map[uint32]uint64{}, nil
	}
	set := &nftables.Set{Table: knitTable(), Name: setPolDrops, KeyType: nftables.TypeMark}
	elems, err := conn.GetSetElements(set)
	if err != nil {
		return nil, fmt.Errorf("read policy drop counts from set %s: %w", setPolDrops, err)
	}
	out := make(map[uint32]uint64, len(elems))
	for _, e := range elems {
		if len(e.Key) != 4 || e.Counter == nil {
			continue
		}
		out[binary.BigEndian.Uint32(e.Key)] += e.Counter.Packets
	}
	return out, nil
}

// BridgeNetfilterOn reports whether br_netfilter passes bridged IPv4 and
// IPv6 traffic through the IP hooks in the calling thread's network
// namespace (net.bridge.bridge-nf-call-iptables and -ip6tables both 1).
// Without it, traffic between two pods of one bridge never meets the
// forward chain, and network policy cannot see it. The sysctls exist only
// while the br_netfilter module is loaded; they are 1 by default in every
// namespace then.
func BridgeNetfilterOn() (bool, error) {
	for _, name := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
		b, err := os.ReadFile("/proc/sys/net/bridge/" + name)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read net.bridge.%s: %w", name, err)
		}
		if strings.TrimSpace(string(b)) != "1" {
			return false, nil
		}
	}
	return true, nil
}
