package netpol

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

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
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

// policySetSpecs returns the policy sets and maps.
func policySetSpecs() []nft.SetSpec {
	var out []nft.SetSpec
	for _, p := range polSets {
		s := &nftables.Set{Name: p.name()}
		switch {
		case p.allow:
			s.Interval, s.Concatenation = true, true
			s.KeyType = []nftables.SetDatatype{typePolAllow4, typePolAllow6}[p.fam]
		default:
			s.IsMap, s.DataType = true, nftables.TypeMark
			s.KeyType = []nftables.SetDatatype{nftables.TypeIPAddr, nftables.TypeIP6Addr}[p.fam]
			s.KeyByteOrder = binaryutil.BigEndian // how nft prints the addresses
		}
		out = append(out, nft.SetSpec{Set: s})
	}
	groups := &nftables.Set{Name: mapPolGroups, IsMap: true, KeyType: nftables.TypeMark,
		DataType: nftables.TypeMark, KeyByteOrder: binaryutil.BigEndian}
	drops := &nftables.Set{Name: setPolDrops, KeyType: nftables.TypeMark,
		Dynamic: true, Counter: true, Size: polDropsSize, KeyByteOrder: binaryutil.BigEndian}
	return append(out, nft.SetSpec{Set: groups}, nft.SetSpec{Set: drops})
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

// fill returns every element of the compiled policy, for a full sync,
// each group under its own ID.
func (p *polState) fill() []nft.SetChange {
	p.keys = make(map[uint32]uint32, len(p.c.GroupPolicies))
	p.groups = make(map[uint32]uint32, len(p.c.GroupPolicies))
	for g := range p.c.GroupPolicies {
		p.keys[g], p.groups[g] = g, g
	}
	p.live, p.stale = len(p.c.Ingress)+len(p.c.Egress), 0
	var out []nft.SetChange
	for _, ps := range polSets {
		out = append(out, nft.SetChange{Set: ps.name(), Add: policyElems(p, ps)})
	}
	groups := nft.SetChange{Set: mapPolGroups}
	for g, k := range p.keys {
		groups.Add = append(groups.Add, keyGroupElem(k, g))
	}
	return append(out, groups)
}

// keyGroupElem is "key : group" of pol_groups.
func keyGroupElem(key, group uint32) nftables.SetElement {
	return nftables.SetElement{Key: keyBytes(key), Val: keyBytes(group)}
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
		for a, g := range p.c.Groups(ps.dir == 0) {
			if famIndex(a) == ps.fam {
				out = append(out, groupElem(a, p.keys[g]))
			}
		}
		return out
	}
	for _, a := range p.c.Allows(ps.dir == 0) {
		if famIndex(a.Peer.Addr()) == ps.fam {
			out = append(out, allowElem(a, p.keys[a.Group]))
		}
	}
	return out
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
	r := exprs.PrefixRange(a.Peer.Masked())
	n := 12 + r.First.BitLen()/8
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
	fill(buf[:n], r.First, lo, a.PortLo)
	fill(buf[n:], r.Last, hi, a.PortHi)
	return nftables.SetElement{Key: buf[:n:n], KeyEnd: buf[n:]}
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

// AllowElement is the element of an allow set that holds a under key, as
// the table holds it (for inspection and tests).
func AllowElement(a policy.Allow, key uint32) nftables.SetElement { return allowElem(a, key) }
