package policy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

func prefixes(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		out = append(out, netip.MustParsePrefix(f))
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct{ p, holes, want string }{
		{"10.0.0.0/24", "", "10.0.0.0/24"},
		{"10.0.0.0/24", "10.0.0.0/26", "10.0.0.64/26 10.0.0.128/25"},
		{"10.0.0.0/24", "10.0.0.5/32", "10.0.0.0/30 10.0.0.4/32 10.0.0.6/31 10.0.0.8/29 10.0.0.16/28 10.0.0.32/27 10.0.0.64/26 10.0.0.128/25"},
		{"10.0.0.0/24", "10.0.0.0/8", ""},                      // a hole covering all of it
		{"10.0.0.0/24", "10.0.0.0/24", ""},                     // exactly
		{"10.0.0.0/24", "10.0.1.0/24 fd00::/8", "10.0.0.0/24"}, // outside, other family
		{"10.0.0.0/24", "10.0.0.0/25 10.0.0.128/25", ""},
		{"10.0.0.77/24", "10.0.0.0/25", "10.0.0.128/25"}, // host bits: the network
		{"10.0.0.0/16", "10.0.1.0/24 10.0.3.0/24", "10.0.0.0/24 10.0.2.0/24 10.0.4.0/22 10.0.8.0/21 10.0.16.0/20 10.0.32.0/19 10.0.64.0/18 10.0.128.0/17"},
		{"0.0.0.0/0", "128.0.0.0/1", "0.0.0.0/1"},
		{"0.0.0.0/0", "10.0.0.0/8", "0.0.0.0/5 8.0.0.0/7 11.0.0.0/8 12.0.0.0/6 16.0.0.0/4 32.0.0.0/3 64.0.0.0/2 128.0.0.0/1"},
		{"::/0", "8000::/1", "::/1"},
		{"fd00::/64", "fd00::/65", "fd00::8000:0:0:0/65"},
		{"fd00::/126", "fd00::1/128", "fd00::/128 fd00::2/127"},
		{"2001:db8::/32", "2001:db8:8000::/33 2001:db8::/34", "2001:db8:4000::/34"},
	} {
		got := joinPrefixes(Subtract(netip.MustParsePrefix(tc.p), prefixes(tc.holes)))
		if got != tc.want {
			t.Errorf("%s minus %q = %q; want %q", tc.p, tc.holes, got, tc.want)
		}
	}
}

// TestSubtractRandom checks Subtract and Aggregate address by address in
// a /24 and a /120 against their definition, and that both are minimal:
// the result has no two halves of one prefix (the minimal cover of a set by
// prefixes is unique, and has none).
func TestSubtractRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, base := range []netip.Prefix{netip.MustParsePrefix("10.9.8.0/24"), netip.MustParsePrefix("fd00:1::ab00/120")} {
		bits := base.Addr().BitLen()
		randPrefix := func() netip.Prefix {
			a := base.Addr().As16()
			a[15] = byte(r.IntN(256))
			addr := netip.AddrFrom16(a)
			if base.Addr().Is4() {
				addr = addr.Unmap()
			}
			return netip.PrefixFrom(addr, bits-r.IntN(9)).Masked()
		}
		member := func(a netip.Addr, ps []netip.Prefix) bool {
			return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
		}
		for range 500 {
			p := randPrefix()
			var holes []netip.Prefix
			for range r.IntN(5) {
				holes = append(holes, randPrefix())
			}
			got := Subtract(p, holes)
			agg := Aggregate(append(slices.Clone(holes), p))
			for i := range 256 {
				a := base.Addr().As16()
				a[15] = byte(i)
				addr := netip.AddrFrom16(a)
				if base.Addr().Is4() {
					addr = addr.Unmap()
				}
				if want := p.Contains(addr) && !member(addr, holes); member(addr, got) != want {
					t.Fatalf("%s minus %v = %v: %s in it is %v", p, holes, got, addr, !want)
				}
				if want := p.Contains(addr) || member(addr, holes); member(addr, agg) != want {
					t.Fatalf("Aggregate(%v, %s) = %v: %s in it is %v", holes, p, agg, addr, !want)
				}
			}
			for _, ps := range [][]netip.Prefix{got, agg} {
				if !slices.IsSortedFunc(ps, comparePrefix) {
					t.Fatalf("%v not sorted", ps)
				}
				for i := 1; i < len(ps); i++ {
					if ps[i-1].Overlaps(ps[i]) {
						t.Fatalf("%v overlap", ps)
					}
					if _, ok := buddies(ps[i-1], ps[i]); ok {
						t.Fatalf("%v is not minimal: %s and %s make one prefix", ps, ps[i-1], ps[i])
					}
				}
			}
		}
	}
}

