package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

func testNet(cidr string) (*v1.Network, v1.Subnet) {
	p := netip.MustParsePrefix(cidr)
	s := v1.Subnet{Subnet: p, Gateway: p.Addr().Next()}
	return &v1.Network{ID: "n1", Name: "test", Subnets: []v1.Subnet{s}}, s
}

func TestPickSubnetSkipsTaken(t *testing.T) {
	taken := []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.5.0/24")}
	got, ok := PickSubnet(DefaultPools(), false, taken)
	if !ok || got != netip.MustParsePrefix("172.19.0.0/16") {
		t.Fatalf("PickSubnet = %v %v, want 172.19.0.0/16", got, ok)
	}
	got6, ok := PickSubnet(DefaultPools(), true, nil)
	if !ok || got6 != netip.MustParsePrefix("fdb4:6b6e:6974::/64") {
		t.Fatalf("PickSubnet v6 = %v %v", got6, ok)
	}
	small := []Pool{{Base: netip.MustParsePrefix("10.9.0.0/23"), Size: 24}}
	if _, ok := PickSubnet(small, false, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/23")}); ok {
		t.Fatal("PickSubnet found a subnet in a fully taken pool")
	}
	if got, _ := PickSubnet(small, false, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}); got != netip.MustParsePrefix("10.9.1.0/24") {
		t.Fatalf("PickSubnet = %v, want 10.9.1.0/24", got)
	}
}

func TestParsePool(t *testing.T) {
	p, err := ParsePool("base=10.200.0.0/16,size=24")
	if err != nil || p.Size != 24 || p.Base != netip.MustParsePrefix("10.200.0.0/16") {
		t.Fatalf("ParsePool = %v, %v", p, err)
	}
	for _, bad := range []string{"10.0.0.0/8", "base=10.0.0.0/8", "base=10.0.0.0/16,size=8", "base=x,size=24", "base=10.0.0.0/8,size=24,color=red"} {
		if _, err := ParsePool(bad); err == nil {
			t.Errorf("ParsePool(%q) accepted", bad)
		}
	}
}

func update(t *testing.T, st store.Store, fn func(store.Tx) error) error {
	t.Helper()
	_, err := st.Update(context.Background(), fn)
	return err
}

func TestAllocateSkipsReservedAndExhausts(t *testing.T) {
	st := memstore.New()
	n, s := testNet("10.0.0.0/29") // .1 gateway, .7 broadcast: .2-.6 usable
	var got []string
	for i := range 5 {
		err := update(t, st, func(tx store.Tx) error {
			a, err := Allocate(tx, n, s, fmt.Sprint("c", i))
			got = append(got, a.String())
			return err
		})
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
	}
	want := "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6]"
	if fmt.Sprint(got) != want {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	err := update(t, st, func(tx store.Tx) error { _, err := Allocate(tx, n, s, "x"); return err })
	if v1.CodeOf(err) != v1.CodeExhausted {
		t.Fatalf("allocate on a full network: %v, want exhausted", err)
	}
	// A released address is handed out again.
	_ = update(t, st, func(tx store.Tx) error { return Release(tx, n.ID, netip.MustParseAddr("10.0.0.4")) })
	_ = update(t, st, func(tx store.Tx) error {
		a, err := Allocate(tx, n, s, "y")
		if a != netip.MustParseAddr("10.0.0.4") {
			t.Errorf("after release got %v, want 10.0.0.4", a)
		}
		return err
	})
}

func TestReserve(t *testing.T) {
	st := memstore.New()
	n, s := testNet("10.0.0.0/24")
	if err := update(t, st, func(tx store.Tx) error { return Reserve(tx, n, s, netip.MustParseAddr("10.0.0.9"), "a") }); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"10.0.0.9": v1.CodeConflict, "10.0.1.9": v1.CodeInvalid, "10.0.0.1": v1.CodeInvalid, "10.0.0.255": v1.CodeInvalid}
	for ip, code := range cases {
		err := update(t, st, func(tx store.Tx) error { return Reserve(tx, n, s, netip.MustParseAddr(ip), "b") })
		if v1.CodeOf(err) != code {
			t.Errorf("Reserve(%s) = %v, want code %s", ip, err, code)
		}
	}
	// The failed requests changed nothing.
	_ = st.View(context.Background(), func(tx store.Tx) error {
		owners, _ := Owners(tx, n.ID)
		if len(owners) != 1 || owners[netip.MustParseAddr("10.0.0.9")] != "a" {
			t.Errorf("owners after rejected reserves: %v", owners)
		}
		return nil
	})
}

func TestAllocateConcurrentNoDuplicates(t *testing.T) {
	st := memstore.New()
	n, s := testNet("10.1.0.0/24")
	var mu sync.Mutex
	seen := map[netip.Addr]int{}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a netip.Addr
			err := update(t, st, func(tx store.Tx) (err error) {
				a, err = Allocate(tx, n, s, fmt.Sprint("c", i))
				return err
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[a]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 100 {
		t.Fatalf("100 allocations gave %d distinct addresses", len(seen))
	}
}

func TestIPRangeAndIPv6(t *testing.T) {
	st := memstore.New()
	p := netip.MustParsePrefix("10.2.0.0/16")
	s := v1.Subnet{Subnet: p, Gateway: netip.MustParseAddr("10.2.0.1"), IPRange: netip.MustParsePrefix("10.2.5.0/30")}
	n := &v1.Network{ID: "r", Name: "r", Subnets: []v1.Subnet{s}}
	_ = update(t, st, func(tx store.Tx) error {
		a, err := Allocate(tx, n, s, "a")
		if err != nil || a != netip.MustParseAddr("10.2.5.0") {
			t.Errorf("range allocation = %v, %v; want 10.2.5.0 (inside a /16 it is a host address)", a, err)
		}
		return err
	})
	p6 := netip.MustParsePrefix("fd00:1::/64")
	s6 := v1.Subnet{Subnet: p6, Gateway: p6.Addr().Next()}
	n6 := &v1.Network{ID: "six", Name: "six", Subnets: []v1.Subnet{s6}}
	_ = update(t, st, func(tx store.Tx) error {
		a, err := Allocate(tx, n6, s6, "a")
		if err != nil || a != netip.MustParseAddr("fd00:1::2") {
			t.Errorf("v6 allocation = %v, %v; want fd00:1::2", a, err)
		}
		return err
	})
}
