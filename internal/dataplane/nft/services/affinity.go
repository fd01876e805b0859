package services

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// Session affinity keeps, per family, one learned set of "client . address
// . l4proto . port . slot": the client was sent to the backend in that slot
// of the frontend it reached (a VIP, or a node port on that address), and
// will be again until it opens no new connection for the affinity timeout.
// The packet path adds and refreshes elements (svc_a<T>_* chains); nothing
// else does.
//
// An element names a slot, not a backend: the kernel resolves the slot
// through the backend map in the same transaction that changes it, so an
// element can never send a client to a backend that is gone. But slots are
// the backends' positions in sorted order, and they move when backends come
// and go. After a sync that changed the backends of a service port with
// affinity, and after every full sync (a restarted knitd does not know what
// the table held), remapAffinity moves each element to the slot its backend
// has now, and deletes the elements whose backend is gone (their clients
// pick again) or whose frontend no longer has affinity.

// remapMargin: elements that expire sooner are left alone. Deleting an
// element that has expired by the time the transaction commits would fail
// the whole transaction (v0.3.0 of the library cannot send the kernel's
// DESTROYSETELEM, which tolerates that).
const remapMargin = time.Second

// affinityBackends are the backend maps of service ports with affinity,
// which the slots of the learned elements refer to.
var affinityBackends = []svcSet{ssAffBackends4, ssAffBackends6, ssNPAffBackends4, ssNPAffBackends6}

func isAffinityBackends(s svcSet) bool { return slices.Contains(affinityBackends, s) }

// remapAffinity reads the affinity sets and the affinity backend maps as
// the table holds them now (before the sync's transaction) and returns
// what moves each element to its backend's slot in st. The sets must
// exist.
func remapAffinity(k nft.Kernel, st *svcState) ([]nft.SetChange, error) {
	old := map[string]netip.AddrPort{} // backend map key → backend
	for _, s := range affinityBackends {
		elems, err := k.Elements(svcSetNames[s])
		if err != nil {
			return nil, err
		}
		for _, e := range elems {
			if b, ok := parseBackend(e.Val); ok {
				old[string(rune(s))+string(e.Key)] = b
			}
		}
	}
	var out []nft.SetChange
	for _, v6 := range []bool{false, true} {
		name := exprs.IfElse(v6, setSvcAffinity6, setSvcAffinity4)
		elems, err := k.Elements(name)
		if err != nil {
			return nil, err
		}
		ops := nft.SetChange{Set: name}
		for _, e := range elems {
			if e.Expires != 0 && e.Expires < remapMargin {
				continue
			}
			slot, ok := st.remapSlot(e.Key, v6, old)
			switch {
			case ok && slot < 0:
				continue
			case ok:
				n := slices.Clone(e.Key)
				binary.NativeEndian.PutUint32(n[len(n)-4:], uint32(slot))
				ops.Add = append(ops.Add, nftables.SetElement{Key: n, Timeout: max(e.Expires, time.Millisecond)})
			}
			ops.Del = append(ops.Del, nftables.SetElement{Key: e.Key})
		}
		if len(ops.Del) > 0 {
			out = append(out, ops)
		}
	}
	return out, nil
}

// remapSlot returns the slot that the backend of an affinity element has
// in st: ok with -1 when the element is right as it is, !ok when it must
// go. old maps the backend maps' keys (with their svcSet in front) to the
// backends as the table holds them.
func (st *svcState) remapSlot(key []byte, v6 bool, old map[string]netip.AddrPort) (int, bool) {
	al := addrLen(v6)
	if len(key) != 2*al+12 {
		return 0, false
	}
	daddr, _ := netip.AddrFromSlice(key[al : 2*al])
	proto, port := key[2*al], binary.BigEndian.Uint16(key[2*al+4:])
	slot := binary.NativeEndian.Uint32(key[2*al+8:])
	// As the packet path does: the VIP's backend map first, then the node
	// port's.
	b, ok := old[string(rune(famSet(ssAffBackends4, v6)))+string(key[al:])]
	e := st.fronts[frontKey{addr: daddr, port: port, proto: proto}]
	if !ok {
		b, ok = old[string(rune(famSet(ssNPAffBackends4, v6)))+string(key[2*al:])]
		e = st.fronts[frontKey{port: port, proto: proto}]
	}
	if !ok || e == nil || e.sp.AffinityTimeout == 0 {
		return 0, false
	}
	i := slices.Index(e.backends(v6), b)
	switch {
	case i < 0:
		return 0, false
	case uint32(i) == slot:
		return -1, true
	}
	return i, true
}

// parseBackend decodes a backend map value, "address . port".
func parseBackend(v []byte) (netip.AddrPort, bool) {
	if len(v) != 8 && len(v) != 20 {
		return netip.AddrPort{}, false
	}
	a, _ := netip.AddrFromSlice(v[:len(v)-4])
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[len(v)-4:])), true
}

// touchesAffinity reports whether the delta changes a backend map of
// service ports with affinity, which moves slots.
func (d *svcDelta) touchesAffinity() bool {
	d.resolve()
	for _, s := range affinityBackends {
		if len(d.del[s])+len(d.add[s]) > 0 {
			return true
		}
	}
	return false
}
