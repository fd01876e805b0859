package dns

import (
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
)

// Every map of a snapshot (clients by address, known names, and each
// network's names and reverse names) is an smap: a Go map split into shards
// by a hash of the key. A change copies only the shards it writes to, and the
// slice of them; the others are shared with the previous snapshot. Copying
// whole maps would make a change cost O(containers), and loading n
// containers O(n²).
//
// The number of shards follows the size of the map, a power of two from 1 to
// maxShards: a map doubles them when it has more than shardGrow entries per
// shard, and halves them below shardShrink (a quarter of shardGrow, so a map
// swinging around one size is not re-split back and forth). A small network's
// table is thus a single Go map, and a shard mostly a small Go map (up to 8
// entries: one group, no directory), which takes no more memory per entry
// than a large one. A change copies the slice of shards (8 bytes a shard)
// and about shardGrow entries per key it writes; beyond maxShards×shardGrow
// entries (2,048), the shards grow instead.
const (
	maxShards   = 256
	shardGrow   = 8
	shardShrink = 2
)

// smap is an immutable sharded map; a change writes to a copy of it through
// set and del, then calls resize. Its zero value is an empty map.
type smap[K comparable, V any] struct {
	shards []map[K]V // nil when empty
	shift  uint8     // h>>shift is the shard of a key of hash h
	n      int32     // entries
}

// shard returns the shard holding the keys of hash h, nil if there is none.
// Lookups index it themselves: m[string(b)] does not copy b.
func (m *smap[K, V]) shard(h uint32) map[K]V {
	if m.shards == nil {
		return nil
	}
	return m.shards[h>>m.shift]
}

func (m *smap[K, V]) get(k K, h uint32) (V, bool) {
	v, ok := m.shard(h)[k]
	return v, ok
}

// cow records what a change has copied of one smap: the slice of shards, and
// which shards, one bit each.
type cow struct {
	slice  bool
	shards [maxShards / 64]uint64
}

// writable returns the shard for hash h, copied first unless c says this
// change has copied it already.
func (m *smap[K, V]) writable(h uint32, c *cow) map[K]V {
	if !c.slice {
		if m.shards == nil {
			m.shards, m.shift = make([]map[K]V, 1), 32
		} else {
			m.shards = slices.Clone(m.shards)
		}
		c.slice = true
	}
	i := h >> m.shift
	if c.shards[i/64]&(1<<(i%64)) == 0 {
		if m.shards[i] == nil {
			m.shards[i] = map[K]V{}
		} else {
			m.shards[i] = maps.Clone(m.shards[i])
		}
		c.shards[i/64] |= 1 << (i % 64)
	}
	return m.shards[i]
}

func (m *smap[K, V]) set(k K, h uint32, v V, c *cow) {
	s := m.writable(h, c)
	if _, ok := s[k]; !ok {
		m.n++
	}
	s[k] = v
}

func (m *smap[K, V]) del(k K, h uint32, c *cow) {
	if _, ok := m.shard(h)[k]; ok {
		delete(m.writable(h, c), k)
		m.n--
	}
}

// resize re-splits m, with hash the hash of its keys, when it has outgrown
// its shards or shrunk well below them. It ends the change: the shards it
// makes are new, and c no longer describes them.
func (m *smap[K, V]) resize(hash func(K) uint32) {
	if m.n == 0 {
		m.shards, m.shift = nil, 0
		return
	}
	k := len(m.shards)
	want := k
	for want < maxShards && int(m.n) > shardGrow*want {
		want *= 2
	}
	for want > 1 && int(m.n) < shardShrink*want {
		want /= 2
	}
	if want == k {
		return
	}
	shift := uint8(32)
	for w := want; w > 1; w /= 2 {
		shift--
	}
	shards := make([]map[K]V, want)
	for _, s := range m.shards {
		for key, v := range s {
			i := hash(key) >> shift
			if shards[i] == nil {
				shards[i] = make(map[K]V, int(m.n)/want)
			}
			shards[i][key] = v
		}
	}
	m.shards, m.shift = shards, shift
}

// nameHash is FNV-1a. Shards are picked by its top bits, the best mixed.
func nameHash[T string | []byte](name T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return h
}

// addrHash is a Fibonacci hash of the address: its top bits spread addresses
// allocated in sequence evenly.
func addrHash(a netip.Addr) uint32 {
	b := a.As16()
	x := binary.BigEndian.Uint64(b[:8]) ^ binary.BigEndian.Uint64(b[8:])
	return uint32(x * 0x9e3779b97f4a7c15 >> 32)
}
