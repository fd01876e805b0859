package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

// fakeKernel is the kernel seam: a driver and a data plane that record
// their calls and fail when told to.
type fakeKernel struct {
	calls []string
	fail  map[string]error // call name → error it returns
}

func (k *fakeKernel) call(name string) error {
	k.calls = append(k.calls, name)
	return k.fail[name]
}

func (k *fakeKernel) EnsureNetwork(n *v1.Network) error {
	return k.call(fmt.Sprintf("ensure %s mtu=%d", n.Bridge, n.MTU))
}
func (k *fakeKernel) DeleteNetwork(n *v1.Network) error { return k.call("delete " + n.Bridge) }
func (k *fakeKernel) EnsureEndpoint(driver.Endpoint) error {
	return errors.New("not a network call")
}
func (k *fakeKernel) DeleteEndpoint(driver.Endpoint) error {
	return errors.New("not a network call")
}
func (k *fakeKernel) SetNetworks(nets []v1.Network) error {
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	return k.call("dataplane " + strings.Join(names, ","))
}

func (k *fakeKernel) take() string {
	s := strings.Join(k.calls, "; ")
	k.calls = nil
	return s
}

// TestSyncTransitions feeds network records in sequence and checks the
// kernel calls each makes and what the store holds after it: create,
// adopt (nothing to do), change, a failing driver retried, an unknown
// driver, deletion with the addresses released, and a key already gone.
func TestSyncTransitions(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	k := &fakeKernel{fail: map[string]error{}}
	c := New(st, map[string]driver.Driver{v1.DriverBridge: k, "odd": k}, k, slog.New(slog.DiscardHandler))
	var told []int
	c.OnNetworks = func(nets []v1.Network) error { told = append(told, len(nets)); return nil }
	subnet := v1.Subnet{Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}
	front := &v1.Network{ID: "0123456789abcdef", Name: "front", Driver: v1.DriverBridge, Bridge: "kn-01234567", Subnets: []v1.Subnet{subnet}}

	put := func(n *v1.Network) []byte {
		t.Helper()
		_, err := st.Update(ctx, func(tx store.Tx) error { return state.PutNetwork(tx, n) })
		if err != nil {
			t.Fatal(err)
		}
		b, _ := get(t, st, state.NetworkKey(n.Name))
		return b
	}
	steps := []struct {
		name      string
		net       func() *v1.Network // nil: the key is gone
		fail      map[string]error
		wantCalls string
		wantErr   string
		wantKept  bool // the record is still in the store after
	}{
		{"create", func() *v1.Network { return front }, nil,
			"ensure kn-01234567 mtu=0; dataplane front", "", true},
		{"adopt: nothing changed", func() *v1.Network { return front }, nil,
			"dataplane front", "", true},
		{"MTU changed", func() *v1.Network { n := *front; n.MTU = 1400; return &n }, nil,
			"ensure kn-01234567 mtu=1400; dataplane front", "", true},
		{"driver fails", func() *v1.Network { n := *front; n.MTU = 1300; return &n },
			map[string]error{"ensure kn-01234567 mtu=1300": errors.New("bridge is busy")},
			"ensure kn-01234567 mtu=1300", "bridge is busy", true},
		{"retried after the failure", func() *v1.Network { n := *front; n.MTU = 1300; return &n }, nil,
			"ensure kn-01234567 mtu=1300; dataplane front", "", true},
		{"data plane fails", func() *v1.Network { n := *front; n.MTU = 1300; return &n },
			map[string]error{"dataplane front": errors.New("nftables busy")},
			"dataplane front", "nftables busy", true},
		{"unknown driver", func() *v1.Network { n := *front; n.Name, n.Driver = "x", "macvtap"; return &n }, nil,
			"", `network "x": no driver "macvtap" in this knitd`, true},
		{"deleting", func() *v1.Network { n := *front; n.MTU = 1300; n.Deleting = true; return &n }, nil,
			"delete kn-01234567; dataplane x", "", false},
		{"already gone", nil, nil, "dataplane x", "", false},
	}
	// An address of the network is allocated, as the API does for a
	// container; deletion must release it.
	_, err := st.Update(ctx, func(tx store.Tx) error {
		return ipam.Reserve(tx, front, subnet, netip.MustParseAddr("10.1.0.5"), "c1")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		k.fail = s.fail
		key, val := state.NetworkKey(front.Name), []byte(nil)
		if s.net != nil {
			n := s.net()
			key, val = state.NetworkKey(n.Name), put(n)
		}
		err := c.Sync(ctx, key, val)
		switch {
		case s.wantErr == "" && err != nil:
			t.Errorf("%s: Sync = %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Errorf("%s: Sync = %v, want an error containing %q", s.name, err, s.wantErr)
		}
		if got := k.take(); got != s.wantCalls {
			t.Errorf("%s: calls %q, want %q", s.name, got, s.wantCalls)
		}
		if _, found := get(t, st, state.NetworkKey(front.Name)); found != s.wantKept {
			t.Errorf("%s: record of front in the store: %v, want %v", s.name, found, s.wantKept)
		}
	}
	kvs, _, err := st.List(ctx, "ipam/"+front.ID+"/")
	if err != nil || len(kvs) != 0 {
		t.Errorf("addresses of the deleted network left in the store: %v (%v)", kvs, err)
	}
	if fmt.Sprint(told) != "[1 1 1 1 1 1]" { // not after the data plane failed
		t.Errorf("OnNetworks saw %v networks", told)
	}
}

// get reads a key from the store.
func get(t *testing.T, st store.Store, key string) ([]byte, bool) {
	t.Helper()
	var b []byte
	var ok bool
	err := st.View(context.Background(), func(tx store.Tx) (err error) {
		b, ok, err = tx.Get(key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, ok
}

// TestWanted: only live bridge networks keep their bridges from pruning.
func TestWanted(t *testing.T) {
	got := Wanted([]v1.Network{
		{Driver: v1.DriverBridge, Bridge: "kn-a"},
		{Driver: v1.DriverBridge, Bridge: "kn-b", Deleting: true},
		{Driver: v1.DriverHost},
	})
	if fmt.Sprint(got) != "map[kn-a:true]" {
		t.Errorf("Wanted = %v", got)
	}
}
