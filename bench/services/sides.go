package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
)

// knitConfig is the dataplane config of svcs; building it is the caller's
// work, not timed.
func knitConfig(svcs []service) dataplane.Config {
	cfg := dataplane.Config{ServiceRanges: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}
	for i, s := range svcs {
		cfg.Services = append(cfg.Services, services.ServicePort{Name: fmt.Sprintf("bench/svc-%d:http", i),
			VIPs: []netip.Addr{s.vip}, Protocol: "tcp", Port: s.port, Backends: s.backends})
	}
	return cfg
}

// timed runs fn and returns how long it took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// replaced returns bs with endpoint 3 on another port (the count and the
// order stay: one backend map element changes) on odd i.
func replaced(bs []netip.AddrPort, i int) []netip.AddrPort {
	out := slices.Clone(bs)
	out[3] = netip.AddrPortFrom(out[3].Addr(), 8080+uint16(i%2)*1000)
	return out
}

// grown returns bs with one endpoint more on odd i (the count changes).
func grown(bs []netip.AddrPort, i int) []netip.AddrPort {
	out := slices.Clone(bs)
	if i%2 == 1 {
		out = append(out, netip.MustParseAddrPort("10.255.255.254:8080"))
	}
	return out
}

func benchKnit(e *env, cfg config, big, small []service, s *side) error {
	bigCfg, smallCfg := knitConfig(big), knitConfig(small)
	var d *dataplane.Table
	for r := range cfg.rounds {
		var err error
		if d, err = dataplane.NewTable(nft.Options{NetNSPath: e.host.path}); err != nil {
			return err
		}
		if err := d.Delete(); err != nil {
			return err
		}
		took, err := timed(func() error { return d.Apply(bigCfg) })
		if err != nil {
			return err
		}
		s.install = append(s.install, took)
		if r < cfg.rounds-1 {
			d.Close()
		}
	}
	defer d.Close()
	// A restarted knitd: a new Dataplane, a full sync into the table that
	// holds everything already.
	for range cfg.rounds {
		d2, err := dataplane.NewTable(nft.Options{NetNSPath: e.host.path})
		if err != nil {
			return err
		}
		took, err := timed(func() error { return d2.Apply(bigCfg) })
		d2.Close()
		if err != nil {
			return err
		}
		s.restart = append(s.restart, took)
	}
	mid := len(big) / 2
	orig := bigCfg.Services[mid].Backends
	for i := range cfg.changes {
		bigCfg.Services[mid].Backends = replaced(orig, i+1)
		took, err := timed(func() error { return d.Apply(bigCfg) })
		if err != nil {
			return err
		}
		s.replace = append(s.replace, took)
	}
	for i := range cfg.changes {
		bigCfg.Services[mid].Backends = grown(orig, i+1)
		took, err := timed(func() error { return d.Apply(bigCfg) })
		if err != nil {
			return err
		}
		s.add = append(s.add, took)
	}
	// Latency with 10 and with N services, alternately: the machine's
	// load drifts, and both should see the same drift.
	for range cfg.latencyRounds {
		for _, m := range []struct {
			cfg dataplane.Config
			out *[]time.Duration
		}{{smallCfg, &s.connSmall}, {bigCfg, &s.connBig}} {
			if err := d.Apply(m.cfg); err != nil {
				return err
			}
			time.Sleep(cfg.settle)
			got, err := e.connectLatency(vipOf(big[0]), cfg.connects/cfg.latencyRounds)
			if err != nil {
				return err
			}
			*m.out = append(*m.out, got...)
		}
	}
	return d.Delete()
}

func vipOf(s service) netip.AddrPort { return netip.AddrPortFrom(s.vip, s.port) }

func benchKube(e *env, cfg config, big, small []service, s *side) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(e.host.handle)), nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	var k *kubeTable
	for r := range cfg.peerRounds {
		k = newKubeTable(c, "kubebench", 0)
		took, err := timed(func() error { return k.install(big) })
		if err != nil {
			return err
		}
		s.install = append(s.install, took)
		if r < cfg.peerRounds-1 {
			if err := k.delete(); err != nil {
				return err
			}
		}
	}
	mid := len(big) / 2
	orig := big[mid].backends
	for i := range cfg.changes {
		took, err := timed(func() error { return k.setBackends(mid, replaced(orig, i+1)) })
		if err != nil {
			return err
		}
		s.replace = append(s.replace, took)
	}
	for i := range cfg.changes {
		took, err := timed(func() error { return k.setBackends(mid, grown(orig, i+1)) })
		if err != nil {
			return err
		}
		s.add = append(s.add, took)
	}
	// Latency with 10 and with N services, alternately, as for knit: a
	// second table with the 10 services, whose nat chains run just before
	// the big table's, takes the VIP while it is there.
	for range cfg.latencyRounds {
		ks := newKubeTable(c, "kubebench-small", -1)
		if err := ks.install(small); err != nil {
			return err
		}
		time.Sleep(cfg.settle)
		got, err := e.connectLatency(vipOf(small[0]), cfg.connects/cfg.latencyRounds)
		if err != nil {
			return err
		}
		s.connSmall = append(s.connSmall, got...)
		if err := ks.delete(); err != nil {
			return err
		}
		time.Sleep(cfg.settle)
		if got, err = e.connectLatency(vipOf(big[0]), cfg.connects/cfg.latencyRounds); err != nil {
			return err
		}
		s.connBig = append(s.connBig, got...)
	}
	return k.delete()
}

// bigBuffers raises the netlink socket's buffers past what a whole table
// in one transaction needs: the kernel takes a batch in one sendmsg, and
// the peer's table at 10,000 services is some 50 MB of messages (knit's
// is 6 MB; its Dataplane uses 16 MB).
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 256<<20),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20))
	})
	return errors.Join(err, serr)
}