func TestAggregate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/32 10.0.0.1/32 10.0.0.2/32 10.0.0.3/32", "10.0.0.0/30"},
		{"10.0.0.1/32 10.0.0.2/32", "10.0.0.1/32 10.0.0.2/32"}, // not halves of one prefix
		{"10.0.0.0/8 10.1.2.3/32 10.0.0.0/8", "10.0.0.0/8"},
		{"fd00::1/128 10.0.0.0/31 fd00::/128 10.0.0.1/32", "10.0.0.0/31 fd00::/127"},
		{"10.0.0.0/25 10.0.0.128/26 10.0.0.192/26", "10.0.0.0/24"},
		{"0.0.0.0/1 128.0.0.0/1 ::/0", "0.0.0.0/0 ::/0"},
	} {
		if got := joinPrefixes(Aggregate(prefixes(tc.in))); got != tc.want {
			t.Errorf("Aggregate(%s) = %s; want %s", tc.in, got, tc.want)
		}
	}
}

func TestBlockPrefixes(t *testing.T) {
	for _, tc := range []struct {
		cidr   string
		except []string
		want   string
	}{
		{"10.0.0.0/30", nil, "10.0.0.0/30"},
		{"10.0.0.0/30", []string{"10.0.0.2/31"}, "10.0.0.0/31"},
		{"10.0.0.1/30", []string{"10.0.0.3/32"}, "10.0.0.0/31 10.0.0.2/32"}, // host bits in the cidr
		{"10.0.0.0/30", []string{"10.0.0.0/8"}, ""},                         // an except wider than the cidr
		{"10.0.0.0/30", []string{"fd00::/8"}, "10.0.0.0/30"},
		{"not-a-cidr", nil, ""},
		{"10.0.0.0/30", []string{"bad"}, ""}, // fails closed
		{"fd00::/126", []string{"fd00::3/128"}, "fd00::/127 fd00::2/128"},
	} {
		got := joinPrefixes(blockPrefixes(&v1.IPBlock{CIDR: tc.cidr, Except: tc.except}))
		if got != tc.want {
			t.Errorf("ipBlock %s except %v = %q; want %q", tc.cidr, tc.except, got, tc.want)
		}
	}
}

func TestSpans(t *testing.T) {
	s := func(xs ...uint16) []span {
		var out []span
		for i := 0; i < len(xs); i += 2 {
			out = append(out, span{xs[i], xs[i+1]})
		}
		return out
	}
	if got, want := normSpans(s(81, 81, 80, 80, 90, 100, 95, 99, 0, 10, 11, 12, 65535, 65535)), s(0, 12, 80, 81, 90, 100, 65535, 65535); !slices.Equal(got, want) {
		t.Errorf("normSpans = %v; want %v", got, want)
	}
	for _, tc := range []struct{ a, b, want []span }{
		{s(0, 65535), s(80, 80), s(0, 79, 81, 65535)},
		{s(0, 65535), s(0, 0, 65535, 65535), s(1, 65534)},
		{s(80, 90), s(70, 100), nil},
		{s(80, 90, 100, 110), s(85, 105), s(80, 84, 106, 110)},
		{s(80, 90), nil, s(80, 90)},
		{s(1, 5, 10, 20), s(3, 3, 12, 12, 14, 15), s(1, 2, 4, 5, 10, 11, 13, 13, 16, 20)},
	} {
		if got := spansMinus(tc.a, tc.b); !slices.Equal(got, tc.want) {
			t.Errorf("%v minus %v = %v; want %v", tc.a, tc.b, got, tc.want)
		}
	}
	set := compilePorts([]v1.NetworkPolicyPort{port("TCP", 80), portRange("", 81, 90), port("UDP", 53),
		{Protocol: "SCTP"}, namedPort("TCP", "http"), port("ICMP", 1), port("TCP", 0), portRange("TCP", 100, 99),
		{Protocol: "UDP", Port: &v1.IntOrString{IsStr: true, Str: "dns"}, EndPort: new(int32)}})
	if got, want := set.numeric.key(), "tcp 80-90;udp 53;sctp 0-65535;"; got != want {
		t.Errorf("compiled ports %q; want %q (invalid entries match nothing)", got, want)
	}
	if len(set.named) != 1 || set.named[0] != (namedRef{"http", 0}) {
		t.Errorf("named ports %v; want http/tcp only", set.named)
	}
	got := resolve([]namedRef{{"http", 0}, {"dns", 1}}, []v1.ContainerPort{
		{Name: "http", Port: 8080, Protocol: "tcp"}, {Name: "http", Port: 8081, Protocol: "udp"}, {Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "dns", Port: 5353, Protocol: ""}})
	if k := got.key(); k != "tcp 8080;udp 53;" {
		t.Errorf("resolve = %q; want the numbers of the names with the rule's protocol", k)
	}
}
