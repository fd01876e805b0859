package dns

import (
	"net/netip"
	"strconv"
	"strings"
)

// kind is what the server knows of a query name.
type kind uint8

const (
	// notLocal: no knit container has the name; it is forwarded.
	notLocal kind = iota
	// nxDomain: a knit container has the name, but on no network of the client.
	nxDomain
	// local: a container on one of the client's networks has the name.
	local
)

// maxNameLen is the longest name in text form (253 characters, no trailing
// dot) a container can have.
const maxNameLen = 253

// client returns the view of the container owning address a, or the unknown
// client's.
func (sn *snapshot) client(a netip.Addr) *client {
	if cl, _ := sn.clients.get(a, addrHash(a)); cl != nil {
		return cl
	}
	return unknownClient
}

// matchName appends to sets the record sets named name (lowercase, no trailing
// dot) on the client's networks, one per network that has it. It allocates
// nothing while sets has room; the map index with string(name) does not copy.
func (sn *snapshot) matchName(cl *client, name []byte, sets []rrset) ([]rrset, kind) {
	found, h := false, nameHash(name)
	for _, i := range cl.nets {
		t := sn.nets[i]
		if t == nil {
			continue
		}
		if rs, ok := t.names.shard(h)[string(name)]; ok {
			sets = append(sets, rs)
			found = true
		}
	}
	switch {
	case found:
		return sets, local
	case sn.known.shard(h)[string(name)] > 0:
		return sets, nxDomain
	}
	return sets, notLocal
}

// matchPTR returns the PTR target ("name.") of address a as the client sees
// it. An address of a container on none of the client's networks is nxDomain;
// any other address is notLocal.
func (sn *snapshot) matchPTR(cl *client, a netip.Addr) (string, kind) {
	h := addrHash(a)
	for _, i := range cl.nets {
		if t := sn.nets[i]; t != nil {
			if name, ok := t.ptr.get(a, h); ok {
				return name, local
			}
		}
	}
	if sn.client(a) != unknownClient {
		return "", nxDomain
	}
	return "", notLocal
}

// reverseAddr parses the reverse-mapping name of one whole address
// (4.3.2.1.in-addr.arpa, or 32 nibbles then ip6.arpa), lowercase and without
// a trailing dot. Partial names (a /24 zone) are not addresses.
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			v, err := strconv.Atoi(l)
			if err != nil || v < 0 || v > 255 || strconv.Itoa(v) != l {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := range 32 {
			c := rest[i*2]
			if i < 31 && rest[i*2+1] != '.' {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", c)
			if v < 0 {
				return netip.Addr{}, false
			}
			// nibble i counts from the end of the address
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// lowerName lowercases ASCII letters and drops one trailing dot. A name that
// is already in that form is returned without a copy.
func lowerName(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
