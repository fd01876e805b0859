package exprs

import (
	"time"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expressions of the service chains. Keys are concatenated into 32-bit
// register slots from a slot given by the caller, as nft does; an address
// takes 1 slot (IPv4) or 4 (IPv6), every other field 1. Only expressions
// that nft 1.0.6 can list are used (see docs/datapath.md, "Session
// affinity", for what that rules out).

// addrSlots is the number of 32-bit slots an address of the family takes.
func AddrSlots(family int) uint32 {
	if family == 6 {
		return 4
	}
	return 1
}

// loadAddr loads "ip saddr" or "ip daddr" (or ip6) into slot.
func LoadAddr(family int, src bool, slot uint32) expr.Any {
	off := uint32(IP4Daddr)
	switch {
	case family == 6 && src:
		off = 8
	case family == 6:
		off = IP6Daddr
	case src:
		off = IP4Saddr
	}
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg32(slot),
		Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4 * AddrSlots(family)}
}

// loadProtoPort loads "meta l4proto . th dport" into slot and slot+1.
func LoadProtoPort(slot uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: Reg32(slot)},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: Reg32(slot + 1),
			Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// numgen loads "numgen random mod mod offset off" into slot. With mod 1
// it is the constant off: the one way to put a constant into a
// concatenated key that nft still lists as a typed value (an immediate
// prints as "0x… [invalid type]").
func Numgen(slot, mod, off uint32) expr.Any {
	return &expr.Numgen{Register: Reg32(slot), Modulus: mod, Offset: off, Type: unix.NFT_NG_RANDOM}
}

// vmapLookup is "<key from slot> vmap @set".
func VmapLookup(slot uint32, set string) expr.Any {
	return &expr.Lookup{SourceRegister: Reg32(slot), DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: set}
}

// mapLookup is "<key from slot> map @set", the value into dst.
func MapLookup(slot, dst uint32, set string) expr.Any {
	return &expr.Lookup{SourceRegister: Reg32(slot), DestRegister: Reg32(dst), IsDestRegSet: true, SetName: set}
}

// setLookup matches "<key from slot> @set" (or "!= @set").
func SetLookup(slot uint32, set string, invert bool) expr.Any {
	return &expr.Lookup{SourceRegister: Reg32(slot), SetName: set, Invert: invert}
}

// dnatTo DNATs to the address in slot and the port in the slot after it.
func DNATTo(family int, slot uint32) expr.Any {
	nfp := uint32(unix.NFPROTO_IPV4)
	if family == 6 {
		nfp = unix.NFPROTO_IPV6
	}
	port := Reg32(slot + AddrSlots(family))
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: nfp, RegAddrMin: Reg32(slot), RegAddrMax: Reg32(slot),
		RegProtoMin: port, RegProtoMax: port, Specified: true}
}

// dynsetUpdate is "update @set { <key from slot> timeout t }": adds the
// element, or restarts the timeout of an existing one.
func DynsetUpdate(slot uint32, set string, t time.Duration) expr.Any {
	return &expr.Dynset{SrcRegKey: Reg32(slot), SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: t}
}

// ctStateNew matches "ct state new".
func CtStateNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: Reg1},
		&expr.Bitwise{SourceRegister: Reg1, DestRegister: Reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: Reg1, Data: make([]byte, 4)},
	}
}

// ctStatusNotDNAT matches "ct status & dnat == 0" (nft lists it as
// "ct status ! dnat"): nobody DNATed the connection.
func CtStatusNotDNAT() []expr.Any {
	e := CtStatusDNAT()
	e[2] = &expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: make([]byte, 4)}
	return e
}

// l4protoIs matches "meta l4proto tcp" and the like.
func L4ProtoIs(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: []byte{proto}},
	}
}

// rejectTCPReset is "reject with tcp reset"; rejectPortUnreachable is
// "reject" (ICMP or ICMPv6 port unreachable, by family).
func RejectTCPReset() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
}

func RejectPortUnreachable() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
}

func Accept() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
}

func Goto(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}}
}

// DaddrLookup matches "ip daddr @set" or "ip6 daddr @set".
func DaddrLookup(family int, set string) []expr.Any {
	return append(NFProto(family), LoadAddr(family, false, 0), SetLookup(0, set, false))
}

// LoadMark loads "meta mark" into slot; SetMark is "meta mark set" from
// slot.
func LoadMark(slot uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyMARK, Register: Reg32(slot)} }

// SetMark is "meta mark set" from slot.
func SetMark(slot uint32) expr.Any {
	return &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: Reg32(slot)}
}

// CtStateEstablishedRelated matches "ct state established,related".
func CtStateEstablishedRelated() []expr.Any {
	e := CtStateNew()
	e[1] = &expr.Bitwise{SourceRegister: Reg1, DestRegister: Reg1, Len: 4,
		Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)}
	return e
}
