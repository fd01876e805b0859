// Package daemon is knitd's composition root: it opens the store, builds the
// drivers, dataplane, runtime and reconcilers, re-derives kernel state from
// the store (adopting what is already right, removing knit-made objects
// nothing wants), and only then serves the API. Stopping the daemon leaves
// container networking in place: the kernel keeps forwarding without knitd.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/store"
)

// Config is knitd's configuration.
type Config struct {
	// StateDir holds the store file (knit.db).
	StateDir string
	// RunDir holds what lives only as long as the machine is up: network
	// namespace files and container state (pid files, logs, /etc files).
	RunDir string
	// Socket is the API's unix socket.
	Socket string
	// Pools are the address pools for networks created without --subnet.
	Pools []ipam.Pool
	// Store overrides the bbolt store (tests use memstore).
	Store  store.Store
	Logger *slog.Logger
	// HostResolvConf names the host's resolvers (default /etc/resolv.conf):
	// knit's DNS server forwards to them and host-mode containers get a copy.
	HostResolvConf string
	// Debug serves Go's profiler on the API socket under /debug/pprof/.
	Debug bool
	// DNSPort is where knit's DNS server listens on each network's gateway
	// (default 53).
	DNSPort uint16
	// ServiceCIDRs are the ClusterIP ranges, at most one per family
	// (default 10.96.0.0/12).
	ServiceCIDRs []netip.Prefix
	// NodePortLow and NodePortHigh bound node ports (default 30000-32767).
	NodePortLow, NodePortHigh uint16
	// LBPools hand out LoadBalancer addresses (default none: pending).
	LBPools []netip.Prefix
	// ClusterDomain is the Kubernetes DNS zone (default cluster.local).
	ClusterDomain string
}

// Defaults for the flags.
const (
	DefaultStateDir = "/var/lib/knit"
	DefaultRunDir   = "/run/knit"
)

func (c *Config) fill() {
	if len(c.ServiceCIDRs) == 0 {
		c.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}
	}
	for i, p := range c.ServiceCIDRs {
		c.ServiceCIDRs[i] = p.Masked()
	}
	for i, p := range c.LBPools {
		c.LBPools[i] = p.Masked()
	}
	if c.NodePortLow == 0 && c.NodePortHigh == 0 {
		c.NodePortLow, c.NodePortHigh = 30000, 32767
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.RunDir, "knit.sock")
	}
	// Pools given for one family only keep the defaults of the other.
	for _, v6 := range []bool{false, true} {
		if !slices.ContainsFunc(c.Pools, func(p ipam.Pool) bool { return p.Base.Addr().Is6() == v6 }) {
			for _, p := range ipam.DefaultPools() {
				if p.Base.Addr().Is6() == v6 {
					c.Pools = append(c.Pools, p)
				}
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HostResolvConf == "" {
		c.HostResolvConf = "/etc/resolv.conf"
	}
	if c.DNSPort == 0 {
		c.DNSPort = 53
	}
}

// validate checks the service flags.
func (c *Config) validate() error {
	fams := map[bool]bool{}
	for _, p := range c.ServiceCIDRs {
		v4 := p.Addr().Is4()
		if fams[v4] {
			return fmt.Errorf("--service-cidr %s: a second range of one family; give at most one IPv4 and one IPv6 range", p)
		}
		fams[v4] = true
		if host := p.Addr().BitLen() - p.Bits(); host > 20 || host < 2 {
			return fmt.Errorf("--service-cidr %s: holds 2^%d addresses; use a range of 4 to 2^20 addresses (e.g. 10.96.0.0/12, fd00:96::/108)", p, host)
		}
		for _, lb := range c.LBPools {
			if lb.Overlaps(p) {
				return fmt.Errorf("--lb-pool %s overlaps --service-cidr %s; give ranges apart", lb, p)
			}
		}
	}
	if c.NodePortLow == 0 || c.NodePortLow > c.NodePortHigh {
		return fmt.Errorf("--node-port-range %d-%d: give LOW-HIGH with 1 <= LOW <= HIGH <= 65535", c.NodePortLow, c.NodePortHigh)
	}
	return nil
}

// Run starts knitd and blocks until ctx ends, then stops serving without
// touching the kernel state it made.
func Run(ctx context.Context, cfg Config) error {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("knitd must run as root: it creates network namespaces, links and nftables rules")
	}
	start := time.Now()
	d, err := build(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.recover(ctx); err != nil {
		return err
	}
	ln, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	cfg.Logger.Info("knitd ready", "socket", cfg.Socket, "state", cfg.StateDir, "startup", time.Since(start).Round(time.Millisecond))
	return d.serve(ctx, ln)
}

func mkdirs(dirs ...string) error {
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return nil
}
