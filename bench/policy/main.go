// Command policy benchmarks knit's network policy data plane (Config.Policy
// of package internal/dataplane/nft, compiled by internal/policy) in
// throwaway namespaces:
//
//  1. compile (policy.Compile) and apply (Dataplane.Sync of a new
//     Dataplane into a namespace without knit's table) N policies on M
//     pods, from nothing;
//  2. change one policy's port with N present: compile again and apply
//     (a partial sync of the changed elements);
//  3. TCP connections per second and single-stream throughput (iperf3)
//     from a client pod to a server pod through a bridge, without policy
//     and with the N policies, in short windows alternately, in the same
//     run. With policy both pods are isolated (the client for egress, the
//     server for ingress), so every new connection is looked up in both
//     directions.
//
// Topology (created by the run, deleted at its end), twice: side a's host
// has knit's table without policy, side b's the N policies (phases 1 and 2
// run there too), so that the measurements alternate without changing a
// table in between:
//
//	client 10.1.0.10 ─┐
//	                  ├─ kb-pol bridge 10.1.0.1/16 (host: knit's table)
//	server 10.1.0.11 ─┘   (the other pods exist in the policy only)
//
// Needs root and iperf3. Prints a table; `make bench-policy` writes it to
// results/policy.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/policy"
)

type config struct {
	policies, pods, rounds, changes, trafficRounds, workers int
	window, settle                                          time.Duration
	control                                                 bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.policies, "policies", 1000, "policies")
	flag.IntVar(&cfg.pods, "pods", 1000, "pods (containers) the policies select from")
	flag.IntVar(&cfg.rounds, "rounds", 5, "installs from nothing")
	flag.IntVar(&cfg.changes, "changes", 30, "single-policy changes")
	flag.IntVar(&cfg.trafficRounds, "traffic-rounds", 20, "connection rate measured without policy and with it alternately this often (throughput: half as often, 2 s each)")
	flag.IntVar(&cfg.workers, "workers", 2, "concurrent connecting clients")
	flag.DurationVar(&cfg.window, "window", time.Second, "length of each connection rate measurement")
	flag.BoolVar(&cfg.control, "control", false, "control run: remove the policy from side b before the traffic measurements (the ratios should be 1)")
	flag.DurationVar(&cfg.settle, "settle", time.Second, "pause before the traffic measurements, for the kernel's deferred work after the installs")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/policy: run as root (it creates network namespaces)")
		os.Exit(1)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench/policy:", err)
		os.Exit(1)
	}
}

// syncCounter counts full syncs in a Dataplane's debug log.
type syncCounter struct{ full atomic.Int64 }

func (s *syncCounter) Enabled(context.Context, slog.Level) bool { return true }
func (s *syncCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "synced nftables table" {
		s.full.Add(1)
	}
	return nil
}
func (s *syncCounter) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *syncCounter) WithGroup(string) slog.Handler      { return s }

func run(cfg config) error {
	env, err := newEnv()
	if err != nil {
		return err
	}
	defer env.close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() { <-stop; env.close(); os.Exit(1) }()

	var r results
	in := workload(cfg.policies, cfg.pods)
	net := dataplane.Config{Networks: []networks.Network{{Bridge: bridge, Subnets: env.subnets}}}
	plain, err := dataplane.NewTable(nft.Options{NetNSPath: env.sides[0].host.path})
	if err != nil {
		return err
	}
	defer plain.Close()
	if err := plain.Apply(net); err != nil {
		return fmt.Errorf("side without policy: %w", err)
	}
	counter := &syncCounter{}
	var d *dataplane.Table
	var c *policy.Compiled
	for range cfg.rounds {
		if d != nil {
			if err := d.Delete(); err != nil {
				return err
			}
			d.Close()
		}
		if d, err = dataplane.NewTable(nft.Options{NetNSPath: env.sides[1].host.path, Logger: slog.New(counter)}); err != nil {
			return err
		}
		t0 := time.Now()
		c = policy.Compile(in)
		t1 := time.Now()
		cfgWith := net
		cfgWith.Policy = c
		if err := d.Apply(cfgWith); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		r.install.add(t1.Sub(t0), time.Since(t1))
	}
	defer d.Close()
	r.elements, r.groups = len(c.Ingress)+len(c.Egress), len(c.GroupPolicies)

	port := map[int]int32{}
	fullBefore := counter.full.Load()
	for k := range cfg.changes {
		i := 2 + (k*37)%(cfg.policies-2)
		port[i] = map[int32]int32{0: 8443, 8080: 8443, 8443: 8080}[port[i]]
		in.Policies[i] = benchPolicy(i, port[i])
		t0 := time.Now()
		c = policy.Compile(in)
		t1 := time.Now()
		cfgWith := net
		cfgWith.Policy = c
		if err := d.Apply(cfgWith); err != nil {
			return fmt.Errorf("change policy %d: %w", i, err)
		}
		r.change.add(t1.Sub(t0), time.Since(t1))
	}
	r.changeFull = counter.full.Load() - fullBefore

	if cfg.control {
		if err := d.Apply(net); err != nil {
			return err
		}
	}
	time.Sleep(cfg.settle)
	for round := range cfg.trafficRounds {
		for i, m := range []*traffic{&r.without, &r.with} {
			if round%2 == 1 { // alternate which side goes first
				i, m = 1-i, []*traffic{&r.without, &r.with}[1-i]
			}
			rate, err := env.sides[i].connRate(cfg.workers, cfg.window)
			if err != nil {
				return err
			}
			m.rates = append(m.rates, rate)
		}
	}
	for round := range cfg.trafficRounds / 2 {
		for i, m := range []*traffic{&r.without, &r.with} {
			if round%2 == 1 {
				i, m = 1-i, []*traffic{&r.without, &r.with}[1-i]
			}
			bps, err := env.sides[i].throughput(2 * time.Second)
			if err != nil {
				return err
			}
			m.bps = append(m.bps, bps)
		}
	}
	drops, err := d.Policy.DropCounts(d.Table)
	if err != nil {
		return err
	}
	for _, n := range drops {
		r.drops += n
	}
	r.print(os.Stdout, cfg)
	return nil
}

