// Package ipam manages knit's addresses: it picks free subnets for new
// networks from address pools, and allocates, reserves and releases container
// addresses inside a network's subnet. Allocation state lives in the store
// (one key per address), and every operation runs inside the caller's store
// transaction, so concurrent requests never get the same address and a
// rejected request leaves nothing behind.
package ipam

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Pool is a base range carved into subnets of Size prefix bits, the way
// Docker's default-address-pools are.
type Pool struct {
	Base netip.Prefix
	Size int
}

func (p Pool) String() string { return fmt.Sprintf("base=%s,size=%d", p.Base, p.Size) }

// DefaultPools are Docker's defaults: 172.17–172.31 as /16s, then
// 192.168.0.0/16 as /20s; and for IPv6 a knit ULA /48 as /64s.
func DefaultPools() []Pool {
	return []Pool{
		{Base: netip.MustParsePrefix("172.17.0.0/16"), Size: 16},
		{Base: netip.MustParsePrefix("172.18.0.0/15"), Size: 16},
		{Base: netip.MustParsePrefix("172.20.0.0/14"), Size: 16},
		{Base: netip.MustParsePrefix("172.24.0.0/13"), Size: 16},
		{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20},
		{Base: netip.MustParsePrefix("fdb4:6b6e:6974::/48"), Size: 64},
	}
}

// ParsePool reads Docker's default-address-pool syntax, "base=CIDR,size=N".
func ParsePool(s string) (Pool, error) {
	var p Pool
	var haveBase, haveSize bool
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return p, fmt.Errorf("address pool %q: %q is not key=value; write base=10.200.0.0/16,size=24", s, part)
		}
		switch k {
		case "base":
			b, err := netip.ParsePrefix(v)
			if err != nil {
				return p, fmt.Errorf("address pool %q: base: %w", s, err)
			}
			p.Base, haveBase = b.Masked(), true
		case "size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return p, fmt.Errorf("address pool %q: size %q is not a number", s, v)
			}
			p.Size, haveSize = n, true
		default:
			return p, fmt.Errorf("address pool %q: unknown key %q; use base and size", s, k)
		}
	}
	if !haveBase || !haveSize {
		return p, fmt.Errorf("address pool %q: needs both base and size, e.g. base=10.200.0.0/16,size=24", s)
	}
	if p.Size < p.Base.Bits() || p.Size > p.Base.Addr().BitLen()-2 {
		return p, fmt.Errorf("address pool %q: size /%d must lie between the base's /%d and /%d", s, p.Size, p.Base.Bits(), p.Base.Addr().BitLen()-2)
	}
	return p, nil
}

// maxCandidates bounds the search of one pool (a /48 carved into /64s has
// 65,536 candidates).
const maxCandidates = 1 << 16

// PickSubnet returns the first subnet of the given family, from the pools in
// order, that overlaps none of taken (other networks and host routes).
func PickSubnet(pools []Pool, v6 bool, taken []netip.Prefix) (netip.Prefix, bool) {
	for _, pool := range pools {
		if pool.Base.Addr().Is6() != v6 {
			continue
		}
		cand := netip.PrefixFrom(pool.Base.Addr(), pool.Size)
		for i := 0; i < maxCandidates && pool.Base.Contains(cand.Addr()); i++ {
			if !overlapsAny(cand, taken) {
				return cand, true
			}
			next, ok := nextPrefix(cand)
			if !ok {
				break
			}
			cand = next
		}
	}
	return netip.Prefix{}, false
}

func overlapsAny(p netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if t.Overlaps(p) {
			return true
		}
	}
	return false
}

// nextPrefix is the prefix of the same length right after p.
func nextPrefix(p netip.Prefix) (netip.Prefix, bool) {
	b := p.Addr().AsSlice()
	bit := p.Bits() - 1 // add 1 at the last network bit
	for bit >= 0 {
		i, mask := bit/8, byte(0x80>>(bit%8))
		if b[i]&mask == 0 {
			b[i] |= mask
			a, _ := netip.AddrFromSlice(b)
			return netip.PrefixFrom(a, p.Bits()), true
		}
		b[i] &^= mask
		bit--
	}
	return netip.Prefix{}, false
}
