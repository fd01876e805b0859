package policy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/policy"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

// fakeDataplane records the compiled policies it is given, fails when
// told to, and serves drop counts and a drop stream.
type fakeDataplane struct {
	set    []*policy.Compiled
	fail   error
	counts map[uint32]uint64
}

func (d *fakeDataplane) SetPolicy(c *policy.Compiled) error {
	d.set = append(d.set, c)
	return d.fail
}

func (d *fakeDataplane) PolicyDropCounts() (map[uint32]uint64, error) { return d.counts, nil }

func (d *fakeDataplane) ReadPolicyDrops(func(netpol.Drop)) (io.Closer, error) {
	return io.NopCloser(nil), nil
}

func container(name, ns, addr string, labels map[string]string) *v1.Container {
	return &v1.Container{ID: name + "-0123456789", Name: name, Namespace: ns, Labels: labels,
		Endpoints: []v1.Endpoint{{Addresses: []netip.Prefix{netip.MustParsePrefix(addr + "/24")}}}}
}

func denyAll(ns, name string, sel map[string]string) *v1.NetworkPolicy {
	return &v1.NetworkPolicy{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: ns, Name: name},
		Spec:     v1.NetworkPolicySpec{PodSelector: v1.LabelSelector{MatchLabels: sel}}}
}

// TestPassTransitions: each change to the store is one pass that hands
// the data plane a new compiled policy isolating exactly the selected
// containers; a failed hand-over is an error and keeps the last applied
// state for trace; drops are named after the policies of their group.
func TestPassTransitions(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	dp := &fakeDataplane{}
	c := New(st, dp, dp, nil, slog.New(slog.DiscardHandler))
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if _, err := st.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	isolated := func() []string {
		var out []string
		for a := range dp.set[len(dp.set)-1].IngressGroup {
			out = append(out, a.String())
		}
		return out
	}
	trace := func() bool {
		v, err := c.Trace(ctx, v1.PolicyTrace{From: "web", To: "db", Port: 5432, Protocol: "tcp"})
		if err != nil {
			t.Fatal(err)
		}
		return v.Allowed
	}

	update(func(tx store.Tx) error {
		return errors.Join(state.PutContainer(tx, container("web", "default", "10.1.0.2", map[string]string{"app": "web"})),
			state.PutContainer(tx, container("db", "default", "10.1.0.3", map[string]string{"app": "db"})))
	})
	steps := []struct {
		name     string
		change   func(tx store.Tx) error
		fail     error
		wantErr  string
		isolated string
		allowed  bool
	}{
		{"no policy", nil, nil, "", "[]", true},
		{"deny all to db", func(tx store.Tx) error {
			return state.PutPolicy(tx, denyAll("default", "db", map[string]string{"app": "db"}))
		},
			nil, "", "[10.1.0.3]", false},
		{"web relabelled as db", func(tx store.Tx) error {
			return state.PutContainer(tx, container("web", "default", "10.1.0.2", map[string]string{"app": "db"}))
		}, nil, "", "[10.1.0.2 10.1.0.3]", false},
		{"data plane fails", func(tx store.Tx) error { return state.PutPolicy(tx, denyAll("default", "db", nil)) },
			errors.New("nftables busy"), "program network policy: nftables busy", "", false},
	}
	for _, s := range steps {
		if s.change != nil {
			update(s.change)
		}
		dp.fail = s.fail
		n := len(dp.set)
		err := c.Sync(ctx)
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("%s: Sync = %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Fatalf("%s: Sync = %v, want %q", s.name, err, s.wantErr)
		}
		if len(dp.set) != n+1 {
			t.Fatalf("%s: %d hand-overs to the data plane, want 1", s.name, len(dp.set)-n)
		}
		if got := strings.Join(slices.Sorted(slices.Values(isolated())), " "); s.isolated != "" && "["+got+"]" != s.isolated {
			t.Errorf("%s: isolated for ingress [%s], want %s", s.name, got, s.isolated)
		}
		if got := trace(); got != s.allowed {
			t.Errorf("%s: trace web → db:5432 allowed %v, want %v", s.name, got, s.allowed)
		}
	}

	// Drops: the kernel's counts per group go to the group's policies, and
	// a logged drop (as the reader Run binds hands it over) carries the
	// names of its ends.
	comp := dp.set[len(dp.set)-2] // the last one applied
	g := comp.IngressGroup[netip.MustParseAddr("10.1.0.3")]
	dp.counts = map[uint32]uint64{g: 7}
	c.recordDrop(netpol.Drop{Direction: "ingress", Proto: 6, Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("10.1.0.3"), DstPort: 5432, Group: g})
	d := c.Drops(10)
	if d.Counts["default/db"] != 7 || len(d.Recent) != 1 || d.Recent[0].SrcName != "default/web" || d.Recent[0].DstName != "default/db" ||
		strings.Join(d.Recent[0].Policies, ",") != "default/db" {
		t.Errorf("drops %+v", d)
	}
}
