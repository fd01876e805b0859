package exprs

import (
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expressions of the NAT chains: published ports, hairpin and the
// 127.0.0.0/8 guard.

// ipsDstNAT is IPS_DST_NAT of the conntrack status: the connection was
// DNATed (by any table).
const ipsDstNAT = 1 << 5

// reg32 is the 32-bit register slot n (NFT_REG32_00 + n). Slots 0-3 share
// storage with the 16-byte register 1, so a key concatenated into slots
// from 0 is looked up from reg1. A slot that starts a 16-byte register is
// named by that register, as the kernel lists it (and nft writes it), so
// that rules read back from the kernel compare equal to rendered ones.
func Reg32(n uint32) uint32 {
	if n%4 == 0 {
		return Reg1 + n/4
	}
	return unix.NFT_REG32_00 + n
}

// nfproto matches "meta nfproto ipv4" or "meta nfproto ipv6".
func NFProto(family int) []expr.Any {
	proto := byte(unix.NFPROTO_IPV4)
	if family == 6 {
		proto = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: []byte{proto}},
	}
}

// netHeaderIs matches n bytes of the network header at off, after the
// family check: "ip daddr 127.0.0.0/8" is the first byte of the
// destination equal to 127.
func NetHeaderIs(family int, off, n uint32, want []byte) []expr.Any {
	return append(NFProto(family),
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: want})
}

// Offsets in the IPv4 and IPv6 headers.
const (
	IP4Saddr = 12
	IP4Daddr = 16
	IP6Daddr = 24
)

// fibType matches "fib saddr type OP local" or "fib daddr type OP local".
func FibType(saddr bool, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: Reg1, FlagSADDR: saddr, FlagDADDR: !saddr, ResultADDRTYPE: true},
		&expr.Cmp{Op: op, Register: Reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// ctStatusDNAT matches "ct status dnat".
func CtStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: Reg1},
		&expr.Bitwise{SourceRegister: Reg1, DestRegister: Reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: Reg1, Data: make([]byte, 4)},
	}
}

// iifNameIsNot matches `iifname != "name"`.
func IifNameIsNot(name string) []expr.Any {
	return []expr.Any{metaIf(IIF, Reg1), &expr.Cmp{Op: expr.CmpOpNeq, Register: Reg1, Data: IfName(name)}}
}

// noIif matches "iif 0": the packet has no input interface in this hook.
// In postrouting that is locally generated traffic, and traffic that
// br_netfilter bridged after a DNAT (it passes no input device to the IP
// hooks there).
func NoIif() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: make([]byte, 4)},
	}
}

// dnatMap is "dnat ip to ip daddr . meta l4proto . th dport map @set"
// (byAddr) or "meta nfproto ipv4 dnat ip to meta l4proto . th dport map
// @set", or the ip6 forms. As nft does, the key is concatenated into 32-bit
// slots from slot 0 and the map's value, "address . port", comes back into
// slots from 0: the address in the first one (IPv4) or four (IPv6), the
// port in the next.
func DNATMap(family int, byAddr bool, set string) []expr.Any {
	AddrSlots, daddr, nfp := uint32(1), uint32(IP4Daddr), uint32(unix.NFPROTO_IPV4)
	if family == 6 {
		AddrSlots, daddr, nfp = 4, IP6Daddr, unix.NFPROTO_IPV6
	}
	out := NFProto(family)
	slot := uint32(0)
	if byAddr {
		out = append(out, &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg32(0),
			Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: 4 * AddrSlots})
		slot = AddrSlots
	}
	port := Reg32(AddrSlots)
	return append(out,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: Reg32(slot)},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg32(slot + 1),
			Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: Reg32(0), DestRegister: Reg32(0), IsDestRegSet: true, SetName: set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: nfp, RegAddrMin: Reg32(0), RegAddrMax: Reg32(0),
			RegProtoMin: port, RegProtoMax: port, Specified: true},
	)
}
