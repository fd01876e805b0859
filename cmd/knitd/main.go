// Command knitd is knit's daemon: it serves the API on a unix socket, keeps
// networks and containers in its store, and makes the kernel match.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/knit-net/knit/internal/daemon"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/runner"
)

type poolsFlag []ipam.Pool

func (p *poolsFlag) String() string { return fmt.Sprint([]ipam.Pool(*p)) }
func (p *poolsFlag) Set(s string) error {
	pool, err := ipam.ParsePool(s)
	if err == nil {
		*p = append(*p, pool)
	}
	return err
}

type prefixesFlag []netip.Prefix

func (p *prefixesFlag) String() string { return fmt.Sprint([]netip.Prefix(*p)) }
func (p *prefixesFlag) Set(s string) error {
	pfx, err := netip.ParsePrefix(s)
	if err == nil {
		*p = append(*p, pfx)
	}
	return err
}

func main() {
	runner.InitMain() // a container's init step re-executes knitd; never returns there
	var cfg daemon.Config
	var pools poolsFlag
	var level, format string
	flag.StringVar(&cfg.StateDir, "state-dir", daemon.DefaultStateDir, "directory of the store file")
	flag.StringVar(&cfg.RunDir, "run-dir", daemon.DefaultRunDir, "directory of runtime state: namespace files, container state")
	flag.StringVar(&cfg.Socket, "socket", "", "API socket (default <run-dir>/knit.sock)")
	flag.Var(&pools, "address-pool", "pool for networks without --subnet, base=CIDR,size=N (repeat; default Docker's pools)")
	var dnsPort uint
	flag.UintVar(&dnsPort, "dns-port", 53, "port of knit's DNS server on each network's gateway")
	flag.StringVar(&cfg.HostResolvConf, "resolv-conf", "/etc/resolv.conf", "the host's resolver configuration: upstreams of knit's DNS server")
	var svcCIDRs, lbPools prefixesFlag
	var nodePorts string
	flag.Var(&svcCIDRs, "service-cidr", "ClusterIP range of Services, one per family (default 10.96.0.0/12)")
	flag.StringVar(&nodePorts, "node-port-range", "30000-32767", "range of Services' node ports")
	flag.Var(&lbPools, "lb-pool", "addresses for LoadBalancer Services, a CIDR (repeat; default none: they stay pending)")
	flag.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "DNS zone of Services")
	flag.BoolVar(&cfg.Debug, "debug", false, "serve Go's profiler on the API socket under /debug/pprof/")
	flag.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&format, "log-format", "text", "text or json")
	flag.Parse()
	cfg.Pools = pools
	if dnsPort == 0 || dnsPort > 65535 {
		fmt.Fprintf(os.Stderr, "knitd: --dns-port %d: use 1 to 65535\n", dnsPort)
		os.Exit(2)
	}
	cfg.DNSPort = uint16(dnsPort)
	cfg.ServiceCIDRs, cfg.LBPools = svcCIDRs, lbPools
	if _, err := fmt.Sscanf(nodePorts, "%d-%d", &cfg.NodePortLow, &cfg.NodePortHigh); err != nil {
		fmt.Fprintf(os.Stderr, "knitd: --node-port-range %q: give LOW-HIGH, e.g. 30000-32767\n", nodePorts)
		os.Exit(2)
	}

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "knitd: --log-level %q: use debug, info, warn or error\n", level)
		os.Exit(2)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	default:
		fmt.Fprintf(os.Stderr, "knitd: --log-format %q: use text or json\n", format)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := daemon.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("knitd failed", "err", err)
		os.Exit(1)
	}
}
