package dataplane

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

func newLoggedDataplane(t *testing.T, ns *nstest.NS) (*Table, *nfttest.Log) {
	t.Helper()
	l := &nfttest.Log{}
	d, err := NewTable(nft.Options{NetNSPath: ns.Path, Logger: l.Logger()})
	must(t, "New", err)
	t.Cleanup(func() { d.Close() })
	return d, l
}

const (
	logFull    = nfttest.LogFull
	logPartial = nfttest.LogPartial
)

// TestPartialSyncTransitions: after the first, full sync, element-only
// changes go out as partial syncs, and the table is after each exactly
// what a full sync of that config into an empty namespace gives.
func TestPartialSyncTransitions(t *testing.T) {
	ns := nstest.New(t, "nft")
	d, log := newLoggedDataplane(t, ns)
	retargeted := sampleConfig()
	retargeted.Ports[0].ContainerIP = addr("10.1.0.9")
	retargeted.Ports = append(retargeted.Ports[1:], mapping(t, "udp * 9 10.3.0.9 9"))
	nets := retargeted
	nets.Networks = []networks.Network{
		{Bridge: "kn-front", Subnets: pfx("10.1.0.0/23", "fd00:1::/64"), Internal: true},
		{Bridge: "kn-new", Subnets: pfx("10.9.0.0/16", "fd00:9::/64")},
	}
	steps := []struct {
		name string
		cfg  Config
		want string
	}{
		{"sample", sampleConfig(), logFull},
		{"same again", sampleConfig(), logPartial},
		{"retarget, remove and add ports", retargeted, logPartial},
		{"networks change", nets, logPartial},
		{"3,000 ports, no service", manyPorts(3000), logFull}, // no count chains
		{"empty", Config{}, logPartial},
		{"sample again", sampleConfig(), logFull},
	}
	handle := ""
	for _, s := range steps {
		mustSync(t, d, s.cfg)
		if got := log.Take(); !strings.Contains(got, s.want) {
			t.Errorf("after %q: log %q, want %s", s.name, got, s.want)
		}
		if handle == "" {
			handle = nfttest.Handle(t, ns)
		}
		fresh := nstest.New(t, "nftref")
		mustSync(t, newDataplane(t, fresh), s.cfg)
		if got, want := nfttest.List(t, ns), nfttest.List(t, fresh); got != want {
			t.Errorf("after %q:\n%s\nwant (fresh sync):\n%s", s.name, got, want)
		}
		if got := nfttest.Handle(t, ns); got != handle {
			t.Errorf("after %q: table handle %s, want %s", s.name, got, handle)
		}
	}
}

// TestPartialSyncRecovers: a partial sync that fails (the table was
// deleted behind knit's back) is followed at once by a full one; what a
// partial sync cannot see (a foreign element in knit's map) is repaired
// by the next full sync, at the latest an hour later.
func TestPartialSyncRecovers(t *testing.T) {
	ns := nstest.New(t, "nft")
	d, log := newLoggedDataplane(t, ns)
	mustSync(t, d, sampleConfig())
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	must(t, "nftables conn", err)
	c.DelTable(&nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet})
	must(t, "delete table behind knit's back", c.Flush())
	log.Take()

	more := sampleConfig()
	more.Ports = append(more.Ports, mapping(t, "tcp * 81 10.1.0.2 81"))
	mustSync(t, d, more)
	if got := log.Take(); !strings.Contains(got, "partial nftables sync failed") || !strings.Contains(got, logFull) {
		t.Errorf("log %q; want a failed partial sync, then a full one", got)
	}
	want := nfttest.List(t, ns)
	if !strings.Contains(want, "tcp . 81 : 10.1.0.2 . 81") {
		t.Errorf("table after recovery:\n%s", want)
	}

	// An invalid config changes nothing and keeps the applied state.
	bad := more
	bad.Ports = append(bad.Ports, bad.Ports[0])
	if err := d.Apply(bad); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("Sync(duplicate port) = %v", err)
	}

	foreign := nftables.SetElement{Key: exprs.Concat([]byte{6}, be16(7)), Val: exprs.Concat([]byte{10, 9, 9, 9}, be16(7))}
	must(t, "add foreign element", c.SetAddElements(&nftables.Set{Table: &nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet}, Name: "ports_any_v4"}, []nftables.SetElement{foreign}))
	must(t, "add foreign element", c.Flush())
	mustSync(t, d, more)
	if got := log.Take(); !strings.Contains(got, logPartial) {
		t.Errorf("log %q; want a partial sync", got)
	}
	if got := nfttest.List(t, ns); !strings.Contains(got, "10.9.9.9") {
		t.Errorf("a partial sync only sends its own changes; the foreign element is gone already:\n%s", got)
	}

	d.ForceFull() // as an hour after the last full sync (see package nft's tests)
	mustSync(t, d, more)
	if got := log.Take(); !strings.Contains(got, logFull) {
		t.Errorf("log %q; want a full sync", got)
	}
	if got := nfttest.List(t, ns); got != want {
		t.Errorf("full sync left:\n%s\nwant:\n%s", got, want)
	}
}

// manyPorts returns one network and n mappings: TCP and UDP wildcards on
// host ports from 10000, every fifth bound to a host address, every
// seventh IPv6.
func manyPorts(n int) Config {
	cfg := Config{Networks: []networks.Network{{Bridge: "kn-ports", Subnets: pfx("10.200.0.0/16", "fd00:200::/64")}}}
	for i := range n {
		p := ports.Port{Proto: []string{"tcp", "udp"}[i%2], HostPort: uint16(10000 + i/2), ContainerPort: 80,
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
