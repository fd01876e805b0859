package networks

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/testutil/nfttest"
)

// Tests in this file need no root: they check validation and elements,
// not the kernel (package dataplane's tests do).

func TestFromNetworksKeepsBridgeDriverOnly(t *testing.T) {
	got := FromNetworks([]v1.Network{
		{Name: "bridge", Driver: v1.DriverBridge, Bridge: "kn-0", Subnets: []v1.Subnet{
			{Subnet: netip.MustParsePrefix("172.30.0.0/16")}, {Subnet: netip.MustParsePrefix("fd00::/64")}}},
		{Name: "host", Driver: v1.DriverHost},
		{Name: "none", Driver: v1.DriverNone},
		{Name: "db", Driver: v1.DriverBridge, Bridge: "kn-db", Internal: true},
	})
	want := fmt.Sprint([]Network{
		{Bridge: "kn-0", Subnets: pfx("172.30.0.0/16", "fd00::/64")},
		{Bridge: "kn-db", Internal: true},
	})
	if fmt.Sprint(got) != want {
		t.Errorf("FromNetworks = %v, want %v", got, want)
	}
}

func TestSetRejects(t *testing.T) {
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
			f := New()
			if err := f.Set([]Network{{Bridge: "kn-ok"}}); err != nil {
				t.Fatal(err)
			}
			err := f.Set(tc.nets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Set() = %v, want error containing %q", err, tc.want)
			}
			if ch, _ := f.Changes(nil, true); len(ch[0].Add) != 1 {
				t.Errorf("a refused Set changed the bridges: %v", ch[0].Add)
			}
		})
	}
}

func TestNormalizeIsCanonical(t *testing.T) {
	a := []Network{
		{Bridge: "kn-b", Subnets: pfx("10.2.0.0/24")},
		{Bridge: "kn-a", Subnets: pfx("fd00::/64", "10.1.0.9/24", "10.1.0.0/24")},
	}
	b := []Network{
		{Bridge: "kn-a", Subnets: pfx("10.1.0.0/24", "fd00::/64")},
		{Bridge: "kn-b", Subnets: pfx("10.2.0.0/24")},
	}
	na, err := Normalize(a)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := Normalize(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(na) != fmt.Sprint(nb) {
		t.Errorf("Normalize differs for equal networks:\n%v\n%v", na, nb)
	}
	if a[0].Bridge != "kn-b" {
		t.Error("Normalize modified its input")
	}
}

// TestChangesAreIncremental: after a commit, a change of one network
// sends only its elements; an interval set is sent whole when it changed.
func TestChangesAreIncremental(t *testing.T) {
	f := New()
	nets := []Network{{Bridge: "kn-a", Subnets: pfx("10.1.0.0/24")}, {Bridge: "kn-b", Subnets: pfx("10.2.0.0/24")}}
	if err := f.Set(nets); err != nil {
		t.Fatal(err)
	}
	f.Changes(nil, true)
	f.Commit()
	nets[1].Internal = true
	nets = append(nets, Network{Bridge: "kn-c", Subnets: pfx("10.3.0.0/24")})
	if err := f.Set(nets); err != nil {
		t.Fatal(err)
	}
	ch, _ := f.Changes(nil, false)
	got := map[string]string{}
	for _, c := range ch {
		got[c.Set] = fmt.Sprintf("flush=%v del=%d add=%d", c.Flush, len(c.Del), len(c.Add))
	}
	want := map[string]string{
		SetBridges:  "flush=false del=0 add=1", // kn-c
		SetInternal: "flush=false del=0 add=1", // kn-b
		SetIntra:    "flush=false del=0 add=1",
		setMasq4:    "flush=true del=0 add=4", // two ranges, start and end each
		setMasq6:    "flush=false del=0 add=0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes = %v\nwant %v", got, want)
	}
	f.Commit()
	if ch, _ := f.Changes(nil, false); fmt.Sprint(ch[0].Add, ch[0].Del, ch[3].Add) != "[] [] []" {
		t.Errorf("nothing changed, but the changes are %v", ch)
	}
}

// Literals of the tests.
var (
	pfx = nfttest.Prefixes
)
