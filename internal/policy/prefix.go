package policy

import (
	"net/netip"
	"slices"

	v1 "github.com/knit-net/knit/api/v1"
)

// Every address of each family: the peers of a rule without from/to.
var anyPeers = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// comparePrefix orders by address, then shorter first, so that a prefix
// comes right before the prefixes it contains.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// contains reports whether a contains all of b.
func contains(a, b netip.Prefix) bool {
	return a.Bits() <= b.Bits() && a.Contains(b.Addr())
}

// halves splits p (not a single address) into its two subprefixes.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits()
	lo := netip.PrefixFrom(p.Addr(), bits+1)
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	b[off+bits/8] |= 0x80 >> (bits % 8)
	hi := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		hi = hi.Unmap()
	}
	return lo, netip.PrefixFrom(hi, bits+1)
}

// Subtract returns the smallest list of prefixes covering p minus the union
// of holes, in address order. Holes of the other family are ignored; a hole
// covering p leaves nothing.
func Subtract(p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	p = p.Masked()
	var in []netip.Prefix
	for _, h := range holes {
		if h = h.Masked(); h.IsValid() && h.Overlaps(p) {
			in = append(in, h)
		}
	}
	var out []netip.Prefix
	var rec func(p netip.Prefix, holes []netip.Prefix)
	rec = func(p netip.Prefix, holes []netip.Prefix) {
		var in []netip.Prefix
		for _, h := range holes {
			if !h.Overlaps(p) {
				continue
			}
			if h.Bits() <= p.Bits() {
				return // p lies inside the hole
			}
			in = append(in, h)
		}
		if len(in) == 0 {
			out = append(out, p)
			return
		}
		lo, hi := halves(p)
		rec(lo, in)
		rec(hi, in)
	}
	rec(p, in)
	return out
}

// Aggregate returns the smallest list of prefixes covering the union of ps,
// in address order (both families; invalid prefixes are dropped). The
// result's prefixes are disjoint.
func Aggregate(ps []netip.Prefix) []netip.Prefix {
	s := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			s = append(s, p.Masked())
		}
	}
	return aggregate(s)
}

// aggregate is Aggregate of valid, masked prefixes, in place.
func aggregate(s []netip.Prefix) []netip.Prefix {
	slices.SortFunc(s, comparePrefix)
	out := s[:0]
	for _, p := range s {
		if n := len(out); n > 0 && contains(out[n-1], p) {
			continue
		}
		out = append(out, p)
		for n := len(out); n >= 2; n = len(out) {
			if parent, ok := buddies(out[n-2], out[n-1]); ok {
				out = append(out[:n-2], parent)
				continue
			}
			break
		}
	}
	return out
}

// buddies reports whether a and b (a before b) are the two halves of one
// prefix, and returns it.
func buddies(a, b netip.Prefix) (netip.Prefix, bool) {
	if a.Bits() != b.Bits() || a.Bits() == 0 || a.Addr().Is4() != b.Addr().Is4() {
		return netip.Prefix{}, false
	}
	parent := netip.PrefixFrom(a.Addr(), a.Bits()-1).Masked()
	if parent.Addr() != a.Addr() || !parent.Contains(b.Addr()) {
		return netip.Prefix{}, false
	}
	return parent, true
}

// blockPrefixes is an ipBlock as disjoint prefixes (cidr minus except); nil
// when the cidr does not parse. An except that does not parse makes the
// whole block match nothing (failing closed).
func blockPrefixes(b *v1.IPBlock) []netip.Prefix {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return nil
	}
	var holes []netip.Prefix
	for _, e := range b.Except {
		h, err := netip.ParsePrefix(e)
		if err != nil {
			return nil
		}
		holes = append(holes, h)
	}
	return Subtract(cidr, holes)
}

// containsAddr reports whether a lies in one of the sorted, disjoint
// prefixes ps.
func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	// The last prefix starting at or before a is the only candidate.
	i, found := slices.BinarySearchFunc(ps, a, func(p netip.Prefix, a netip.Addr) int { return p.Addr().Compare(a) })
	if found {
		return true
	}
	return i > 0 && ps[i-1].Contains(a)
}
