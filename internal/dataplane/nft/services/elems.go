package services

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// svcSet names the sets and maps whose elements come from service ports.
// The IPv6 ones follow the IPv4 ones in the same order (see famSet).
type svcSet int

const (
	ssMap4           svcSet = iota // svc_v4: vip . proto . port → goto a count chain
	ssBackends4                    // svc_backends_v4: vip . proto . port . slot → backend
	ssAffBackends4                 // svc_aff_backends_v4: the same, for service ports with affinity
	ssNPMap4                       // svc_np_v4: proto . node port → goto a count chain
	ssNPBackends4                  // svc_np_backends_v4: proto . node port . slot → backend
	ssNPAffBackends4               // svc_np_aff_backends_v4
	ssVIPs4                        // svc_vips_v4: every VIP (counted, shared by service ports)
	ssMap6
	ssBackends6
	ssAffBackends6
	ssNPMap6
	ssNPBackends6
	ssNPAffBackends6
	ssVIPs6
	ssNodeports // svc_nodeports: proto . node port, both families
	numSvcSets
)

// famSet returns the IPv6 twin of an IPv4 set when v6.
func famSet(s svcSet, v6 bool) svcSet {
	if v6 {
		return s + ssMap6 - ssMap4
	}
	return s
}

var svcSetNames = [numSvcSets]string{
	ssMap4: "svc_v4", ssBackends4: "svc_backends_v4", ssAffBackends4: "svc_aff_backends_v4",
	ssNPMap4: "svc_np_v4", ssNPBackends4: "svc_np_backends_v4", ssNPAffBackends4: "svc_np_aff_backends_v4",
	ssVIPs4: "svc_vips_v4",
	ssMap6:  "svc_v6", ssBackends6: "svc_backends_v6", ssAffBackends6: "svc_aff_backends_v6",
	ssNPMap6: "svc_np_v6", ssNPBackends6: "svc_np_backends_v6", ssNPAffBackends6: "svc_np_aff_backends_v6",
	ssVIPs6:     "svc_vips_v6",
	ssNodeports: "svc_nodeports",
}

// svcElem is one element a service port puts in a service set.
type svcElem struct {
	set   svcSet
	key   []byte
	val   []byte // maps: backend address . port
	chain string // verdict maps: the count chain to go to
}

// id identifies the element within all service sets.
func (x svcElem) id() string { return string(rune(x.set)) + string(x.key) }

func (x svcElem) sameValue(y svcElem) bool { return x.chain == y.chain && bytes.Equal(x.val, y.val) }

func (x svcElem) setElement() nftables.SetElement {
	e := nftables.SetElement{Key: x.key, Val: x.val}
	if x.chain != "" {
		e.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: x.chain}
	}
	return e
}

// elemArena hands out the byte slices of keys and values from big chunks:
// a full sync renders every element of 10,000 service ports.
type elemArena struct{ buf []byte }

func (a *elemArena) take(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, 64<<10))
	}
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	return a.buf[start : start+n : start+n]
}

// Field encodings of concatenated keys: every field padded to 4 bytes,
// addresses and ports in network byte order, the slot (mark type) in host
// byte order, as numgen writes it.

func putAddr(b []byte, a netip.Addr) int {
	if a.Is4() {
		a4 := a.As4()
		return copy(b, a4[:])
	}
	a16 := a.As16()
	return copy(b, a16[:])
}

func putProtoPort(b []byte, proto byte, port uint16) int {
	b[0], b[1], b[2], b[3] = proto, 0, 0, 0
	binary.BigEndian.PutUint16(b[4:], port)
	b[6], b[7] = 0, 0
	return 8
}

func addrLen(v6 bool) int {
	if v6 {
		return 16
	}
	return 4
}

// backendVal is "address . port" of a backend.
func (a *elemArena) backendVal(b netip.AddrPort) []byte {
	v := a.take(addrLen(b.Addr().Is6()) + 4)
	n := putAddr(v, b.Addr())
	binary.BigEndian.PutUint16(v[n:], b.Port())
	v[n+2], v[n+3] = 0, 0
	return v
}

