package apiserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

type fakeHost struct{ routes []netip.Prefix }

func (f fakeHost) Routes() []netip.Prefix             { return f.routes }
func (f fakeHost) LinkExists(name string) bool        { return name == "eth0" }
func (f fakeHost) CheckEndpoint(_, _, _ string) error { return nil }
func (f fakeHost) HasAddress(ip netip.Addr) bool      { return ip == netip.MustParseAddr("192.0.2.1") }
func (f fakeHost) Sockets() portmap.HostHolder {
	return func(proto string, _ netip.Addr, port uint16) string {
		if proto == "tcp" && port == 22 {
			return "process 1 (sshd) on the host"
		}
		return ""
	}
}

// newTestServer has networks "front" (10.1.0.0/24) and "back" (10.2.0.0/24)
// and a running container "db" on back at 10.2.0.10.
func newTestServer(t *testing.T) (*Server, store.Store) {
	t.Helper()
	st := memstore.New()
	s := New(Options{Store: st, Pools: ipam.DefaultPools(), Host: fakeHost{routes: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}}})
	ctx := context.Background()
	for _, n := range []v1.NetworkCreate{
		{Name: "front", Subnets: []v1.Subnet{{Subnet: netip.MustParsePrefix("10.1.0.0/24")}}},
		{Name: "back", Subnets: []v1.Subnet{{Subnet: netip.MustParsePrefix("10.2.0.0/24")}}, Internal: true},
		{Name: "hostnet", Driver: v1.DriverHost},
	} {
		if _, err := s.CreateNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.Update(ctx, func(tx store.Tx) error {
		c := &v1.Container{ID: newID(), Name: "db", Command: []string{"sleep"}, Generation: 1, NetworkMode: v1.DriverBridge,
			Status: v1.ContainerStatus{State: v1.StateRunning, ObservedGeneration: 1}}
		back, _ := state.GetNetwork(tx, "back")
		ep, err := newEndpoint(tx, c, back, 0, []netip.Addr{netip.MustParseAddr("10.2.0.10")}, nil)
		c.Endpoints = append(c.Endpoints, ep)
		if err != nil {
			return err
		}
		return state.PutContainer(tx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func TestAutoSubnetAvoidsRoutesAndNetworks(t *testing.T) {
	s, _ := newTestServer(t)
	n, err := s.CreateNetwork(context.Background(), v1.NetworkCreate{Name: "auto", IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Subnets) != 2 || n.Subnets[0].Subnet.String() != "172.18.0.0/16" || !n.Subnets[1].Subnet.Addr().Is6() {
		t.Fatalf("auto subnets = %+v; want 172.18.0.0/16 (172.17/16 is a host route) and an IPv6 /64", n.Subnets)
	}
	if n.Subnets[0].Gateway.String() != "172.18.0.1" {
		t.Fatalf("gateway = %v", n.Subnets[0].Gateway)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s, st := newTestServer(t)
	h := s.Handler()
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"invalid CIDR", "POST", "/v1/networks", `{"name":"x","subnets":[{"subnet":"10.0.0.0/33"}]}`, 400, "malformed request body"},
		{"host bits", "POST", "/v1/networks", `{"name":"x","subnets":[{"subnet":"10.9.0.5/24"}]}`, 400, "did you mean 10.9.0.0/24"},
		{"overlap", "POST", "/v1/networks", `{"name":"x","subnets":[{"subnet":"10.1.0.0/16"}]}`, 409, `overlaps network "front" (10.1.0.0/24); pick another --subnet`},
		{"gateway outside", "POST", "/v1/networks", `{"name":"x","subnets":[{"subnet":"10.9.0.0/24","gateway":"10.8.0.1"}]}`, 400, "gateway 10.8.0.1 is outside subnet 10.9.0.0/24"},
		{"duplicate name", "POST", "/v1/networks", `{"name":"front"}`, 409, `network "front" already exists`},
		{"name too long", "POST", "/v1/networks", `{"name":"` + strings.Repeat("n", 64) + `"}`, 400, "use at most 63"},
		{"bridge name too long", "POST", "/v1/networks", `{"name":"x","bridge":"averyveryverylongbridge"}`, 400, "Linux interface names have at most 15"},
		{"bridge name taken by host link", "POST", "/v1/networks", `{"name":"x","bridge":"eth0"}`, 409, "already exists on the host"},
		{"unknown driver", "POST", "/v1/networks", `{"name":"x","driver":"overlay2"}`, 400, "unknown driver"},
		{"malformed JSON", "POST", "/v1/networks", `{"name":`, 400, "malformed request body"},
		{"unknown field", "POST", "/v1/networks", `{"name":"x","subnett":"10.0.0.0/24"}`, 400, `unknown field "subnett"`},
		{"unknown network", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["nope"]}`, 404, `network "nope" not found; create it with knit network create nope`},
		{"duplicate container", "POST", "/v1/containers", `{"name":"db","command":["true"]}`, 409, `container "db" already exists`},
		{"static IP outside subnet", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ips":["10.7.0.5"]}`, 400, "outside the subnets of its networks (front 10.1.0.0/24)"},
		{"static IP used", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["back"],"ips":["10.2.0.10"]}`, 409, `already used by container "db"`},
		{"static gateway", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ips":["10.1.0.1"]}`, 400, "gateway"},
		{"no command", "POST", "/v1/containers", `{"name":"c"}`, 400, "no command given"},
		{"remove network in use", "DELETE", "/v1/networks/back", ``, 409, `has containers attached (db)`},
		{"remove predefined", "DELETE", "/v1/networks/bridge", ``, 409, "predefined"},
		{"remove unknown", "DELETE", "/v1/networks/nope", ``, 404, `network "nope" not found`},
		{"rm running", "DELETE", "/v1/containers/db", ``, 409, "stop it first"},
		{"connect twice", "POST", "/v1/networks/back/connect", `{"container":"db"}`, 409, "already connected"},
		{"port bound on host", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ports":[{"hostPort":22,"containerPort":22,"protocol":"tcp"}]}`, 409, "in use by process 1 (sshd) on the host"},
		{"host IP not on host", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ports":[{"hostIP":"192.0.2.9","hostPort":80,"containerPort":80,"protocol":"tcp"}]}`, 400, "192.0.2.9 is not an address of this host"},
		{"ports on internal", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["back"],"ports":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]}`, 400, "internal networks have no way in"},
		{"port 0 container", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ports":[{"hostPort":80,"containerPort":0,"protocol":"tcp"}]}`, 400, "container port 0"},
		{"unknown protocol", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["front"],"ports":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}`, 400, "unknown protocol"},
		{"ports in host mode", "POST", "/v1/containers", `{"name":"c","command":["true"],"networks":["hostnet"],"ports":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]}`, 400, "-p needs a bridge network"},
		{"unknown route", "GET", "/v1/nothing", ``, 404, "no API route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := st.Rev()
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var e v1.Error
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("%s %s: got %d %s; want %d containing %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.status, tc.want)
			}
			if st.Rev() != before {
				t.Fatalf("a rejected request changed the store (rev %d → %d)", before, st.Rev())
			}
		})
	}
}
