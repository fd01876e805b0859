package dns

import (
	"net/netip"
	"slices"
)

// netTable is one network's names and reverse names. A table in a published
// snapshot is never changed: a change works on a copy (see tableEdit).
type netTable struct {
	// names maps a lowercased name (no trailing dot) to the addresses of the
	// containers having it on this network.
	names smap[string, rrset]
	// ptr maps a container address on this network to "name.".
	ptr smap[netip.Addr, string]
}

// rrset is the addresses behind one name on one network, and how many
// containers have the name there (one may have no address). The bytes are
// never written once in a snapshot: a change replaces them, so rrsets share
// them freely (all names of a container on a network start with the same).
type rrset struct {
	// addrs are n4 IPv4 addresses, 4 bytes each, then the IPv6 ones, 16 each.
	addrs   []byte
	n4      int32
	holders int32
}

// packAddrs returns the rrset of one container with addrs.
func packAddrs(addrs []netip.Addr) rrset {
	rs := rrset{holders: 1}
	for _, a := range addrs {
		if a.Is4() {
			rs.n4++
		}
	}
	if len(addrs) == 0 {
		return rs
	}
	rs.addrs = make([]byte, 0, 4*int(rs.n4)+16*(len(addrs)-int(rs.n4)))
	for _, a := range addrs {
		if a.Is4() {
			rs.addrs = append(rs.addrs, a.AsSlice()...)
		}
	}
	for _, a := range addrs {
		if !a.Is4() {
			rs.addrs = append(rs.addrs, a.AsSlice()...)
		}
	}
	return rs
}

// count is the number of its IPv4 (or IPv6) addresses.
func (rs *rrset) count(v6 bool) int {
	if v6 {
		return (len(rs.addrs) - 4*int(rs.n4)) / 16
	}
	return int(rs.n4)
}

func (rs *rrset) v4() []byte { return rs.addrs[:4*rs.n4] }
func (rs *rrset) v6() []byte { return rs.addrs[4*rs.n4:] }

// join returns the rrset with the addresses of both, holders added.
func join(a, b rrset) rrset {
	out := make([]byte, 0, len(a.addrs)+len(b.addrs))
	out = append(append(out, a.v4()...), b.v4()...)
	out = append(append(out, a.v6()...), b.v6()...)
	return rrset{addrs: out, n4: a.n4 + b.n4, holders: a.holders + b.holders}
}

// subtract returns a without the addresses of b (every copy of them), and
// without b's holders.
func subtract(a, b rrset) rrset {
	out := rrset{holders: a.holders - b.holders}
	for _, part := range []struct {
		a, b []byte
		size int
	}{{a.v4(), b.v4(), 4}, {a.v6(), b.v6(), 16}} {
		for i := 0; i < len(part.a); i += part.size {
			x := part.a[i : i+part.size]
			if !containsAddr(part.b, x) {
				out.addrs = append(out.addrs, x...)
				if part.size == 4 {
					out.n4++
				}
			}
		}
	}
	return out
}

// containsAddr tells whether packed addresses of len(x) bytes each include x.
func containsAddr(packed, x []byte) bool {
	for i := 0; i < len(packed); i += len(x) {
		if string(packed[i:i+len(x)]) == string(x) {
			return true
		}
	}
	return false
}

// view is what one container enters in one network's table.
type view struct {
	names []string     // lowercased, each once
	addrs []netip.Addr // normalized
	ptr   string       // the PTR target of addrs, "" for none
}

func (v *view) equal(w *view) bool {
	if v == nil || w == nil {
		return v == w
	}
	return v.ptr == w.ptr && slices.Equal(v.names, w.names) && slices.Equal(v.addrs, w.addrs)
}

// tableEdit is a network's table being changed: a copy of the published one
// (or a new one) that copies its shards as they are written (smap.go).
type tableEdit struct {
	netID      string
	t          *netTable
	names, ptr cow
}

// update replaces what old (nil: nothing) entered in the table by what v
// (nil: nothing) enters, writing only the entries that differ.
func (te *tableEdit) update(old, v *view) {
	sameAddrs := old != nil && v != nil && slices.Equal(old.addrs, v.addrs)
	samePTR := old != nil && v != nil && old.ptr == v.ptr
	if old != nil {
		var rs rrset
		for _, name := range old.names {
			if sameAddrs && slices.Contains(v.names, name) {
				continue
			}
			h := nameHash(name)
			cur, ok := te.t.names.get(name, h)
			switch {
			case !ok:
			case cur.holders <= 1:
				te.t.names.del(name, h, &te.names)
			default:
				if rs.holders == 0 {
					rs = packAddrs(old.addrs)
				}
				te.t.names.set(name, h, subtract(cur, rs), &te.names)
			}
		}
		for _, a := range old.addrs {
			if !samePTR || !slices.Contains(v.addrs, a) {
				te.t.ptr.del(a, addrHash(a), &te.ptr)
			}
		}
	}
	if v == nil {
		return
	}
	var rs rrset
	for _, name := range v.names {
		if sameAddrs && slices.Contains(old.names, name) {
			continue
		}
		if rs.holders == 0 {
			rs = packAddrs(v.addrs)
		}
		h := nameHash(name)
		if cur, ok := te.t.names.get(name, h); ok {
			te.t.names.set(name, h, join(cur, rs), &te.names)
		} else {
			te.t.names.set(name, h, rs, &te.names)
		}
	}
	if v.ptr == "" {
		return
	}
	for _, a := range v.addrs {
		if !samePTR || !slices.Contains(old.addrs, a) {
			te.t.ptr.set(a, addrHash(a), v.ptr, &te.ptr)
		}
	}
}
