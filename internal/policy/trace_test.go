package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

func TestTraceReasons(t *testing.T) {
	in := world()
	in.Policies = []v1.NetworkPolicy{
		np("x", "deny-all", v1.LabelSelector{}, func(s *v1.NetworkPolicySpec) { s.PolicyTypes = []string{"Ingress", "Egress"} }),
		np("x", "b-80", *labels("pod", "b"), func(s *v1.NetworkPolicySpec) {
			s.Ingress = []v1.NetworkPolicyIngressRule{
				ingressFrom([]v1.NetworkPolicyPort{port("TCP", 80)}, nsPeer(labels("ns", "y"))),
				ingressFrom([]v1.NetworkPolicyPort{portRange("TCP", 79, 81)}, podPeer(everything), bothPeer(everything, labels("pod", "a"))),
			}
		}),
		np("x", "dns", v1.LabelSelector{}, func(s *v1.NetworkPolicySpec) {
			s.PolicyTypes = []string{"Egress"}
			s.Egress = []v1.NetworkPolicyEgressRule{egressTo([]v1.NetworkPolicyPort{port("UDP", 53)})}
		}),
	}
	c := Compile(in)
	xa, xb, ya, yb := addr4(0, 0), addr4(0, 1), addr4(1, 0), addr4(1, 1)
	ext := netip.MustParseAddr("192.168.0.1")
	for _, tc := range []struct {
		name             string
		src, dst         netip.Addr
		proto            uint8
		port             uint16
		allowed          bool
		egress, ingress  string
		egressBy, inBy   []string
		egressIso, inIso []string
	}{
		{"allowed by two rules", ya, xb, ProtoTCP, 80, true,
			"no policy selects pod y/a for egress",
			"allowed by x/b-80 ingress[0], x/b-80 ingress[1]",
			nil, []string{"x/b-80 ingress[0]", "x/b-80 ingress[1]"}, nil, []string{"x/b-80", "x/deny-all"}},
		{"denied by isolation", yb, xb, ProtoTCP, 81, false,
			"no policy selects pod y/b for egress",
			"policies x/b-80, x/deny-all isolate ingress of pod x/b and no rule allows tcp/81 from 10.0.1.2 (y/b)",
			nil, nil, nil, []string{"x/b-80", "x/deny-all"}},
		{"one isolating policy", ya, xa, ProtoTCP, 80, false,
			"no policy selects pod y/a for egress",
			"policy x/deny-all isolates ingress of pod x/a and no rule allows tcp/80 from 10.0.1.1 (y/a)",
			nil, nil, nil, []string{"x/deny-all"}},
		{"egress denied", xa, ext, ProtoTCP, 443, false,
			"policies x/deny-all, x/dns isolate egress of pod x/a and no rule allows tcp/443 to 192.168.0.1",
			"192.168.0.1 is not a pod: no policy isolates it",
			nil, nil, []string{"x/deny-all", "x/dns"}, nil},
		{"egress to DNS anywhere", xa, ext, ProtoUDP, 53, true,
			"allowed by x/dns egress[0]", "192.168.0.1 is not a pod: no policy isolates it",
			[]string{"x/dns egress[0]"}, nil, []string{"x/deny-all", "x/dns"}, nil},
		{"egress allowed, ingress denied", xa, xb, ProtoUDP, 53, false,
			"allowed by x/dns egress[0]",
			"policies x/b-80, x/deny-all isolate ingress of pod x/b and no rule allows udp/53 from 10.0.0.1 (x/a)",
			[]string{"x/dns egress[0]"}, nil, []string{"x/deny-all", "x/dns"}, []string{"x/b-80", "x/deny-all"}},
		{"icmp", ya, xa, 1, 0, false,
			"no policy selects pod y/a for egress",
			"policy x/deny-all isolates ingress of pod x/a and no rule allows icmp from 10.0.1.1 (y/a)",
			nil, nil, nil, []string{"x/deny-all"}},
		{"loopback", xa, xa, ProtoTCP, 80, true,
			"pod x/a talking to itself stays in its network namespace: no policy applies",
			"pod x/a talking to itself stays in its network namespace: no policy applies",
			nil, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := c.Trace(tc.src, tc.dst, tc.proto, tc.port)
			if v.Allowed != tc.allowed || v.Egress.Reason != tc.egress || v.Ingress.Reason != tc.ingress {
				t.Errorf("Trace = %v\n egress:  %q\n ingress: %q\nwant %v\n egress:  %q\n ingress: %q",
					v.Allowed, v.Egress.Reason, v.Ingress.Reason, tc.allowed, tc.egress, tc.ingress)
			}
			if !slices.Equal(v.Egress.AllowedBy, tc.egressBy) || !slices.Equal(v.Ingress.AllowedBy, tc.inBy) ||
				!slices.Equal(v.Egress.IsolatedBy, tc.egressIso) || !slices.Equal(v.Ingress.IsolatedBy, tc.inIso) {
				t.Errorf("by: egress %v %v, ingress %v %v; want %v %v, %v %v", v.Egress.AllowedBy, v.Egress.IsolatedBy,
					v.Ingress.AllowedBy, v.Ingress.IsolatedBy, tc.egressBy, tc.egressIso, tc.inBy, tc.inIso)
			}
		})
	}
}