// elems returns everything e puts in the service sets but the VIP sets
// (shared by service ports; svcState counts them): per family with
// backends, for each VIP the goto to the count chain and one backend per
// slot, and the same for the node port; and the node port itself, which
// svc_check refuses when no backend took it.
func (e *svcEntry) elems(a *elemArena, out []svcElem) []svcElem {
	sp := &e.sp
	proto := exprs.L4Proto[sp.Protocol]
	t := sp.affinitySeconds()
	backends, npBackends := ssBackends4, ssNPBackends4
	if t > 0 {
		backends, npBackends = ssAffBackends4, ssNPAffBackends4
	}
	for _, v6 := range []bool{false, true} {
		bs := e.backends(v6)
		if len(bs) == 0 {
			continue
		}
		al := addrLen(v6)
		for _, vip := range sp.VIPs {
			if vip.Is6() != v6 {
				continue
			}
			fk := a.take(al + 8)
			putProtoPort(fk[putAddr(fk, vip):], proto, sp.Port)
			out = append(out, svcElem{set: famSet(ssMap4, v6), key: fk, chain: countChain(false, len(bs), t)})
			for i, b := range bs {
				k := a.take(al + 12)
				binary.NativeEndian.PutUint32(k[copy(k, fk):], uint32(i))
				out = append(out, svcElem{set: famSet(backends, v6), key: k, val: a.backendVal(b)})
			}
		}
		if sp.NodePort == 0 {
			continue
		}
		nk := a.take(8)
		putProtoPort(nk, proto, sp.NodePort)
		out = append(out, svcElem{set: famSet(ssNPMap4, v6), key: nk, chain: countChain(true, len(bs), t)})
		for i, b := range bs {
			k := a.take(12)
			binary.NativeEndian.PutUint32(k[copy(k, nk):], uint32(i))
			out = append(out, svcElem{set: famSet(npBackends, v6), key: k, val: a.backendVal(b)})
		}
	}
	if sp.NodePort != 0 {
		nk := a.take(8)
		putProtoPort(nk, proto, sp.NodePort)
		out = append(out, svcElem{set: ssNodeports, key: nk})
	}
	return out
}

// countBlock is the block of backend counts that K falls in: the count
// chains of a block (K = 64·b+1 … 64·b+64) are rendered together, so that
// an endpoint more or less changes elements only, not the ruleset's shape.
func countBlock(k int) int { return (k - 1) / countBlockSize }

const countBlockSize = 64

// countChain names the chain that picks one of k backends: svc_n<K> (VIP)
// and svc_np_n<K> (node port), and with affinity of t seconds
// svc_a<T>_n<K> and svc_a<T>_np_n<K>.
func countChain(np bool, k int, t uint32) string {
	name := "svc_"
	if t > 0 {
		name += "a" + strconv.FormatUint(uint64(t), 10) + "_"
	}
	if np {
		name += "np_"
	}
	return name + "n" + strconv.Itoa(k)
}

// materialize renders every element of the service sets, for a full sync.
func (st *svcState) materialize() [numSvcSets][]nftables.SetElement {
	// Sized first: 100,000 elements appended one by one would copy the
	// slices a dozen times over.
	var n [numSvcSets]int
	for _, e := range st.ports {
		for _, v6 := range []bool{false, true} {
			k := len(e.backends(v6))
			if k == 0 {
				continue
			}
			for _, vip := range e.sp.VIPs {
				if vip.Is6() == v6 {
					n[famSet(ssMap4, v6)]++
					n[famSet(ssBackends4, v6)] += k
				}
			}
			if e.sp.NodePort != 0 {
				n[famSet(ssNPMap4, v6)]++
				n[famSet(ssNPBackends4, v6)] += k
			}
		}
	}
	var out [numSvcSets][]nftables.SetElement
	for s, c := range n {
		out[s] = make([]nftables.SetElement, 0, c)
	}
	a := &elemArena{}
	var scratch []svcElem
	for _, e := range st.ports {
		scratch = e.elems(a, scratch[:0])
		for _, x := range scratch {
			out[x.set] = append(out[x.set], x.setElement())
		}
	}
	for vip := range st.vips {
		s := ssVIPs4
		if vip.Is6() {
			s = ssVIPs6
		}
		out[s] = append(out[s], nftables.SetElement{Key: vip.AsSlice()})
	}
	return out
}

// setElements converts service elements for the library; deletions need
// only the key.
func setElements(xs []svcElem) []nftables.SetElement {
	if len(xs) == 0 {
		return nil
	}
	out := make([]nftables.SetElement, len(xs))
	for i, x := range xs {
		out[i] = x.setElement()
	}
	return out
}