// timings are compile and apply durations of repeated runs.
type timings struct{ compile, apply, total []time.Duration }

func (t *timings) add(compile, apply time.Duration) {
	t.compile, t.apply, t.total = append(t.compile, compile), append(t.apply, apply), append(t.total, compile+apply)
}

type traffic struct{ rates, bps []float64 }

type results struct {
	install, change  timings
	changeFull       int64
	elements, groups int
	without, with    traffic
	drops            uint64
}

func (r results) print(w *os.File, cfg config) {
	fmt.Fprintf(w, "%d policies on %d dual-stack pods: %d groups, %d allow elements; %d installs, %d single-policy changes (%d of them full syncs); connection rate: %d windows of %v per side, %d connecting clients; throughput: %d runs of 2 s per side\n\n",
		cfg.policies, cfg.pods, r.groups, r.elements, cfg.rounds, cfg.changes, r.changeFull, cfg.trafficRounds, cfg.window, cfg.workers, cfg.trafficRounds/2)
	fmt.Fprintf(w, "| | compile p50 | apply p50 | total p50 | total max | target |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| install %d policies from nothing | %s | %s | %s | %s | total ≤ 500 ms |\n", cfg.policies,
		ms(pct(r.install.compile, 0.5)), ms(pct(r.install.apply, 0.5)), ms(pct(r.install.total, 0.5)), ms(pct(r.install.total, 1)))
	fmt.Fprintf(w, "| change one policy at %d | %s | %s | %s | %s | ≤ 20 ms |\n", cfg.policies,
		ms(pct(r.change.compile, 0.5)), ms(pct(r.change.apply, 0.5)), ms(pct(r.change.total, 0.5)), ms(pct(r.change.total, 1)))
	fmt.Fprintf(w, "\napply only, one policy changed: p50 %s, p90 %s, max %s\n\n", ms(pct(r.change.apply, 0.5)), ms(pct(r.change.apply, 0.9)), ms(pct(r.change.apply, 1)))
	with := fmt.Sprintf("%d policies", cfg.policies)
	if cfg.control {
		with = "no policy (control run)"
	}
	fmt.Fprintf(w, "| client → server through the bridge | no policy | %s | ratio (target ≥ 0.95) |\n|---|---|---|---|\n", with)
	fmt.Fprintf(w, "| TCP connections/s (median of windows; ratio: median of the paired windows' ratios) | %.0f | %.0f | %.3f |\n",
		median(r.without.rates), median(r.with.rates), median(ratios(r.with.rates, r.without.rates)))
	fmt.Fprintf(w, "| single-stream throughput (iperf3), Gbit/s (the same) | %.2f | %.2f | %.3f |\n",
		median(r.without.bps)/1e9, median(r.with.bps)/1e9, median(ratios(r.with.bps, r.without.bps)))
	fmt.Fprintf(w, "\nrounds: no policy conn/s %s; with policy %s\n", floats(r.without.rates, "%.0f"), floats(r.with.rates, "%.0f"))
	fmt.Fprintf(w, "rounds: no policy Gbit/s %s; with policy %s\n", floats(scale(r.without.bps, 1e-9), "%.2f"), floats(scale(r.with.bps, 1e-9), "%.2f"))
	fmt.Fprintf(w, "packets denied by policy during the run: %d (must be 0)\n", r.drops)
}

// ratios divides each round's measurement with policy by the one without
// next to it: the machine's load drifts less within a round.
func ratios(with, without []float64) []float64 {
	out := make([]float64, len(with))
	for i := range with {
		out[i] = with[i] / without[i]
	}
	return out
}

func floats(xs []float64, f string) string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf(f, x))
	}
	return strings.Join(out, " ")
}

func scale(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * k
	}
	return out
}
