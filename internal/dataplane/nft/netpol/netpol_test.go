package netpol

import (
	"net/netip"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/policy"
)

// Tests in this file need no root: they check the feature's state and
// packet parsing (package dataplane's tests check the kernel).

// fromBlock is a policy isolating pod p2 (10.1.0.3) for ingress, which
// takes TCP 80 from cidr.
func fromBlock(cidr string) *policy.Compiled {
	in := policy.Input{Pods: []policy.Pod{
		{Name: "p2", Namespace: "default", Labels: map[string]string{"app": "p2"}, Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.3")}},
	}}
	port := v1.NetworkPolicyPort{Protocol: "TCP", Port: &v1.IntOrString{Int: 80}}
	in.Policies = []v1.NetworkPolicy{{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: "default", Name: "p2"},
		Spec: v1.NetworkPolicySpec{PodSelector: v1.LabelSelector{MatchLabels: map[string]string{"app": "p2"}},
			Ingress: []v1.NetworkPolicyIngressRule{{From: []v1.NetworkPolicyPeer{{IPBlock: &v1.IPBlock{CIDR: cidr}}},
				Ports: []v1.NetworkPolicyPort{port}}}}}}
	return policy.Compile(in)
}

// syncOnce runs the feature through one sync, as nft.Table does.
func syncOnce(t *testing.T, f *Feature) (full bool) {
	t.Helper()
	_, full, err := f.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Changes(nil, full || !f.known); err != nil {
		t.Fatal(err)
	}
	f.Commit()
	return full
}

// TestRebuild: a group that lost elements is stored anew under another
// key and its old elements are counted as left behind; once they
// outnumber rebuildFrom plus half the live ones, Plan asks for a full
// sync, after which nothing is left behind.
func TestRebuild(t *testing.T) {
	f := New()
	f.Set(fromBlock("192.168.0.0/16"))
	syncOnce(t, f)
	f.Set(fromBlock("172.16.0.0/12"))
	if syncOnce(t, f) {
		t.Fatal("a small change asked for a full sync")
	}
	keys, live, stale := f.Keys()
	if stale == 0 || live != 1 {
		t.Errorf("after a changed policy: %d left behind, %d live; want some, and 1", stale, live)
	}
	for g, k := range keys {
		if g == k {
			t.Errorf("group %#x kept its key after losing elements", g)
		}
	}
	f.applied.stale = rebuildFrom + f.applied.live/2 + 1
	if !syncOnce(t, f) {
		t.Error("Plan did not ask for a full sync with many elements left behind")
	}
	if _, _, stale := f.Keys(); stale != 0 {
		t.Errorf("%d elements left behind after a full sync", stale)
	}
}

// TestParsePacket: addresses, protocol and ports of logged packets.
func TestParsePacket(t *testing.T) {
	ip4 := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x1f, 0x90}
	frag4 := append([]byte(nil), ip4...)
	frag4[7] = 8 // offset 64: a later fragment has no ports
	ip6 := make([]byte, 40)
	ip6[0], ip6[6] = 0x60, 44 // a fragment header first
	copy(ip6[8:], netip.MustParseAddr("fd00::1").AsSlice())
	copy(ip6[24:], netip.MustParseAddr("fd00::2").AsSlice())
	ip6 = append(ip6, 17, 0, 0, 0, 0, 0, 0, 1 /* first fragment */, 0x00, 0x35, 0x14, 0xe9)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want Drop
	}{
		{"IPv4 TCP", ip4, Drop{Proto: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 12345, DstPort: 8080}},
		{"IPv4 later fragment", frag4, Drop{Proto: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}},
		{"IPv6 UDP behind a fragment header", ip6, Drop{Proto: 17, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), SrcPort: 53, DstPort: 5353}},
	} {
		var got Drop
		if !parsePacket(tc.pkt, &got) || got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if parsePacket([]byte{0x45, 0}, &Drop{}) {
		t.Errorf("a truncated packet parsed")
	}
}
