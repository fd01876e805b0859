package nft

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Tests in this file need no root: they check validation, rendering and
// the element diff of partial syncs, not the kernel.

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
			var ports []Port
			for _, p := range tc.ports {
				ports = append(ports, mapping(t, p))
			}
			_, err := Config{Ports: ports}.normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("normalize() = %v, want error containing %q", err, tc.want)
			}
		})
	}
	if _, err := normalizePorts([]Port{{Proto: "tcp", HostPort: 1, ContainerPort: 1}}); err == nil ||
		!strings.Contains(err.Error(), "container address is missing") {
		t.Errorf("no container address: %v", err)
	}
}

func TestNormalizePortsAccepts(t *testing.T) {
	got, err := normalizePorts([]Port{
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
		t.Errorf("normalizePorts = %v\nwant %s", got, want)
	}
}

func TestRenderPortElems(t *testing.T) {
	m := renderPortElems([]Port{
		mapping(t, "tcp 192.0.2.1 8080 10.0.0.2 80"),
		mapping(t, "udp * 53 fd00::2 5353"),
	})
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

func TestRulesDoNotGrowWithPorts(t *testing.T) {
	cfg := manyPorts(3000)
	norm, err := cfg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(render(norm).rules), len(render(Config{}).rules); got != want {
		t.Errorf("3,000 ports render %d rules, none render %d; want the same", got, want)
	}
}

func TestDiffElems(t *testing.T) {
	before := sampleConfig()
	after := sampleConfig()
	after.Ports[0].ContainerIP = addr("10.1.0.9")             // retargeted
	after.Ports = append(after.Ports[:1], after.Ports[2:]...) // one removed
	after.Ports = append(after.Ports, mapping(t, "udp * 9 10.3.0.9 9"))
	after.Networks[2].Subnets = pfx("10.3.0.0/23") // interval set changes

	a := newApplied(mustRender(t, before), nil, time.Time{})
	rs := mustRender(t, after)
	if !a.sameShape(rs) {
		t.Fatal("element changes must keep the shape")
	}
	got := map[string]string{}
	for _, d := range a.diffElems(rs) {
		if d.flush || len(d.del)+len(d.add) > 0 {
			got[d.set.Name] = fmt.Sprintf("flush=%v del=%d add=%d", d.flush, len(d.del), len(d.add))
		}
	}
	want := map[string]string{
		mapPortsAny4: "flush=false del=1 add=2", // retarget: delete and add; plus the new udp
		mapPortsAny6: "flush=false del=1 add=0",
		setMasq4:     "flush=true del=0 add=4", // two ranges, start and end each
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("diff = %v\nwant %v", got, want)
	}

	changed := mustRender(t, before)
	changed.sets[0].set.Comment = "other"
	if a.sameShape(changed) {
		t.Error("a changed set definition must not count as the same shape")
	}
}

func mustRender(t *testing.T, cfg Config) *ruleset {
	t.Helper()
	norm, err := cfg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	return render(norm)
}

// manyPorts returns one network and n mappings: TCP and UDP wildcards on
// host ports from 10000, every fifth bound to a host address, every
// seventh IPv6.
func manyPorts(n int) Config {
	cfg := Config{Networks: []Network{{Bridge: "kn-ports", Subnets: pfx("10.200.0.0/16", "fd00:200::/64")}}}
	for i := range n {
		p := Port{Proto: []string{"tcp", "udp"}[i%2], HostPort: uint16(10000 + i/2), ContainerPort: 80,
			ContainerIP: addr(fmt.Sprintf("10.200.%d.%d", i/250, 1+i%250))}
		if i%7 == 0 {
			p.ContainerIP = addr(fmt.Sprintf("fd00:200::%x", i+1))
		}
		if i%5 == 0 {
			p.HostIP = addr("192.0.2.1")
			if p.ContainerIP.Is6() {
				p.HostIP = addr("2001:db8::1")
			}
		}
		cfg.Ports = append(cfg.Ports, p)
	}
	return cfg
}
