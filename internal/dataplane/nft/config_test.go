package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// Tests in this file need no root: they check rendering, not the kernel.

func TestFromNetworksKeepsBridgeDriverOnly(t *testing.T) {
	got := FromNetworks([]v1.Network{
		{Name: "bridge", Driver: v1.DriverBridge, Bridge: "kn-0", Subnets: []v1.Subnet{
			{Subnet: netip.MustParsePrefix("172.30.0.0/16")}, {Subnet: netip.MustParsePrefix("fd00::/64")}}},
		{Name: "host", Driver: v1.DriverHost},
		{Name: "none", Driver: v1.DriverNone},
		{Name: "db", Driver: v1.DriverBridge, Bridge: "kn-db", Internal: true},
	})
	want := fmt.Sprint(Config{Networks: []Network{
		{Bridge: "kn-0", Subnets: pfx("172.30.0.0/16", "fd00::/64")},
		{Bridge: "kn-db", Internal: true},
	}})
	if fmt.Sprint(got) != want {
		t.Errorf("FromNetworks = %v, want %v", got, want)
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		nets []Network
		want string
	}{
		{"empty bridge", []Network{{Subnets: pfx("10.0.0.0/24")}}, "bridge name is empty"},
		{"long bridge", []Network{{Bridge: "kn-0123456789abc"}}, `bridge "kn-0123456789abc": name is 16 bytes`},
		{"duplicate", []Network{{Bridge: "kn-a"}, {Bridge: "kn-a"}}, `bridge "kn-a": listed by two networks`},
		{"invalid prefix", []Network{{Bridge: "kn-a", Subnets: []netip.Prefix{{}}}}, `bridge "kn-a": subnet invalid Prefix`},
		{"mapped", []Network{{Bridge: "kn-a", Subnets: pfx("::ffff:10.0.0.0/120")}}, "IPv4-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Config{Networks: tc.nets}.normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("normalize() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestNormalizeIsCanonical(t *testing.T) {
	a := Config{Networks: []Network{
		{Bridge: "kn-b", Subnets: pfx("10.2.0.0/24")},
		{Bridge: "kn-a", Subnets: pfx("fd00::/64", "10.1.0.9/24", "10.1.0.0/24")},
	}}
	b := Config{Networks: []Network{
		{Bridge: "kn-a", Subnets: pfx("10.1.0.0/24", "fd00::/64")},
		{Bridge: "kn-b", Subnets: pfx("10.2.0.0/24")},
	}}
	na, err := a.normalize()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(na) != fmt.Sprint(nb) {
		t.Errorf("normalize differs for equal configs:\n%v\n%v", na, nb)
	}
	if a.Networks[0].Bridge != "kn-b" {
		t.Error("normalize modified its input")
	}
}

func TestMergeRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.0.0.0/24"}, "[10.0.0.0-10.0.0.255]"},
		{[]string{"10.0.1.0/24", "10.0.0.0/24"}, "[10.0.0.0-10.0.1.255]"},                     // adjacent
		{[]string{"10.0.0.0/16", "10.0.5.0/24"}, "[10.0.0.0-10.0.255.255]"},                   // contained
		{[]string{"10.0.0.0/24", "10.0.2.0/24"}, "[10.0.0.0-10.0.0.255 10.0.2.0-10.0.2.255]"}, // gap
		{[]string{"255.255.255.0/24", "255.255.255.128/25"}, "[255.255.255.0-255.255.255.255]"},
		{[]string{"fd00::/64"}, "[fd00::-fd00::ffff:ffff:ffff:ffff]"},
		{[]string{"10.0.0.7/32"}, "[10.0.0.7-10.0.0.7]"},
	} {
		if got := fmt.Sprint(mergeRanges(pfx(tc.in...))); got != tc.want {
			t.Errorf("mergeRanges(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestIntervalElemsOpenEnd(t *testing.T) {
	got := intervalElems(pfx("10.0.0.0/24", "255.255.255.0/24"))
	if len(got) != 3 {
		t.Fatalf("got %d elements, want 3 (start, end, open start): %v", len(got), got)
	}
	if !bytes.Equal(got[1].Key, []byte{10, 0, 1, 0}) || !got[1].IntervalEnd {
		t.Errorf("end element = %v, want 10.0.1.0 flagged interval end", got[1])
	}
	if got[2].IntervalEnd {
		t.Errorf("range reaching 255.255.255.255 must have no end element: %v", got)
	}
}

func TestKeyEncoding(t *testing.T) {
	if got := ifname("kn-a"); len(got) != 16 || string(got[:4]) != "kn-a" || got[4] != 0 {
		t.Errorf("ifname = %q", got)
	}
	// ipv4_addr . ifname: 4 + 16 bytes, no padding needed.
	if got := concat([]byte{10, 0, 0, 0}, ifname("x")); len(got) != 20 {
		t.Errorf("concat length %d, want 20", len(got))
	}
	if got := concat([]byte{1, 2}, []byte{3}); !bytes.Equal(got, []byte{1, 2, 0, 0, 3, 0, 0, 0}) {
		t.Errorf("concat pads each field to 4 bytes: %v", got)
	}
}
