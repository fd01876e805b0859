package dns

import (
	"maps"
	"net/netip"
)

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