func TestTraceRequest(t *testing.T) {
	in := world()
	in.Pods = append(in.Pods, Pod{Name: "solo", Namespace: "z", Addrs: []netip.Addr{netip.MustParseAddr("fd00::99")}},
		Pod{Name: "hostnet", Namespace: "z"})
	in.Policies = []v1.NetworkPolicy{np("x", "deny", v1.LabelSelector{}, nil)}
	c := Compile(in)
	v, err := c.TraceRequest(v1.PolicyTrace{From: "y/a", To: "x/b", Protocol: "tcp", Port: 80})
	if err != nil || v.Allowed || !strings.Contains(v.Ingress.Reason, "from 10.0.1.1 (y/a)") {
		t.Errorf("trace y/a → x/b: %+v, %v", v, err)
	}
	v, err = c.TraceRequest(v1.PolicyTrace{From: "solo", To: "x/b", Protocol: "UDP", Port: 53})
	if err != nil || v.Allowed || !strings.Contains(v.Ingress.Reason, "udp/53 from fd00::99 (z/solo)") {
		t.Errorf("trace solo (IPv6 only) → x/b: %+v, %v", v, err)
	}
	v, err = c.TraceRequest(v1.PolicyTrace{From: "x/a", To: "8.8.8.8", Protocol: "udp", Port: 53})
	if err != nil || !v.Allowed {
		t.Errorf("trace x/a → 8.8.8.8: %+v, %v", v, err)
	}
	for _, tc := range []struct {
		req  v1.PolicyTrace
		code string
		msg  string
	}{
		{v1.PolicyTrace{From: "a", To: "x/b"}, v1.CodeInvalid, "names pods in several namespaces (x/a, y/a, z/a)"},
		{v1.PolicyTrace{From: "x/nope", To: "x/b"}, v1.CodeNotFound, `pod "x/nope" not found`},
		{v1.PolicyTrace{From: "nope", To: "x/b"}, v1.CodeNotFound, `pod "nope" not found`},
		{v1.PolicyTrace{From: "x/a", To: "hostnet"}, v1.CodeInvalid, "has no address of its own"},
		{v1.PolicyTrace{From: "x/a", To: "x/b", Protocol: "icmpv7"}, v1.CodeInvalid, `protocol "icmpv7"`},
		{v1.PolicyTrace{From: "8.8.8.8", To: "solo"}, v1.CodeInvalid, "no addresses of the same family"},
	} {
		_, err := c.TraceRequest(tc.req)
		if err == nil || v1.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("TraceRequest(%+v) = %v; want %s error with %q", tc.req, err, tc.code, tc.msg)
		}
	}
	if p, ok := c.PodAt(addr6(2, 2)); !ok || p != "z/c" {
		t.Errorf("PodAt(%s) = %q, %v", addr6(2, 2), p, ok)
	}
}

// TestSharedAddress: containers sharing a network namespace are one
// endpoint to the kernel, so the address is isolated by the policies of
// any of them, resolves named ports against all their ports, and is a peer
// wherever one of them is.
func TestSharedAddress(t *testing.T) {
	in := world()
	in.Pods = append(in.Pods, Pod{Name: "a-sidecar", Namespace: "x", Labels: map[string]string{"pod": "sidecar"},
		Addrs: []netip.Addr{addr4(0, 0)}, Ports: []v1.ContainerPort{{Name: "metrics", Port: 9090, Protocol: "tcp"}}})
	in.Policies = []v1.NetworkPolicy{
		np("x", "sidecar", *labels("pod", "sidecar"), func(s *v1.NetworkPolicySpec) {
			s.Ingress = []v1.NetworkPolicyIngressRule{
				ingressFrom([]v1.NetworkPolicyPort{namedPort("TCP", "metrics"), namedPort("TCP", "http")}, nsPeer(labels("ns", "y")))}
		}),
		np("z", "to-sidecar", *labels("pod", "a"), func(s *v1.NetworkPolicySpec) {
			s.PolicyTypes = []string{"Egress"}
			s.Egress = []v1.NetworkPolicyEgressRule{egressTo(nil, bothPeer(everything, labels("pod", "sidecar")))}
		}),
	}
	c := Compile(in)
	checkInvariants(t, c)
	xa, xb, ya, za := addr4(0, 0), addr4(0, 1), addr4(1, 0), addr4(2, 0)
	if p, _ := c.PodAt(xa); p != "x/a+x/a-sidecar" {
		t.Errorf("PodAt(%s) = %q", xa, p)
	}
	for _, tc := range []struct {
		src, dst netip.Addr
		port     uint16
		allowed  bool
	}{
		{ya, xa, 9090, true},  // the sidecar's named port
		{ya, xa, 80, true},    // http is x/a's own port
		{ya, xa, 81, false},   // a port of neither name
		{xb, xa, 9090, false}, // not from y
		{za, xa, 80, false},   // the sidecar's policy isolates x/a's address too
		{za, xb, 80, false},   // z/a may only reach the sidecar's address
	} {
		if v := c.Trace(tc.src, tc.dst, ProtoTCP, tc.port); v.Allowed != tc.allowed {
			t.Errorf("%s → %s tcp/%d: allowed %v, want %v (%s; %s)", tc.src, tc.dst, tc.port, v.Allowed, tc.allowed, v.Egress.Reason, v.Ingress.Reason)
		}
	}
	if v := c.Trace(za, xa, ProtoTCP, 80); v.Egress.Reason != "allowed by z/to-sidecar egress[0]" {
		t.Errorf("z/a → x/a egress: %q", v.Egress.Reason)
	}
}
