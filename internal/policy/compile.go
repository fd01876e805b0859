package policy

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/knit-net/knit/api/v1"
)

// group is a set of pod addresses sharing their isolation in a direction.
type group struct {
	key      string // identity: the ID derives from it
	dir      int
	policies []*compiledPolicy
	ports    []v1.ContainerPort // ingress: what named ports resolve against
	addrs    []netip.Addr
	id       uint32
}

// Compile turns policies, namespaces and pods into set elements. It never
// fails: see the package documentation for how invalid input is treated.
func Compile(in Input) *Compiled {
	var c Compiler
	return c.Compile(in)
}

// assemble puts the groups' elements (in ID order) and maps together. The
// cached groups then keep their elements in the result, which is
// read-only, rather than in a copy of their own.
func assemble(ix *index, groups []*group, cached []*cachedGroup) *Compiled {
	var addrs [2]int
	for _, g := range groups {
		addrs[g.dir] += len(g.addrs)
	}
	c := &Compiled{
		IngressGroup:  make(map[netip.Addr]uint32, addrs[dirIngress]),
		EgressGroup:   make(map[netip.Addr]uint32, addrs[dirEgress]),
		GroupPolicies: make(map[uint32][]string, len(groups)),
		dirs:          [2]map[uint32]*compiledGroup{{}, {}},
	}
	var total [2]int
	for i, g := range groups {
		total[g.dir] += len(cached[i].elems)
	}
	c.Ingress, c.Egress = make([]Allow, 0, total[dirIngress]), make([]Allow, 0, total[dirEgress])
	for i, g := range groups {
		addrMap, elems := c.IngressGroup, &c.Ingress
		if g.dir == dirEgress {
			addrMap, elems = c.EgressGroup, &c.Egress
		}
		for _, a := range g.addrs {
			addrMap[a] = g.id
		}
		names := make([]string, len(g.policies))
		for j, p := range g.policies {
			names[j] = p.key
		}
		c.GroupPolicies[g.id] = names
		lo := len(*elems)
		*elems = append(*elems, cached[i].elems...)
		cached[i].elems = (*elems)[lo:len(*elems):len(*elems)] // the copy lives on, the built one goes
		c.dirs[g.dir][g.id] = &compiledGroup{lo: lo, hi: len(*elems), rules: cached[i].rules}
	}
	c.names = ix.names
	return c
}

// buildAll builds the elements of groups[todo] on all CPUs: groups are
// independent, and the rule allowances they share are read-only.
func buildAll(groups []*group, out []*cachedGroup, todo []int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(todo)) {
		wg.Go(func() {
			var b builder
			for t := int(next.Add(1)) - 1; t < len(todo); t = int(next.Add(1)) - 1 {
				i := todo[t]
				out[i].elems = b.build(groups[i].id, out[i].rules)
			}
		})
	}
	wg.Wait()
}

// groups partitions the addresses of the pods isolated in direction dir.
// keys remembers each pod's group key, which is costly to compute, for as
// long as its policies stay the same.
func (ix *index) groups(dir int, sel map[*pod][]*compiledPolicy, keys map[*pod]podKey) []*group {
	byKey := map[string]*group{}
	var out []*group
	add := func(a netip.Addr, pols []*compiledPolicy, ports []v1.ContainerPort, key string) {
		if key == "" {
			key = groupKey(dir, pols, ports)
		}
		g := byKey[key]
		if g == nil {
			g = &group{key: key, dir: dir, policies: pols, ports: ports}
			byKey[key] = g
			out = append(out, g)
		}
		g.addrs = append(g.addrs, a)
	}
	for _, q := range ix.pods {
		key := "" // of q's own addresses, computed once
		for _, a := range q.addrs {
			owners := ix.byAddr[a]
			if owners[0] != q {
				continue // handled with its first owner
			}
			if len(owners) == 1 {
				pols := sel[q]
				if len(pols) == 0 {
					continue
				}
				if key == "" {
					if k, ok := keys[q]; ok && slices.Equal(k.pols, pols) {
						key = k.key
					} else {
						key = groupKey(dir, pols, q.ports)
						keys[q] = podKey{pols, key}
					}
				}
				add(a, pols, q.ports, key)
				continue
			}
			// A shared address: the union of its pods' policies and ports.
			var pols []*compiledPolicy
			var ports []v1.ContainerPort
			for _, o := range owners {
				pols = append(pols, sel[o]...)
				ports = append(ports, o.ports...)
			}
			slices.SortFunc(pols, func(a, b *compiledPolicy) int { return cmp.Compare(a.key, b.key) })
			if pols = slices.Compact(pols); len(pols) > 0 {
				add(a, pols, ports, "")
			}
		}
	}
	return out
}

// groupKey identifies a group: direction, policies and, for ingress, what
// the named ports of those policies resolve to on the group's pods.
func groupKey(dir int, pols []*compiledPolicy, ports []v1.ContainerPort) string {
	var b strings.Builder
	n := 8
	for _, p := range pols {
		n += len(p.key) + 4
	}
	b.Grow(n)
	b.WriteString(dirNames[dir])
	for _, p := range pols {
		b.WriteByte('|')
		writeKeyString(&b, p.key)
	}
	if dir == dirEgress {
		return b.String()
	}
	var refs []namedRef
	for _, p := range pols {
		refs = append(refs, p.named...)
	}
	slices.SortFunc(refs, compareRef)
	for _, r := range slices.Compact(refs) {
		set := resolve([]namedRef{r}, ports)
		b.WriteString("#" + strconv.Itoa(r.proto))
		writeKeyString(&b, r.name)
		b.WriteString(set.key())
	}
	return b.String()
}

// rules are the allowances of g's policies' rules for g.
func (g *group) rules() []*ruleAllow {
	var out []*ruleAllow
	for _, p := range g.policies {
		if g.dir == dirEgress {
			out = append(out, p.eg...)
			continue
		}
		for i := range p.in {
			out = append(out, p.in[i].allow(g.ports))
		}
	}
	return out
}

// assignIDs gives each group the FNV-1a hash of its key, or on a collision
// the next free value, handing out IDs in key order: equal input gets equal
// IDs, and a group keeps its ID when other groups come and go (unless a
// collision shifts it).
func assignIDs(groups []*group) {
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(a.key, b.key) })
	taken := make(map[uint32]bool, len(groups))
	for _, g := range groups {
		h := fnv.New32a()
		h.Write([]byte(g.key))
		id := h.Sum32()
		for id == 0 || taken[id] {
			id++
		}
		taken[id] = true
		g.id = id
	}
}
