// Package exprs builds the nftables expressions and element encodings that
// knit's data-plane features share: registers and 32-bit slots, address,
// protocol and port loads, lookups, NAT, verdicts and interval elements.
// Every expression is one nft 1.0.6 can list (tests read the table back
// with nft), and keys follow nft's layout, every field padded to 4 bytes.
package exprs

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Registers. NFT_REG_1 and NFT_REG_2 are 16 bytes each and adjacent, so
// "iifname . oifname" loads the two names into them and looks up reg 1 with
// the set's 32-byte key, as nft itself does.
const (
	Reg1 = 1
	Reg2 = 2
)

// Direction picks the input or the output interface of a packet.
type Direction bool

const (
	IIF Direction = true
	OIF Direction = false
)

// ifname encodes an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func IfName(name string) []byte {
	b := make([]byte, MaxIfNameLen+1)
	copy(b, name)
	return b
}

// concat joins the fields of a concatenated key, each padded to a multiple
// of 4 bytes (the register size).
func Concat(fields ...[]byte) []byte {
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
func IntervalElems(prefixes []netip.Prefix) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range MergeRanges(prefixes) {
		out = append(out, nftables.SetElement{Key: r.First.AsSlice()})
		if end := r.Last.Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

func Join(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func metaIf(d Direction, reg uint32) expr.Any {
	key := expr.MetaKeyOIFNAME
	if d == IIF {
		key = expr.MetaKeyIIFNAME
	}
	return &expr.Meta{Key: key, Register: reg}
}

// ifLookup matches "iifname @set" or "oifname @set".
func IfLookup(d Direction, set string) []expr.Any {
	return []expr.Any{metaIf(d, Reg1), &expr.Lookup{SourceRegister: Reg1, SetName: set}}
}

// ifPairLookup matches "iifname . oifname @set".
func IfPairLookup(set string) []expr.Any {
	return []expr.Any{
		metaIf(IIF, Reg1),
		metaIf(OIF, Reg2),
		&expr.Lookup{SourceRegister: Reg1, SetName: set},
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
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: []byte{proto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
}

// saddrLookup matches "ip saddr @set" or "ip6 saddr @set".
func SaddrLookup(family int, set string) []expr.Any {
	return append(saddr(family), &expr.Lookup{SourceRegister: Reg1, SetName: set})
}

func Jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func Return() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
}

func Drop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

func Masq() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Masq{}}
}
