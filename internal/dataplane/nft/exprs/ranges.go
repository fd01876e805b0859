package exprs

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// MaxIfNameLen is IFNAMSIZ minus the terminating NUL.
const MaxIfNameLen = 15

// L4Proto is the IP protocol number of each protocol a port can use.
var L4Proto = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}

// Key types shared by more than one feature.
var (
	TypeIfPair    = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)
	TypeProtoPort = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	TypeAddrPort4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	TypeAddrPort6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
	TypePortKey4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	TypePortKey6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

// ComparePrefix orders prefixes by address, then length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// Range is an inclusive range of addresses of one family.
type Range struct{ First, Last netip.Addr }

func (r Range) String() string { return r.First.String() + "-" + r.Last.String() }

// PrefixRange returns the first and last address of a masked prefix.
func PrefixRange(p netip.Prefix) Range {
	first := p.Addr()
	b := first.AsSlice()
	hostBits := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	last, _ := netip.AddrFromSlice(b)
	return Range{First: first, Last: last}
}

// MergeRanges turns prefixes of one family into sorted, disjoint,
// non-adjacent ranges: the kernel's interval sets reject overlapping
// intervals, and two adjacent ones would share a boundary element.
func MergeRanges(prefixes []netip.Prefix) []Range {
	rs := make([]Range, 0, len(prefixes))
	for _, p := range prefixes {
		rs = append(rs, PrefixRange(p))
	}
	slices.SortFunc(rs, func(a, b Range) int { return a.First.Compare(b.First) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			next := prev.Last.Next()
			if !next.IsValid() || r.First.Compare(next) <= 0 {
				if r.Last.Compare(prev.Last) > 0 {
					prev.Last = r.Last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// IfElse is yes when cond, else no.
func IfElse[T any](cond bool, yes, no T) T {
	if cond {
		return yes
	}
	return no
}
