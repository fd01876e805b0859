package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func ports(proto int, xs ...uint16) portSet {
	var s portSet
	for i := 0; i < len(xs); i += 2 {
		s.p[proto] = append(s.p[proto], span{xs[i], xs[i+1]})
	}
	return s
}

var allPorts = portSet{all: true}

func rule(name string, ps portSet, peers string) *ruleAllow {
	return newRuleAllow(name, part{Aggregate(prefixes(peers)), ps})
}

func elemString(es []Allow) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s %d-%d %v", e.Peer, ProtoName(e.Proto), e.PortLo, e.PortHi, e.Rules))
	}
	return out
}

func TestBuildElements(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []*ruleAllow
		want  []string
	}{
		{"a wide rule swallows a narrow one", []*ruleAllow{
			rule("wide", allPorts, "10.0.0.0/8"), rule("narrow", ports(0, 80, 80), "10.1.2.3/32"),
		}, []string{"10.0.0.0/8 any 0-65535 [wide]"}},
		{"a narrow rule adds only its other ports", []*ruleAllow{
			rule("block", ports(0, 80, 80), "10.0.0.0/24"), rule("pod", ports(0, 80, 81), "10.0.0.5/32"),
		}, []string{"10.0.0.0/24 tcp 80-80 [block]", "10.0.0.5/32 tcp 81-81 [pod]"}},
		{"halves of one prefix merge, with both origins", []*ruleAllow{
			rule("a", ports(0, 80, 80), "10.0.0.0/32"), rule("b", ports(0, 80, 80), "10.0.0.1/32"),
		}, []string{"10.0.0.0/31 tcp 80-80 [a b]"}},
		{"same peer, ports add up", []*ruleAllow{
			rule("a", ports(0, 80, 80), "10.0.0.1/32"), rule("b", ports(0, 81, 81), "10.0.0.1/32"), rule("c", ports(1, 53, 53), "10.0.0.1/32"),
		}, []string{"10.0.0.1/32 tcp 80-81 [a b]", "10.0.0.1/32 udp 53-53 [c]"}},
		{"everything inside a port rule is cut out of it", []*ruleAllow{
			rule("block", ports(0, 80, 80), "10.0.0.0/29"), rule("pod", allPorts, "10.0.0.5/32"),
		}, []string{"10.0.0.0/30 tcp 80-80 [block]", "10.0.0.4/32 tcp 80-80 [block]", "10.0.0.5/32 any 0-65535 [pod]", "10.0.0.6/31 tcp 80-80 [block]"}},
		{"families stay apart", []*ruleAllow{
			rule("any", allPorts, "::/0"), rule("v4", ports(2, 9, 9), "0.0.0.0/0"),
		}, []string{"0.0.0.0/0 sctp 9-9 [v4]", "::/0 any 0-65535 [any]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b builder
			if got := elemString(b.build(7, tc.rules)); !slices.Equal(got, tc.want) {
				t.Errorf("elements\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestBuildElementsRandom checks, point by point, that the elements of
// random rules over a small space cover exactly what the rules allow, each
// point once, and that each element's rules allow some of it and the point.
func TestBuildElementsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := netip.MustParseAddr("10.0.0.0")
	randPeers := func() []netip.Prefix {
		var out []netip.Prefix
		for range 1 + r.IntN(3) {
			bits := pick(r, 32, 32, 31, 30, 29, 28, 8, 0)
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(16))}), bits).Masked())
		}
		return Aggregate(out)
	}
	randPorts := func() portSet {
		if r.IntN(6) == 0 {
			return allPorts
		}
		var s portSet
		for range 1 + r.IntN(3) {
			lo := uint16(78 + r.IntN(6))
			pi := r.IntN(nProtos)
			s.p[pi] = append(s.p[pi], span{lo, lo + uint16(r.IntN(3))})
		}
		for i := range s.p {
			s.p[i] = normSpans(s.p[i])
		}
		return s
	}
	var b builder
	for iter := range 800 {
		var rules []*ruleAllow
		for i := range 1 + r.IntN(5) {
			ra := newRuleAllow(fmt.Sprint("r", i))
			for range 1 + r.IntN(2) {
				ra.parts = append(ra.parts, part{randPeers(), randPorts()})
			}
			rules = append(rules, ra)
		}
		es := b.build(1, rules)
		for ai := range 20 {
			addr := base
			for range ai {
				addr = addr.Next()
			}
			if ai == 19 {
				addr = netip.MustParseAddr("10.200.0.1")
			}
			for _, proto := range []uint8{6, 17, 132, 1} {
				for port := uint16(76); port <= 86; port++ {
					var allowedBy []string
					for _, ra := range rules {
						if ra.allows(addr, proto, port) {
							allowedBy = append(allowedBy, ra.name)
						}
					}
					n := 0
					for _, e := range es {
						if e.Peer.Contains(addr) && (e.Proto == 0 || e.Proto == proto) && e.PortLo <= port && port <= e.PortHi {
							n++
							if !slices.ContainsFunc(e.Rules, func(name string) bool { return slices.Contains(allowedBy, name) }) {
								t.Fatalf("iteration %d: element %+v names none of the rules %v allowing %s %d/%d", iter, e, allowedBy, addr, proto, port)
							}
						}
					}
					if want := min(len(allowedBy), 1); n != want {
						t.Fatalf("iteration %d: %s %d/%d lies in %d elements, want %d\nelements %q", iter, addr, proto, port, n, want, elemString(es))
					}
				}
			}
		}
	}
}
