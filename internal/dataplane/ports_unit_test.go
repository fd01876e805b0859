package dataplane

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/nft/ports"
)

// Tests in this file need no root: they check the validation and the
// elements of published ports, not the kernel.

func TestNormalizePortsRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports []string
		want  string
	}{
		{"proto", []string{"icmp * 80 10.0.0.2 80"}, `published port icmp *:80 -> 10.0.0.2:80: protocol "icmp" is not tcp, udp or sctp`},
		{"host port 0", []string{"tcp * 0 10.0.0.2 80"}, "tcp *:0 -> 10.0.0.2:80: port 0 cannot be published"},
		{"container port 0", []string{"udp 192.0.2.1 53 10.0.0.2 0"}, "udp 192.0.2.1:53 -> 10.0.0.2:0: port 0"},
		{"family", []string{"tcp 192.0.2.1 80 fd00::2 80"}, "192.0.2.1 and container address fd00::2 are of different families"},
		{"mapped", []string{"tcp ::ffff:192.0.2.1 80 ::ffff:10.0.0.2 80"}, "IPv4-mapped"},
		{"loopback6", []string{"tcp ::1 80 fd00::2 80"}, "tcp [::1]:80 -> [fd00::2]:80: IPv6 loopback cannot be forwarded"},
		{"zone", []string{"tcp fe80::1%eth0 80 fd00::2 80"}, "IPv6 zone"},
		{"duplicate", []string{"tcp * 80 10.0.0.2 80", "tcp 0.0.0.0 80 10.0.0.3 81"},
			"published port tcp 0.0.0.0:80 -> 10.0.0.3:81: host port already published by tcp *:80 -> 10.0.0.2:80"},
		{"duplicate bound", []string{"sctp 192.0.2.1 80 10.0.0.2 80", "sctp 192.0.2.1 80 10.0.0.3 80"}, "already published"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []ports.Port
			for _, p := range tc.ports {
				ps = append(ps, mapping(t, p))
			}
			_, err := ports.Normalize(ps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Normalize() = %v, want error containing %q", err, tc.want)
			}
		})
	}
	if _, err := ports.Normalize([]ports.Port{{Proto: "tcp", HostPort: 1, ContainerPort: 1}}); err == nil ||
		!strings.Contains(err.Error(), "container address is missing") {
		t.Errorf("no container address: %v", err)
	}
}

func TestNormalizePortsAccepts(t *testing.T) {
	got, err := ports.Normalize([]ports.Port{
		mapping(t, "udp * 53 10.0.0.2 53"),
		mapping(t, "tcp :: 80 fd00::2 80"), // "::" is the IPv6 wildcard
		mapping(t, "tcp * 80 10.0.0.2 80"), // same port, other family
		mapping(t, "tcp 127.0.0.1 80 10.0.0.3 80"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[udp *:53 -> 10.0.0.2:53 tcp [*]:80 -> [fd00::2]:80 tcp *:80 -> 10.0.0.2:80 tcp 127.0.0.1:80 -> 10.0.0.3:80]"
	if fmt.Sprint(got) != want {
		t.Errorf("Normalize = %v\nwant %s", got, want)
	}
}

func TestRenderPortElems(t *testing.T) {
	f := ports.New(ports.Options{})
	must(t, "Set", f.Set("c1", []ports.Port{
		mapping(t, "tcp 192.0.2.1 8080 10.0.0.2 80"),
		mapping(t, "udp * 53 fd00::2 5353"),
	}))
	ch, _ := f.Changes(nil, true)
	var m struct{ v4, any4, v6, any6 []nftables.SetElement }
	for _, c := range ch {
		*map[string]*[]nftables.SetElement{"ports_v4": &m.v4, "ports_any_v4": &m.any4, "ports_v6": &m.v6, "ports_any_v6": &m.any6}[c.Set] = c.Add
	}
	if len(m.v4) != 1 || len(m.any6) != 1 || len(m.any4)+len(m.v6) != 0 {
		t.Fatalf("elements in the wrong maps: %+v", m)
	}
	// ipv4_addr . inet_proto . inet_service: each field padded to 4 bytes.
	if want := []byte{192, 0, 2, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}; !bytes.Equal(m.v4[0].Key, want) {
		t.Errorf("v4 key % x, want % x", m.v4[0].Key, want)
	}
	if want := []byte{10, 0, 0, 2, 0, 80, 0, 0}; !bytes.Equal(m.v4[0].Val, want) {
		t.Errorf("v4 value % x, want % x", m.v4[0].Val, want)
	}
	if want := []byte{17, 0, 0, 0, 0, 53, 0, 0}; !bytes.Equal(m.any6[0].Key, want) {
		t.Errorf("v6 wildcard key % x, want % x", m.any6[0].Key, want)
	}
	if v := m.any6[0].Val; len(v) != 20 || v[0] != 0xfd || v[16] != 0x14 || v[17] != 0xe9 {
		t.Errorf("v6 value % x, want fd00::2 . 5353 (20 bytes)", v)
	}
}

// TestPortsSetPerOwner: owners cannot take each other's host ports or a
// node port, a refused Set changes nothing, and a change of one owner
// sends only its elements.
func TestPortsSetPerOwner(t *testing.T) {
	f := ports.New(ports.Options{NodePort: func(proto string, port uint16) (string, bool) {
		return `service port "ns/s:http"`, proto == "tcp" && port == 30080
	}})
	must(t, "c1", f.Set("c1", []ports.Port{mapping(t, "tcp * 80 10.0.0.2 80"), mapping(t, "udp * 53 10.0.0.2 53")}))
	must(t, "c2", f.Set("c2", []ports.Port{mapping(t, "tcp * 81 10.0.0.3 80")}))
	f.Changes(nil, true)
	f.Commit()
	for _, tc := range []struct{ owner, port, want string }{
		{"c2", "tcp 0.0.0.0 80 10.0.0.3 80", "host port already published by tcp *:80 -> 10.0.0.2:80"},
		{"c3", "tcp * 30080 10.0.0.4 80", `30080/tcp is the node port of service port "ns/s:http"`},
	} {
		if err := f.Set(tc.owner, []ports.Port{mapping(t, tc.port)}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%s, %s) = %v, want %q", tc.owner, tc.port, err, tc.want)
		}
	}
	if pub, ok := f.HostPort("tcp", 81); !ok || pub != "tcp *:81 -> 10.0.0.3:80" {
		t.Errorf("HostPort(tcp, 81) = %q, %v", pub, ok)
	}
	must(t, "c1 again", f.Set("c1", []ports.Port{mapping(t, "tcp * 80 10.0.0.9 80")})) // retarget, drop udp
	ch, _ := f.Changes(nil, false)
	got := map[string]string{}
	for _, c := range ch {
		if len(c.Del)+len(c.Add) > 0 {
			got[c.Set] = fmt.Sprintf("del=%d add=%d", len(c.Del), len(c.Add))
		}
	}
	if want := map[string]string{"ports_any_v4": "del=2 add=1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	if _, ok := f.HostPort("udp", 53); ok {
		t.Error("udp 53 is still published after c1 dropped it")
	}
}
