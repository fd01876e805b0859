// Command attach benchmarks knitd's attach path, the operation behind
// `knit network connect`: the API call that returns once a running
// container's new interface is up with its address in the kernel.
//
// It runs the real knitd in a throwaway host network namespace
// (kb-host-<pid>) with temporary state and run directories, creates the
// networks bench-a and bench-b, and grows the number of running containers
// (`sleep 3600` on bench-a, created through the API with -parallel clients)
// to each of -sizes in turn. At each size it times -samples connects of a
// running container to bench-b (each followed by a disconnect, timed apart),
// checks inside the container's namespace after the first one that the
// interface is up with the address the API answered, and reads knitd's
// resident memory. At the largest size it also measures attaches per second
// with -parallel concurrent clients, and the same connect through the CLI
// (which adds the CLI's process start). For what-if runs, -host-sysctl sets
// kernel settings in the host namespace first, and -anchor keeps one more
// container on bench-b so its bridge never loses its last port.
//
// Everything it made is removed at the end, also after an error or Ctrl-C:
// containers (through the API), knitd (SIGTERM), leftover namespace mounts,
// the host namespace and the temporary directory. It needs root.
//
//	go build -o bin/bench-attach ./bench/attach && bin/bench-attach -json results/attach.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/knit-net/knit/internal/client"
)

// config is the parsed command line.
type config struct {
	knitd, knit string
	sizes       []int
	samples     int
	parallel    int
	rateOps     int
	cliSamples  int
	jsonPath    string
	sysctls     []string // key=value, set in the host namespace before knitd starts
	anchor      bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attach:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "attach: run as root: it creates network namespaces and runs knitd")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, stop, cfg)
	if res != nil && len(res.Sizes) > 0 {
		res.print(os.Stdout)
	}
	if err == nil && cfg.jsonPath != "" {
		err = res.writeJSON(cfg.jsonPath)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attach:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var sizes string
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	fs.StringVar(&cfg.knitd, "knitd", "bin/knitd", "knitd binary")
	fs.StringVar(&cfg.knit, "knit", "bin/knit", "knit CLI binary (for the CLI connect timing)")
	fs.StringVar(&sizes, "sizes", "1,100,1000", "running containers to measure at, ascending")
	fs.IntVar(&cfg.samples, "samples", 50, "timed connects per size")
	fs.IntVar(&cfg.parallel, "parallel", 4, "concurrent API clients for growth and the attach rate")
	fs.IntVar(&cfg.rateOps, "rate-ops", 400, "connects in the attach-rate phase (at most the largest size)")
	fs.IntVar(&cfg.cliSamples, "cli-samples", 10, "connects through the CLI at the largest size (0: skip)")
	fs.StringVar(&cfg.jsonPath, "json", "", "write the results as JSON to this file")
	fs.BoolVar(&cfg.anchor, "anchor", false, "keep one extra container on bench-b throughout, so its bridge\nnever loses carrier between samples (not counted in -sizes)")
	fs.Func("host-sysctl", "set `key=value` in the host namespace before knitd starts, such as\nnet.ipv6.conf.default.disable_ipv6=1 (repeat; for what-if runs)", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", s)
		}
		cfg.sysctls = append(cfg.sysctls, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("-sizes %q: want positive integers separated by commas", sizes)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if !slices.IsSorted(cfg.sizes) || len(slices.Compact(slices.Clone(cfg.sizes))) != len(cfg.sizes) {
		return cfg, fmt.Errorf("-sizes %q: want strictly ascending sizes", sizes)
	}
	if cfg.samples < 1 || cfg.parallel < 1 || cfg.rateOps < 0 || cfg.cliSamples < 0 {
		return cfg, errors.New("-samples and -parallel must be at least 1, -rate-ops and -cli-samples at least 0")
	}
	for _, p := range []*string{&cfg.knitd, &cfg.knit} {
		abs, err := filepath.Abs(*p)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return cfg, fmt.Errorf("binary %s: %w (build it with make build)", *p, err)
		}
		*p = abs
	}
	return cfg, nil
}

// run sets up the host, runs every phase and always cleans up. stop restores
// the default signal handling once cleanup starts, so a second Ctrl-C quits.
func run(ctx context.Context, stop func(), cfg config) (res *result, err error) {
	h := &host{cfg: cfg}
	defer func() {
		interrupted := ctx.Err() != nil
		if interrupted {
			fmt.Fprintln(os.Stderr, "attach: interrupted; cleaning up (Ctrl-C again quits at once and leaves state behind)")
		}
		stop()
		if err != nil && !interrupted {
			h.printLogTail(os.Stderr, 30)
		}
		if cerr := h.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	if err := h.setup(); err != nil {
		return nil, err
	}
	if err := h.startKnitd(ctx); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, h: h, c: client.New(h.socket)}
	res, err = b.run(ctx)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", err)
	}
	return res, err
}
