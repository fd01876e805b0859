package cni

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	v1 "github.com/knit-net/knit/api/v1"
)

func codeOf(t *testing.T, err error) uint {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	return te.Code
}

func TestParseConfDefaults(t *testing.T) {
	conf, err := parseConf([]byte(`{"cniVersion":"1.0.0","name":"knit","type":"knit"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Network != "bridge" || conf.Socket != DefaultSocket {
		t.Errorf("defaults: network %q socket %q, want bridge and %s", conf.Network, conf.Socket, DefaultSocket)
	}
	conf, err = parseConf([]byte(`{"cniVersion":"1.1.0","name":"knit","type":"knit","network":"front","socket":"/tmp/k.sock",
		"some-other-key": [1, 2], "cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Network != "front" || conf.Socket != "/tmp/k.sock" {
		t.Errorf("network %q socket %q", conf.Network, conf.Socket)
	}
	if want := []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}}; !reflect.DeepEqual(conf.ValidAttachments, want) {
		t.Errorf("valid attachments from the legacy key: %+v, want %+v", conf.ValidAttachments, want)
	}
}

func TestParseConfErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     uint
	}{
		{"malformed", `{"cniVersion":`, types.ErrDecodingFailure},
		{"wrong type", `{"cniVersion":"1.0.0","name":"n","network":7}`, types.ErrDecodingFailure},
		{"bad network name", `{"cniVersion":"1.0.0","name":"n","network":"a/b"}`, types.ErrInvalidNetworkConfig},
		{"bad prevResult", `{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}}`, types.ErrDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConf([]byte(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			if got := codeOf(t, err); got != tc.code {
				t.Errorf("code %d, want %d (%v)", got, tc.code, err)
			}
		})
	}
}

func TestParseConfPrevResult(t *testing.T) {
	conf, err := parseConf([]byte(`{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0",
		"interfaces":[{"name":"tap0","sandbox":"/run/netns/x"}],"ips":[{"version":"4","address":"192.0.2.5/24","interface":0}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.PrevResult == nil || conf.PrevResult.Version() != "0.4.0" {
		t.Fatalf("prevResult not parsed: %#v", conf.PrevResult)
	}
}

func TestAttachment(t *testing.T) {
	conf, err := parseConf([]byte(`{"cniVersion":"1.0.0","name":"knit","network":"back","runtimeConfig":{
		"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP","hostIP":""},
		                {"hostPort":0,"containerPort":53,"protocol":"udp","hostIP":"0.0.0.0"},
		                {"hostPort":9000,"containerPort":9000,"hostIP":"127.0.0.1"}],
		"ips":["10.1.0.9/24"],"mac":"02:00:00:00:00:09"}}`))
	if err != nil {
		t.Fatal(err)
	}
	args := &skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;IP=10.1.0.7;MAC=02:00:00:00:00:07;K8S_POD_INFRA_CONTAINER_ID=c1"}
	a, err := attachment(conf, args)
	if err != nil {
		t.Fatal(err)
	}
	want := v1.CNIAttach{
		ContainerID: "c1", NetNS: "/run/netns/x", IfName: "eth0", Network: "back", CNINetwork: "knit",
		PodName: "web", PodNamespace: "default",
		Ports: []v1.PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 0, ContainerPort: 53, Protocol: "udp"},
			{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, ContainerPort: 9000, Protocol: "tcp"},
		},
		IPs: []netip.Addr{netip.MustParseAddr("10.1.0.9")},
		MAC: "02:00:00:00:00:09",
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("attachment:\n got %+v\nwant %+v", a, want)
	}

	// Without runtimeConfig, podman's CNI_ARGS IP and MAC are used.
	conf.RuntimeConfig = RuntimeConfig{}
	a, err = attachment(conf, args)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.IPs) != 1 || a.IPs[0] != netip.MustParseAddr("10.1.0.7") || a.MAC != "02:00:00:00:00:07" {
		t.Errorf("from CNI_ARGS: ips %v mac %q", a.IPs, a.MAC)
	}
}

func TestAttachmentErrors(t *testing.T) {
	for _, rc := range []RuntimeConfig{
		{IPs: []string{"10.1.0.300"}},
		{PortMappings: []PortMapping{{HostPort: 70000, ContainerPort: 80}}},
		{PortMappings: []PortMapping{{HostPort: 80, ContainerPort: 0}}},
		{PortMappings: []PortMapping{{HostPort: 80, ContainerPort: 80, HostIP: "localhost"}}},
	} {
		conf := &NetConf{Network: "n", RuntimeConfig: rc}
		_, err := attachment(conf, &skel.CmdArgs{ContainerID: "c", IfName: "eth0"})
		if err == nil {
			t.Errorf("%+v: no error", rc)
			continue
		}
		if got := codeOf(t, err); got != types.ErrInvalidNetworkConfig {
			t.Errorf("%+v: code %d, want 7", rc, got)
		}
	}
}

func TestParseArgs(t *testing.T) {
	got := parseArgs("A=1;;B=x=y;C;=z")
	want := map[string]string{"A": "1", "B": "x=y"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseArgs: %v, want %v", got, want)
	}
}
