package cni

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/knit-net/knit/api/v1"
)

func sampleResult() *v1.CNIResult {
	return &v1.CNIResult{
		Container: "cni-c1",
		Interface: v1.CNIInterface{Name: "eth0", MAC: "02:42:0a:01:00:05", Sandbox: "/run/netns/x", MTU: 1500},
		IPs:       []v1.CNIIP{{Address: netip.MustParsePrefix("10.1.0.5/24"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Routes:    []v1.CNIRoute{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: netip.MustParseAddr("10.1.0.1")}},
		DNS:       v1.DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, Search: []string{"example.test"}, Options: []string{"ndots:1"}},
	}
}

func printed(t *testing.T, r types.Result, ver string) string {
	t.Helper()
	var buf bytes.Buffer
	p := &Plugin{Stdout: &buf}
	if err := p.print(r, ver); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, buf.String())
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBuildResult(t *testing.T) {
	res, err := buildResult("1.0.0", sampleResult(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := printed(t, res, "1.0.0")
	want := `{"cniVersion":"1.0.0","dns":{"nameservers":["10.1.0.1"],"options":["ndots:1"],"search":["example.test"]},` +
		`"interfaces":[{"mac":"02:42:0a:01:00:05","mtu":1500,"name":"eth0","sandbox":"/run/netns/x"}],` +
		`"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]}`
	if got != want {
		t.Errorf("1.0.0 result:\n got %s\nwant %s", got, want)
	}
	// Older versions get the library's conversions.
	if got := printed(t, res, "0.4.0"); !strings.Contains(got, `"version":"4"`) || !strings.Contains(got, `"cniVersion":"0.4.0"`) {
		t.Errorf("0.4.0 result: %s", got)
	}
	if got := printed(t, res, "0.2.0"); !strings.Contains(got, `"ip4":{"gateway":"10.1.0.1","ip":"10.1.0.5/24"`) {
		t.Errorf("0.2.0 result: %s", got)
	}
}

func TestBuildResultChained(t *testing.T) {
	prev, err := version.NewResult("0.4.0", []byte(`{"cniVersion":"0.4.0",
		"interfaces":[{"name":"lo0"},{"name":"tap0","sandbox":"/run/netns/x"}],
		"ips":[{"version":"4","address":"192.0.2.5/24","interface":1}],
		"routes":[{"dst":"192.0.2.0/24"}],"dns":{"nameservers":["192.0.2.53","10.1.0.1"],"domain":"corp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := buildResult("1.0.0", sampleResult(), prev)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Interfaces); n != 3 || res.Interfaces[2].Name != "eth0" {
		t.Fatalf("interfaces %v: knit's must come after the previous two", res.Interfaces)
	}
	if len(res.IPs) != 2 || *res.IPs[0].Interface != 1 || *res.IPs[1].Interface != 2 {
		t.Errorf("ips %v: the previous IP keeps index 1, knit's points at 2", res.IPs)
	}
	if len(res.Routes) != 2 {
		t.Errorf("routes %v: both kept", res.Routes)
	}
	if want := []string{"192.0.2.53", "10.1.0.1"}; strings.Join(res.DNS.Nameservers, ",") != strings.Join(want, ",") || res.DNS.Domain != "corp" {
		t.Errorf("dns %+v: merged without duplicates, domain kept", res.DNS)
	}
	if got := printed(t, res, "1.0.0"); !strings.Contains(got, `"cniVersion":"1.0.0"`) {
		t.Errorf("printed as %s", got)
	}
}

func TestCheckPrevResult(t *testing.T) {
	k := sampleResult()
	own, err := buildResult("1.0.0", k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPrevResult(own, k); err != nil {
		t.Errorf("own result: %v", err)
	}
	for name, mutate := range map[string]func(r *types100.Result){
		"no interface":  func(r *types100.Result) { r.Interfaces[0].Name = "eth1" },
		"other sandbox": func(r *types100.Result) { r.Interfaces[0].Sandbox = "/run/netns/y" },
		"other mac":     func(r *types100.Result) { r.Interfaces[0].Mac = "02:00:00:00:00:01" },
		"no address":    func(r *types100.Result) { r.IPs = nil },
	} {
		prev, _ := buildResult("1.0.0", k, nil)
		mutate(prev)
		err := checkPrevResult(prev, k)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if got := codeOf(t, err); got != ErrCheckFailed {
			t.Errorf("%s: code %d, want %d", name, got, ErrCheckFailed)
		}
	}
}
