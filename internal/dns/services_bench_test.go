package dns

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// benchServices returns n services, 100 per namespace: nine in ten with an
// IPv4 and an IPv6 cluster IP and two named ports, one in ten headless with
// three endpoints.
func benchServices(n int) []Service {
	svcs := make([]Service, n)
	for i := range svcs {
		s := Service{Name: fmt.Sprint("svc", i), Namespace: fmt.Sprint("ns", i/100),
			Ports: []ServicePort{{Name: "http", Protocol: "TCP", Port: 80}, {Name: "metrics", Protocol: "TCP", Port: 9090}}}
		if i%10 == 9 {
			s.Headless = true
			for j := range 3 {
				s.Endpoints = append(s.Endpoints, ServiceEndpoint{
					Hostname: fmt.Sprint("pod-", j),
					Addrs:    []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(i >> 6), byte(i<<2 | j)})},
					Ports:    []ServicePort{{Name: "http", Protocol: "TCP", Port: 8080}},
				})
			}
		} else {
			s.ClusterIPs = []netip.Addr{
				netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}),
				netip.AddrFrom16([16]byte{0xfd, 0, 0x96, 14: byte(i >> 8), 15: byte(i)}),
			}
		}
		svcs[i] = s
	}
	return svcs
}

// BenchmarkSetServices is the cost of one SetServices: changed, one service
// of n has a new address and the whole index is built anew; unchanged, the
// services are those of the last call.
func BenchmarkSetServices(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs := benchServices(n)
		other := slices.Clone(svcs)
		other[n/2].ClusterIPs = []netip.Addr{netip.MustParseAddr("10.96.255.255")}
		b.Run(fmt.Sprint(n, "/changed"), func(b *testing.B) {
			s := New(Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i++; i%2 == 0 {
					s.SetServices(svcs)
				} else {
					s.SetServices(other)
				}
			}
		})
		b.Run(fmt.Sprint(n, "/unchanged"), func(b *testing.B) {
			s := New(Options{})
			s.SetServices(svcs)
			b.ReportAllocs()
			for b.Loop() {
				s.SetServices(svcs)
			}
		})
	}
}

// BenchmarkAnswerFastService is a service lookup on the UDP path, less the
// syscalls, among 10,000 services and 1,000 containers.
func BenchmarkAnswerFastService(b *testing.B) {
	s := loaded(1000)
	s.SetServices(benchServices(10000))
	src := clientAddr(7)
	for _, name := range []string{"svc5.ns0.svc.cluster.local.", "svc9.ns0.svc.cluster.local.", "nope.ns0.svc.cluster.local."} {
		b.Run(name, func(b *testing.B) {
			q := packed(name, dns.TypeA)
			out := make([]byte, 0, ednsSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := s.answerFast(q, src, out[:0]); !ok {
					b.Fatal("not answered")
				}
			}
		})
	}
}

// BenchmarkServeDNSServiceSRV is the general path for an SRV question.
func BenchmarkServeDNSServiceSRV(b *testing.B) {
	s := loaded(1000)
	s.SetServices(benchServices(10000))
	q := packed("_http._tcp.svc9.ns0.svc.cluster.local.", dns.TypeSRV)
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

// TestMemoryPerService measures the service index.
func TestMemoryPerService(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes 10,000 services")
	}
	const n = 10000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	svcs := benchServices(n)
	before := heap()
	s := New(Options{})
	s.SetServices(svcs)
	per := float64(heap()-before) / n
	runtime.KeepAlive(s)
	t.Logf("service index: %.0f bytes per service (%d services, 2 named ports each, 1 in 10 headless with 3 endpoints)", per, n)
	if per > 4096 {
		t.Errorf("%.0f bytes per service; want well under knitd's 10 KiB budget", per)
	}
}

// TestQueriesDuringSetServices queries services while they are replaced, for
// the race detector.
func TestQueriesDuringSetServices(t *testing.T) {
	s := loaded(100)
	sets := [][]Service{benchServices(300), benchServices(200), nil}
	s.SetServices(sets[0])
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.SetServices(sets[i%len(sets)])
		}
	}()
	a := packed("svc19.ns0.svc.cluster.local.", dns.TypeA)
	srv := packed("_http._tcp.svc19.ns0.svc.cluster.local.", dns.TypeSRV)
	rev, _ := dns.ReverseAddr("10.96.0.1")
	w := &fakeWriter{remote: &net.UDPAddr{IP: clientAddr(7).AsSlice(), Port: 5353}}
	for i := range 5000 {
		s.answerFast(a, clientAddr(i%100), nil)
		if i%10 == 0 {
			for _, q := range [][]byte{srv, packed(rev, dns.TypePTR)} {
				m := new(dns.Msg)
				if err := m.Unpack(q); err != nil {
					t.Fatal(err)
				}
				s.ServeDNS(w, m)
			}
		}
	}
	close(stop)
	<-done
}
