package dns

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// dump is a snapshot in plain maps, by network ID, for comparing.
type dump struct {
	names   map[string]string // "net name" -> holders and sorted addresses
	ptr     map[string]string // "net addr" -> target
	clients map[netip.Addr]string
	known   map[string]int32
}

// netIDs maps the indices of reg's networks to their IDs.
func netIDs(reg *registry) map[int32]string {
	ids := map[int32]string{}
	for id, sl := range reg.nets {
		ids[sl.idx] = id
	}
	return ids
}

// flatten dumps sn, whose networks netID names, and checks the shards: every
// key in the shard of its hash, the counts right.
func flatten(t *testing.T, sn *snapshot, netID map[int32]string) dump {
	t.Helper()
	d := dump{names: map[string]string{}, ptr: map[string]string{}, clients: map[netip.Addr]string{}, known: map[string]int32{}}
	for i, tb := range sn.nets {
		if tb == nil {
			continue
		}
		id, ok := netID[int32(i)]
		if !ok {
			t.Fatalf("table %d belongs to no network", i)
		}
		walk(t, &tb.names, nameHash[string], func(k string, rs rrset) {
			var as []string
			for j := range rs.count(false) {
				as = append(as, netip.AddrFrom4(nth4([]rrset{rs}, j)).String())
			}
			for j := range rs.count(true) {
				as = append(as, netip.AddrFrom16(nth16([]rrset{rs}, j)).String())
			}
			slices.Sort(as)
			d.names[id+" "+k] = fmt.Sprint(rs.holders, as)
		})
		walk(t, &tb.ptr, addrHash, func(k netip.Addr, v string) { d.ptr[id+" "+k.String()] = v })
	}
	walk(t, &sn.clients, addrHash, func(k netip.Addr, cl *client) {
		var nets []string
		for _, i := range cl.nets {
			nets = append(nets, netID[i])
		}
		d.clients[k] = fmt.Sprint(cl.id, nets, cl.upstreams, cl.internal)
	})
	walk(t, &sn.known, nameHash[string], func(k string, v int32) { d.known[k] = v })
	return d
}

func walk[K comparable, V any](t *testing.T, m *smap[K, V], hash func(K) uint32, f func(K, V)) {
	t.Helper()
	n := 0
	for i, s := range m.shards {
		for k, v := range s {
			if int(hash(k)>>m.shift) != i {
				t.Fatalf("key %v in shard %d of %d", k, i, len(m.shards))
			}
			f(k, v)
			n++
		}
	}
	if n != int(m.n) || len(m.shards) > maxShards || (n == 0) != (m.shards == nil) {
		t.Fatalf("map of %d entries says %d, has %d shards", n, m.n, len(m.shards))
	}
}

// rebuilt is the dump of a new server given the containers of s.
func rebuilt(t *testing.T, s *Server) dump {
	fresh := New(Options{})
	for _, c := range s.reg.containers {
		fresh.SetContainer(*c)
	}
	return flatten(t, fresh.snap.Load(), netIDs(&fresh.reg))
}

// randomContainer is container id with random names and networks; its
// addresses come from its own pool, so no two containers share one.
func randomContainer(r *rand.Rand, id, nets int) Container {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	c := Container{ID: fmt.Sprint("c", id), Name: pick("", "web", "Web", fmt.Sprint("c", id)), Hostname: pick("", "host", fmt.Sprint("h", id)), Internal: r.IntN(4) == 0}
	if r.IntN(3) == 0 {
		c.Upstreams = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53")}
	}
	for n := range nets {
		if r.IntN(2) == 0 {
			continue
		}
		ep := Endpoint{NetworkID: fmt.Sprint("n", n), Aliases: []string{pick("", "db", "API", fmt.Sprint("a", id))}}
		for range r.IntN(3) {
			if r.IntN(2) == 0 {
				ep.Addrs = append(ep.Addrs, netip.AddrFrom4([4]byte{10, byte(n), byte(id), byte(r.IntN(4))}))
			} else {
				ep.Addrs = append(ep.Addrs, netip.AddrFrom16([16]byte{0xfd, 14: byte(id), 15: byte(n<<4 | r.IntN(4))}))
			}
		}
		c.Endpoints = append(c.Endpoints, ep)
	}
	return c
}

// TestIncrementalIndex checks that the snapshot a change builds is the one
// a fresh server builds from the same containers, and that the snapshots it
// replaced are unchanged.
func TestIncrementalIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := New(Options{})
	for step := range 3000 {
		prev, ids := s.snap.Load(), netIDs(&s.reg)
		before := flatten(t, prev, ids)
		if id := r.IntN(12); r.IntN(5) == 0 {
			s.DeleteContainer(fmt.Sprint("c", id))
		} else {
			s.SetContainer(randomContainer(r, id, 5))
		}
		if got, want := flatten(t, s.snap.Load(), netIDs(&s.reg)), rebuilt(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: incremental index\n%+v\nrebuilt\n%+v", step, got, want)
		}
		if !reflect.DeepEqual(flatten(t, prev, ids), before) {
			t.Fatalf("step %d: a change wrote to the snapshot it replaced", step)
		}
	}
}

// TestIndexShards loads enough containers on one network for its maps to
// grow to many shards, then removes them, checking the index on the way.
func TestIndexShards(t *testing.T) {
	const n = 3000
	s := New(Options{})
	check := func(when string) {
		if got, want := flatten(t, s.snap.Load(), netIDs(&s.reg)), rebuilt(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: incremental and rebuilt index differ", when)
		}
	}
	for i := range n {
		c := benchContainer(i)
		c.Endpoints[0].NetworkID = "big"
		s.SetContainer(c)
		if i%500 == 0 {
			check(fmt.Sprint("loading ", i))
		}
	}
	check("loaded")
	if k := len(s.snap.Load().nets[0].names.shards); k < 128 {
		t.Errorf("%d names on a network in %d shards", 3*n, k)
	}
	for i := range n {
		s.DeleteContainer(benchContainer(i).ID)
		if i%500 == 0 {
			check(fmt.Sprint("deleting ", i))
		}
	}
	if sn := s.snap.Load(); sn.clients.shards != nil || sn.known.shards != nil || slices.ContainsFunc(sn.nets, func(t *netTable) bool { return t != nil }) {
		t.Errorf("index not empty after deleting every container")
	}
}

// TestQueriesDuringChanges queries while containers change, for the race
// detector: a change must never write to what a query may be reading.
func TestQueriesDuringChanges(t *testing.T) {
	s := loaded(300)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := rand.New(rand.NewPCG(3, 4))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := benchContainer(r.IntN(300))
			if i%3 == 0 {
				c.Endpoints = append(c.Endpoints, Endpoint{NetworkID: "net0", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 201, 0, byte(i)})}})
			}
			s.SetContainer(c)
			if i%7 == 0 {
				s.DeleteContainer(benchContainer(r.IntN(300)).ID)
			}
		}
	}()
	q := packed("c5.", dns.TypeA)
	rev, _ := dns.ReverseAddr(clientAddr(6).String())
	w := &fakeWriter{remote: &net.UDPAddr{IP: clientAddr(7).AsSlice(), Port: 5353}}
	for i := range 20000 {
		s.answerFast(q, clientAddr(i%300), nil)
		if i%20 == 0 {
			m := new(dns.Msg)
			m.SetQuestion(rev, dns.TypePTR)
			s.ServeDNS(w, m)
		}
	}
	close(stop)
	<-done
}
