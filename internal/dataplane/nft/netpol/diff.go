package netpol

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
	"github.com/knit-net/knit/internal/policy"
)

// Partial syncs of network policy: what changed between the last applied
// compiled policy and the new one, group by group (see polState).

// policyDeltas fills next's keys from prev's and returns the element
// changes that bring the policy sets from prev to next (prev is what the
// table holds; the shape is the same, so both are nil or neither).
func policyDeltas(prev, next *polState) []nft.SetChange {
	if prev == nil || next == nil { // no policy (the shape is the same: both)
		return nil
	}
	if prev.c == next.c { // the same policy: nothing to send
		next.keys, next.groups, next.live, next.stale = prev.keys, prev.groups, prev.live, prev.stale
		return nil
	}
	next.keys = make(map[uint32]uint32, len(next.c.GroupPolicies))
	next.groups = make(map[uint32]uint32, len(prev.groups)+8)
	for k, g := range prev.groups {
		next.groups[k] = g
	}
	next.live, next.stale = 0, prev.stale
	var add [2][2][]nftables.SetElement // by direction and family
	had := map[uint32]bool{}            // groups with elements in prev
	for dir := range 2 {
		pl, pspans := groupSpans(prev.c.Allows(dir == 0))
		nl, nspans := groupSpans(next.c.Allows(dir == 0))
		for g := range pspans {
			had[g] = true
		}
		for g, ns := range nspans {
			elems := nl[ns.lo:ns.hi]
			next.live += len(elems)
			key, ok := prev.keys[g]
			var gained []policy.Allow
			if ok {
				ps := pspans[g]
				old := pl[ps.lo:ps.hi]
				if sameAllows(old, elems) {
					next.keys[g], next.groups[key] = key, g
					continue
				}
				var lost bool
				gained, lost = diffSorted(sortedAllows(old), sortedAllows(elems))
				if lost { // store the group anew (see polState)
					next.stale += len(old)
					key, gained = next.freshKey(key+1), elems
				}
			} else {
				key, gained = next.freshKey(g), elems
			}
			next.keys[g], next.groups[key] = key, g
			for _, a := range gained {
				f := famIndex(a.Peer.Addr())
				add[dir][f] = append(add[dir][f], allowElem(a, key))
			}
		}
		for g, ps := range pspans {
			if _, ok := next.keys[g]; !ok {
				next.stale += ps.hi - ps.lo
			}
		}
	}
	// Groups without elements (isolated, nothing allowed) need keys too:
	// a new one if the group lost the elements it had.
	for g := range next.c.GroupPolicies {
		if _, ok := next.keys[g]; !ok {
			key, ok := prev.keys[g]
			if !ok || had[g] {
				key = next.freshKey(g)
			}
			next.keys[g], next.groups[key] = key, g
		}
	}
	var addrDel, addrAdd [2][2][]nftables.SetElement // by direction and family
	for dir := range 2 {
		addrDel[dir], addrAdd[dir] = diffAddrs(prev.c.Groups(dir == 0), prev.keys, next.c.Groups(dir == 0), next.keys)
	}
	d := nft.SetChange{Set: mapPolGroups}
	for g, k := range prev.keys {
		if nk, ok := next.keys[g]; !ok || nk != k {
			d.Del = append(d.Del, nftables.SetElement{Key: keyBytes(k)})
		}
	}
	for g, k := range next.keys {
		if pk, ok := prev.keys[g]; !ok || pk != k {
			d.Add = append(d.Add, keyGroupElem(k, g))
		}
	}
	out := []nft.SetChange{d}
	for _, ps := range polSets {
		d := nft.SetChange{Set: ps.name()}
		if ps.allow {
			d.Add = add[ps.dir][ps.fam]
		} else {
			d.Del, d.Add = addrDel[ps.dir][ps.fam], addrAdd[ps.dir][ps.fam]
		}
		if len(d.Del)+len(d.Add) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// freshKey returns the first key from k on that no elements are stored
// under (0 is never one: groups start at 1).
func (p *polState) freshKey(k uint32) uint32 {
	for {
		if _, used := p.groups[k]; !used && k != 0 {
			return k
		}
		k++
	}
}

type span struct{ lo, hi int }

// groupSpans returns where each group's elements are in xs, which
// Compile sorts; when a group's elements are not together, in a sorted
// copy of xs.
func groupSpans(xs []policy.Allow) ([]policy.Allow, map[uint32]span) {
	out := map[uint32]span{}
	for lo := 0; lo < len(xs); {
		hi := lo + 1
		for hi < len(xs) && xs[hi].Group == xs[lo].Group {
			hi++
		}
		if _, seen := out[xs[lo].Group]; seen {
			return groupSpans(slices.SortedFunc(slices.Values(xs), compareAllowKey))
		}
		out[xs[lo].Group] = span{lo, hi}
		lo = hi
	}
	return xs, out
}

// sameAllows reports whether a and b hold the same elements in the same
// order.
func sameAllows(a, b []policy.Allow) bool {
	return slices.EqualFunc(a, b, func(x, y policy.Allow) bool { return x.Key() == y.Key() })
}

// diffSorted returns the elements of next not in prev, and whether prev
// has any that next has not; both are sorted by compareAllowKey.
func diffSorted(prev, next []policy.Allow) (gained []policy.Allow, lost bool) {
	i := 0
	for _, a := range next {
		for i < len(prev) && compareAllowKey(prev[i], a) < 0 {
			lost = true
			i++
		}
		if i < len(prev) && prev[i].Key() == a.Key() {
			i++
			continue
		}
		gained = append(gained, a)
	}
	return gained, lost || i < len(prev)
}

// diffAddrs returns the address map elements to delete and to add, by
// family: an address whose key changed is deleted and added again.
func diffAddrs(prev map[netip.Addr]uint32, prevKeys map[uint32]uint32, next map[netip.Addr]uint32, nextKeys map[uint32]uint32) (del, add [2][]nftables.SetElement) {
	kept := 0
	for a, g := range next {
		pg, ok := prev[a]
		key := nextKeys[g]
		if ok {
			kept++
			if prevKeys[pg] == key {
				continue
			}
			del[famIndex(a)] = append(del[famIndex(a)], nftables.SetElement{Key: a.AsSlice()})
		}
		add[famIndex(a)] = append(add[famIndex(a)], groupElem(a, key))
	}
	if kept == len(prev) {
		return del, add // every address of prev is still isolated
	}
	for a := range prev {
		if _, ok := next[a]; !ok {
			del[famIndex(a)] = append(del[famIndex(a)], nftables.SetElement{Key: a.AsSlice()})
		}
	}
	return del, add
}

func sortedAllows(xs []policy.Allow) []policy.Allow {
	if slices.IsSortedFunc(xs, compareAllowKey) {
		return xs
	}
	return slices.SortedFunc(slices.Values(xs), compareAllowKey)
}

// compareAllowKey orders elements by group, peer, protocol and ports, as
// policy.Compile does.
func compareAllowKey(a, b policy.Allow) int {
	if a.Group != b.Group {
		return cmp.Compare(a.Group, b.Group)
	}
	return cmp.Or(
		exprs.ComparePrefix(a.Peer, b.Peer),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.PortLo, b.PortLo),
		cmp.Compare(a.PortHi, b.PortHi),
	)
}
