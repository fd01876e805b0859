// Command services benchmarks knit's service load balancing (package
// internal/dataplane/nft) side by side with a kube-proxy-shaped nftables
// ruleset that it builds itself, in the same run and the same throwaway
// namespaces:
//
//  1. install N services × E endpoints from nothing (knit: Dataplane.Sync
//     of a new Dataplane into a namespace without its table; the peer: its
//     table in one transaction);
//  2. change one endpoint with N services present: replace one (the count
//     stays) and add one (the count grows), each as the caller would do it
//     (knit: Sync of the whole config; the peer: kube-proxy's transaction);
//  3. first-packet latency: TCP connect() from a client namespace to a VIP
//     whose endpoints listen in a backend namespace, with 10 services
//     present and with N, alternately (knit: a partial sync switches; the
//     peer: a second table with 10 services, whose chains run first, is
//     added and deleted).
//
// Topology (all namespaces are created by the run and deleted at its end):
//
//	client 172.16.0.2 ── host 172.16.0.1 | 172.16.1.1 ── backend 172.16.1.2-11 :8080
//
// The rules live in the host namespace; the measured service is
// 10.96.0.1:80 → the backend's ten addresses. The other services' endpoints
// are addresses nobody answers for (never connected to).
//
// Needs root. Prints a table; `make bench-services` writes it to
// results/services.txt.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	services, endpoints, rounds, peerRounds, changes, connects, latencyRounds int
	settle                                                                    time.Duration
	peer                                                                      bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.services, "services", 10000, "services at scale")
	flag.IntVar(&cfg.endpoints, "endpoints", 10, "endpoints per service")
	flag.IntVar(&cfg.rounds, "rounds", 5, "knit: installs from nothing, and restarts")
	flag.IntVar(&cfg.peerRounds, "peer-rounds", 1, "kube-proxy shape: installs from nothing (each takes minutes at 10,000 services)")
	flag.DurationVar(&cfg.settle, "settle", time.Second, "pause before a latency measurement, for the kernel's deferred work after big changes")
	flag.IntVar(&cfg.changes, "changes", 50, "endpoint changes, per kind and side")
	flag.IntVar(&cfg.connects, "connects", 2000, "connections per latency measurement")
	flag.IntVar(&cfg.latencyRounds, "latency-rounds", 10, "latency measured with 10 and with N services alternately this often (connects split between rounds)")
	flag.BoolVar(&cfg.peer, "peer", true, "also measure the kube-proxy-shaped peer")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/services: run as root (it creates network namespaces)")
		os.Exit(1)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench/services:", err)
		os.Exit(1)
	}
}

// service is one service port as both sides see it.
type service struct {
	vip      netip.Addr
	port     uint16
	backends []netip.AddrPort
	gen      int // kube side: generation of its endpoint chains
}

// makeServices returns n services: the first, 10.96.0.1:80, with the backend
// namespace's ten addresses; the others at 10.96.x.y with distinct,
// unanswered endpoints in 10.128.0.0/9.
func makeServices(n, eps int) []service {
	out := make([]service, n)
	for i := range n {
		v := i + 1
		out[i] = service{vip: netip.AddrFrom4([4]byte{10, 96 + byte(v>>16), byte(v >> 8), byte(v)}), port: 80}
		for j := range eps {
			k := i*eps + j
			a := netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)})
			if i == 0 {
				a = netip.AddrFrom4([4]byte{172, 16, 1, byte(2 + j%10)})
			}
			out[i].backends = append(out[i].backends, netip.AddrPortFrom(a, 8080+uint16(j/10)))
		}
	}
	return out
}

func run(cfg config) error {
	env, err := newEnv()
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		env.close()
		os.Exit(1)
	}()
	defer env.close()

	big, small := makeServices(cfg.services, cfg.endpoints), makeServices(10, cfg.endpoints)
	var r results
	fmt.Fprintf(os.Stderr, "direct connect (no service) …\n")
	if r.direct, err = env.connectLatency(netip.MustParseAddrPort("172.16.1.2:8080"), cfg.connects); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "knit …\n")
	if err := benchKnit(env, cfg, big, small, &r.knit); err != nil {
		return fmt.Errorf("knit: %w", err)
	}
	if cfg.peer {
		fmt.Fprintf(os.Stderr, "kube-proxy shape …\n")
		if err := benchKube(env, cfg, big, small, &r.kube); err != nil {
			return fmt.Errorf("kube-proxy shape: %w", err)
		}
	}
	r.print(os.Stdout, cfg)
	return nil
}

// side is what one side measured.
type side struct {
	install, replace, add, restart []time.Duration
	connSmall, connBig             []time.Duration
}

type results struct {
	direct     []time.Duration
	knit, kube side
}
