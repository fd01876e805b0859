package nft

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Registers. NFT_REG_1 and NFT_REG_2 are 16 bytes each and adjacent, so
// "iifname . oifname" loads the two names into them and looks up reg 1 with
// the set's 32-byte key, as nft itself does.
const (
	reg1 = 1
	reg2 = 2
)

type direction bool

const (
	iif direction = true
	oif direction = false
)

// ifname encodes an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(name string) []byte {
	b := make([]byte, maxIfNameLen+1)
	copy(b, name)
	return b
}

// concat joins the fields of a concatenated key, each padded to a multiple
// of 4 bytes (the register size).
func concat(fields ...[]byte) []byte {
	var out []byte
	for _, f := range fields {
		out = append(out, f...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

// intervalElems renders prefixes of one family as interval-set elements: a
// start element and an end element one past the last address. A range
// reaching the family's last address has no end element (open interval), as
// nft renders it.
func intervalElems(prefixes []netip.Prefix) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range mergeRanges(prefixes) {
		out = append(out, nftables.SetElement{Key: r.first.AsSlice()})
		if end := r.last.Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

func rule(c *nftables.Chain, comment string, exprs ...expr.Any) *nftables.Rule {
	return &nftables.Rule{
		Table:    c.Table,
		Chain:    c,
		Exprs:    exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

func join(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func metaIf(d direction, reg uint32) expr.Any {
	key := expr.MetaKeyOIFNAME
	if d == iif {
		key = expr.MetaKeyIIFNAME
	}
	return &expr.Meta{Key: key, Register: reg}
}

// ifLookup matches "iifname @set" or "oifname @set".
func ifLookup(d direction, set string) []expr.Any {
	return []expr.Any{metaIf(d, reg1), &expr.Lookup{SourceRegister: reg1, SetName: set}}
}

// ifPairLookup matches "iifname . oifname @set".
func ifPairLookup(set string) []expr.Any {
	return []expr.Any{
		metaIf(iif, reg1),
		metaIf(oif, reg2),
		&expr.Lookup{SourceRegister: reg1, SetName: set},
	}
}

// saddr matches the family ("meta nfproto ipv4") and loads the source
// address into reg 1. The family check is needed in an inet table: without
// it the payload load would read the other family's header.
func saddr(family int) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if family == 6 {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
}

// saddrLookup matches "ip saddr @set" or "ip6 saddr @set".
func saddrLookup(family int, set string) []expr.Any {
	return append(saddr(family), &expr.Lookup{SourceRegister: reg1, SetName: set})
}

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func verdictReturn() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
}

func drop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

func masq() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Masq{}}
}
