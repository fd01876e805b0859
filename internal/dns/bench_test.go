package dns

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/miekg/dns"
)

// loaded returns a server with n containers spread over networks of 250,
// each with a name, a hostname, an alias, an IPv4 and an IPv6 address. The
// client address of container i is clientAddr(i).
func loaded(n int) *Server {
	s := New(Options{})
	for i := range n {
		s.SetContainer(benchContainer(i))
	}
	return s
}

func benchContainer(i int) Container {
	return Container{
		ID:       fmt.Sprintf("%064x", i),
		Name:     fmt.Sprintf("c%d", i),
		Hostname: fmt.Sprintf("%012x", i),
		Endpoints: []Endpoint{{
			NetworkID: fmt.Sprintf("net%d", i/250),
			Addrs:     []netip.Addr{clientAddr(i), netip.AddrFrom16([16]byte{0xfd, 0, 14: byte(i >> 8), 15: byte(i)})},
			Aliases:   []string{fmt.Sprintf("alias%d", i)},
		}},
	}
}

func clientAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}) }

func packed(name string, t uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	b, _ := m.Pack()
	return b
}

// BenchmarkAnswerFast is the UDP path for a local name, less the syscalls.
func BenchmarkAnswerFast(b *testing.B) {
	s := loaded(1000)
	q := packed("C5.", dns.TypeA)
	out := make([]byte, 0, ednsSize)
	src := clientAddr(7)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.answerFast(q, src, out[:0]); !ok {
			b.Fatal("not answered")
		}
	}
}

// BenchmarkServeDNSLocal is the general path for the same query: unpack,
// ServeDNS, pack.
func BenchmarkServeDNSLocal(b *testing.B) {
	s := loaded(1000)
	q := packed("C5.", dns.TypeA)
	w := &fakeWriter{remote: &net.UDPAddr{IP: clientAddr(7).AsSlice(), Port: 5353}}
	b.ReportAllocs()
	for b.Loop() {
		m := new(dns.Msg)
		if err := m.Unpack(q); err != nil {
			b.Fatal(err)
		}
		w.out = w.out[:0]
		s.ServeDNS(w, m)
	}
}

// BenchmarkSetContainer replaces one container among n, changing an alias:
// the cost of a change, which copies the shards of the container's network
// and of the known names holding the two aliases.
func BenchmarkSetContainer(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := loaded(n)
			c := benchContainer(n / 2)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				c.Endpoints[0].Aliases = []string{fmt.Sprintf("alias-%d", i)}
				s.SetContainer(c)
			}
		})
	}
}

// TestMemoryPerContainer checks the index against knitd's budget of 10 KiB
// per container in all: it should take a small part of it, on large networks
// and on small ones (a compose project's), whose tables are many.
func TestMemoryPerContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000 containers")
	}
	const n = 10000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, perNet := range []int{250, 3} {
		cs := make([]Container, n)
		for i := range cs {
			cs[i] = benchContainer(i) // the caller's copy is not the server's cost
			cs[i].Endpoints[0].NetworkID = fmt.Sprint("net", i/perNet)
		}
		before := heap()
		s := New(Options{})
		for _, c := range cs {
			s.SetContainer(c)
		}
		per := float64(heap()-before) / n
		runtime.KeepAlive(s)
		t.Logf("index: %.0f bytes per container (%d containers, %d per network, 2 addresses, 3 names each)", per, n, perNet)
		if per > 2048 {
			t.Errorf("%.0f bytes per container; want well under knitd's 10 KiB budget", per)
		}
	}
}

// BenchmarkConnectNetwork is the change that profiling knitd showed to cost
// most: at 1,000 containers on one network A, one of them is connected to a
// second network B (50 containers of A are on B too), and disconnected again.
// An op is one SetContainer, connects and disconnects alternating; neither
// should copy A's table, which does not change.
func BenchmarkConnectNetwork(b *testing.B) {
	const n = 1000
	s := New(Options{})
	onB := func(c *Container, i int) {
		c.Endpoints = append(c.Endpoints, Endpoint{NetworkID: "netB", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 201, byte(i >> 8), byte(i)})}})
	}
	for i := range n {
		c := benchContainer(i)
		c.Endpoints[0].NetworkID = "netA"
		if i < 50 {
			onB(&c, i)
		}
		s.SetContainer(c)
	}
	detached := benchContainer(n / 2)
	detached.Endpoints[0].NetworkID = "netA"
	attached := benchContainer(n / 2)
	attached.Endpoints[0].NetworkID = "netA"
	onB(&attached, n/2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; i%2 == 1 {
			s.SetContainer(attached)
		} else {
			s.SetContainer(detached)
		}
	}
}
