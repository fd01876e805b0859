package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/dns"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

// fakeKernel records what a pass hands the data plane, DNS and the
// routing table, and fails where told to.
type fakeKernel struct {
	calls []string
	fail  map[string]error
}

func (k *fakeKernel) call(what, detail string) error {
	k.calls = append(k.calls, what+" "+detail)
	return k.fail[what]
}

func (k *fakeKernel) SetServices(ports []services.ServicePort, ranges []netip.Prefix) error {
	var s []string
	for _, p := range ports {
		s = append(s, fmt.Sprintf("%s%v", p.Name, p.Backends))
	}
	return k.call("dataplane", strings.Join(s, ","))
}

func (k *fakeKernel) SetNames(svcs []dns.Service) {
	var s []string
	for _, d := range svcs {
		s = append(s, d.Name)
	}
	k.call("dns", strings.Join(s, ","))
}

func (k *fakeKernel) SyncLocalRoutes(prefixes []netip.Prefix) error {
	return k.call("routes", fmt.Sprint(prefixes))
}

func (k *fakeKernel) take() string {
	s := strings.Join(k.calls, "; ")
	k.calls = nil
	return s
}

// dnsSeam adapts fakeKernel to Names.
type dnsSeam struct{ k *fakeKernel }

func (d dnsSeam) SetServices(svcs []dns.Service) { d.k.SetNames(svcs) }

// TestPassTransitions feeds services and containers in sequence and
// checks what each pass hands the data plane, DNS and the routes, the
// errors of a failing data plane or routing table, and the readiness a
// probe result writes into a container's status.
func TestPassTransitions(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	k := &fakeKernel{}
	c := New(Options{Store: st, Dataplane: k, DNS: dnsSeam{k}, Routes: k,
		Ranges: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(c.probes.Close)
	web := map[string]string{"app": "web"}
	svc := &v1.Service{Metadata: v1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: v1.ServiceSpec{
		Selector: web, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
		Ports: []v1.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: v1.IntOrString{Int: 8080}}},
	}}
	a, b := running("a", "10.0.0.2", web), running("b", "10.0.0.3", web)
	steps := []struct {
		name   string
		change func(tx store.Tx) error
		fail   map[string]error
		want   string
		err    string
	}{
		{"nothing", nil, nil, "dataplane ; dns ; routes [10.96.0.0/12]", ""},
		{"a service without endpoints", func(tx store.Tx) error { return state.PutService(tx, svc) }, nil,
			"dataplane default/web:http[]; dns web; routes [10.96.0.0/12]", ""},
		{"two endpoints", func(tx store.Tx) error {
			return errors.Join(state.PutContainer(tx, &a), state.PutContainer(tx, &b))
		}, nil, "dataplane default/web:http[10.0.0.2:8080 10.0.0.3:8080]; dns web; routes [10.96.0.0/12]", ""},
		{"one relabelled away", func(tx store.Tx) error {
			b2 := b
			b2.Labels = map[string]string{"app": "db"}
			return state.PutContainer(tx, &b2)
		}, nil, "dataplane default/web:http[10.0.0.2:8080]; dns web; routes [10.96.0.0/12]", ""},
		{"data plane fails", nil, map[string]error{"dataplane": errors.New("nftables busy")},
			"dataplane default/web:http[10.0.0.2:8080]", "program service load balancing: nftables busy"},
		{"routes fail", nil, map[string]error{"routes": errors.New("no lo")},
			"dataplane default/web:http[10.0.0.2:8080]; dns web; routes [10.96.0.0/12]", "route service addresses to the host: no lo"},
	}
	for _, s := range steps {
		if s.change != nil {
			if _, err := st.Update(ctx, s.change); err != nil {
				t.Fatal(err)
			}
		}
		k.fail = s.fail
		err := c.Sync(ctx)
		switch {
		case s.err == "" && err != nil:
			t.Errorf("%s: Sync = %v", s.name, err)
		case s.err != "" && (err == nil || err.Error() != s.err):
			t.Errorf("%s: Sync = %v, want %q", s.name, err, s.err)
		}
		if got := k.take(); got != s.want {
			t.Errorf("%s: calls\n%s\nwant\n%s", s.name, got, s.want)
		}
	}

	// A probe result lands in the container's status (and only a change
	// is written).
	for i, ready := range []bool{true, true, false} {
		rev := st.Rev()
		c.recordReady("a", ready)
		if wrote := st.Rev() != rev; wrote != (i != 1) {
			t.Errorf("probe result %d (%v): wrote the store %v", i, ready, wrote)
		}
		var got *v1.Container
		if err := st.View(ctx, func(tx store.Tx) (err error) { got, err = state.GetContainer(tx, "a"); return err }); err != nil {
			t.Fatal(err)
		}
		if got.Status.Ready != ready {
			t.Errorf("after a probe result %v: status.ready %v", ready, got.Status.Ready)
		}
	}
	c.recordReady("gone", true) // a container removed meanwhile: nothing to write
}
