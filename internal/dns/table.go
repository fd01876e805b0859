package dns

import (
	"maps"
	"net/netip"
	"slices"
)

// netTable is one network's names and reverse names. A table in a published
// snapshot is never changed: a change works on a clone.
type netTable struct {
	// names maps a lowercased name (no trailing dot) to the addresses of the
	// containers having it on this network.
	names map[string]rrset
	// ptr maps a container address on this network to "name.".
	ptr map[netip.Addr]string
}

// rrset is the addresses behind one name on one network, in compact form,
// and how many containers have the name there (one may have no address).
// Its slices may be shared with older snapshots: they are never written in
// place, only replaced.
type rrset struct {
	v4      [][4]byte
	v6      [][16]byte
	holders int32
}

// clone returns a copy of t whose maps may be changed; an empty table for nil.
func (t *netTable) clone() *netTable {
	if t == nil {
		return &netTable{names: map[string]rrset{}, ptr: map[netip.Addr]string{}}
	}
	return &netTable{names: maps.Clone(t.names), ptr: maps.Clone(t.ptr)}
}

// add enters container c's names and addresses on ep's network.
func (t *netTable) add(c *Container, ep Endpoint) {
	v4, v6 := split(ep.Addrs)
	for _, name := range endpointNames(c, ep) {
		rs := t.names[name]
		// Clip: append must copy, not write into an array older snapshots share
		rs.v4 = append(slices.Clip(rs.v4), v4...)
		rs.v6 = append(slices.Clip(rs.v6), v6...)
		rs.holders++
		t.names[name] = rs
	}
	if ptr := ptrName(c); ptr != "" {
		for _, a := range ep.Addrs {
			t.ptr[a] = ptr
		}
	}
}

// remove takes out what add(c, ep) entered.
func (t *netTable) remove(c *Container, ep Endpoint) {
	v4, v6 := split(ep.Addrs)
	for _, name := range endpointNames(c, ep) {
		rs, ok := t.names[name]
		if !ok {
			continue
		}
		if rs.holders--; rs.holders <= 0 {
			delete(t.names, name)
			continue
		}
		rs.v4 = without(rs.v4, v4)
		rs.v6 = without(rs.v6, v6)
		t.names[name] = rs
	}
	for _, a := range ep.Addrs {
		delete(t.ptr, a)
	}
}

// endpointNames are the names c has on ep's network: its name, hostname and
// the endpoint's aliases, lowercased, each once.
func endpointNames(c *Container, ep Endpoint) []string {
	return dedupe(append([]string{c.Name, c.Hostname}, ep.Aliases...))
}

// split returns the IPv4 and IPv6 addresses of addrs in compact form.
func split(addrs []netip.Addr) (v4 [][4]byte, v6 [][16]byte) {
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a.As4())
		} else {
			v6 = append(v6, a.As16())
		}
	}
	return v4, v6
}

// without returns a new slice of the elements of s not in drop (nil if none
// is left).
func without[T comparable](s, drop []T) []T {
	var out []T
	for _, x := range s {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// The snapshot's two global maps, clients by address and known names, have
// an entry per container or more. Copying them whole on every change would
// make a change cost O(containers), and loading n containers O(n²). So each
// is split into shardCount maps by a hash of the key, and a change copies
// only the shards it writes to; the others are shared with the previous
// snapshot. A lookup costs one hash more.
const shardCount = 64

// addrShard picks the shard of an address from its last two bytes: container
// addresses are allocated in sequence, so these spread them evenly.
func addrShard(a netip.Addr) int {
	b := a.As16()
	return int(b[15]^b[14]<<3) % shardCount
}

// nameShard picks the shard of a name by FNV-1a.
func nameShard[T string | []byte](name T) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % shardCount)
}

// edit is a snapshot being built: it copies a shard the first time the
// change writes to it.
type edit struct {
	next                   *snapshot
	clientsCopy, knownCopy uint64 // shards already copied, one bit each
}

// clients returns the writable shard of the clients map that holds a.
func (e *edit) clients(a netip.Addr) map[netip.Addr]*client {
	i := addrShard(a)
	if e.clientsCopy&(1<<i) == 0 {
		e.next.clients[i] = cloneOrMake(e.next.clients[i])
		e.clientsCopy |= 1 << i
	}
	return e.next.clients[i]
}

// known returns the writable shard of the known-names map that holds name.
func (e *edit) known(name string) map[string]int32 {
	i := nameShard(name)
	if e.knownCopy&(1<<i) == 0 {
		e.next.known[i] = cloneOrMake(e.next.known[i])
		e.knownCopy |= 1 << i
	}
	return e.next.known[i]
}

func cloneOrMake[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return maps.Clone(m)
}
