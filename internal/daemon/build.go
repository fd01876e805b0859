package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/apiserver"
	"github.com/knit-net/knit/internal/controller/container"
	"github.com/knit-net/knit/internal/controller/network"
	policyctl "github.com/knit-net/knit/internal/controller/policy"
	"github.com/knit-net/knit/internal/controller/service"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dns"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/driver/bridge"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/reconcile"
	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/bolt"
)

// daemon holds the running parts.
type daemon struct {
	cfg      Config
	st       store.Store
	hostNL   *netlink.Handle
	dp       *dataplane.Manager
	dns      *dns.Server
	rt       *runner.Runtime
	nets     *network.Controller
	ctrs     *container.Controller
	netLoop  *reconcile.Loop
	ctrLoop  *reconcile.Loop
	svcs     *service.Controller
	pols     *policyctl.Controller
	api      *apiserver.Server
	netnsDir string
	revs     [2]int64
	wg       sync.WaitGroup
}

func build(ctx context.Context, cfg Config) (*daemon, error) {
	d := &daemon{cfg: cfg, netnsDir: filepath.Join(cfg.RunDir, "netns")}
	if err := mkdirs(cfg.StateDir, cfg.RunDir, filepath.Dir(cfg.Socket)); err != nil {
		return nil, err
	}
	if err := netns.PrepareDir(d.netnsDir); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", d.netnsDir, err)
	}
	var err error
	d.st = cfg.Store
	if d.st == nil {
		if d.st, err = bolt.Open(filepath.Join(cfg.StateDir, "knit.db")); err != nil {
			return nil, err
		}
	}
	if d.hostNL, err = netlink.NewHandle(); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := netns.SetSysctl("", "net/ipv4/ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	if d.dp, err = dataplane.NewManager(nft.Options{Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	drivers := map[string]driver.Driver{
		"bridge": bridge.New(bridge.Options{Handle: d.hostNL, Logger: cfg.Logger}),
		"host":   driver.Passive{},
		"none":   driver.Passive{},
	}
	d.nets = network.New(d.st, drivers, d.dp, cfg.Logger)
	d.dns = dns.New(dns.Options{Port: cfg.DNSPort, Upstreams: hostUpstreams(cfg.HostResolvConf), ClusterDomain: cfg.ClusterDomain, Logger: cfg.Logger})
	d.nets.OnNetworks = func(nets []v1.Network) error { return d.dns.SetListenAddrs(gatewayAddrs(nets)) }
	d.rt, err = runner.New(d.runtimeDir(), cfg.Logger, func(id string, code int) {
		d.ctrs.OnExit(id, code)
	})
	if err != nil {
		return nil, err
	}
	d.ctrs = container.New(container.Options{
		Store: d.st, Runtime: d.rt, Networks: d.nets, Dataplane: d.dp, DNS: d.dns, Drivers: drivers,
		NetNSDir: d.netnsDir, HostResolvConf: cfg.HostResolvConf, ClusterDomain: cfg.ClusterDomain, Logger: cfg.Logger,
	})
	ctrs := state.NewContainerLister() // one decoded copy for both pass loops
	d.pols = policyctl.New(d.st, d.dp, d.dp, ctrs, cfg.Logger)
	d.svcs = service.New(service.Options{
		Store: d.st, Dataplane: d.dp, DNS: d.dns, Ranges: cfg.ServiceCIDRs, Routes: dataplane.LocalRoutes{H: d.hostNL}, Containers: ctrs, Logger: cfg.Logger,
	})
	d.netLoop = reconcile.New(d.st, d.nets, reconcile.Options{Name: "networks", Prefix: "networks/", Resync: 5 * time.Minute, Logger: cfg.Logger})
	d.ctrLoop = reconcile.New(d.st, d.ctrs, reconcile.Options{Name: "containers", Prefix: "containers/", Workers: 4, Resync: time.Minute, Logger: cfg.Logger})
	d.ctrs.Enqueue = d.ctrLoop.Enqueue
	d.api = apiserver.New(apiserver.Options{
		Store: d.st, Pools: cfg.Pools, Host: dataplane.HostView{NL: d.hostNL}, Logger: cfg.Logger, LogPath: d.rt.LogPath, Debug: cfg.Debug,
		Services: apiserver.ServiceOptions{
			Ranges: cfg.ServiceCIDRs, NodePortLow: cfg.NodePortLow, NodePortHigh: cfg.NodePortHigh,
			LBPools: cfg.LBPools, Applied: d.svcs.Applied,
		},
		Policy: d.pols, PolicyApplied: d.pols.Applied,
	})
	return d, nil
}

func (d *daemon) runtimeDir() string { return filepath.Join(d.cfg.RunDir, "containers") }

// listen opens the API socket, root-only. A socket file left by a dead knitd
// is replaced; a live one is an error.
func listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s: another knitd is already serving it; stop it first or give --socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

func (d *daemon) serve(ctx context.Context, ln net.Listener) error {
	loopCtx, cancel := context.WithCancel(context.Background())
	d.wg.Add(4)
	go func() { defer d.wg.Done(); d.netLoop.Run(loopCtx, d.revs[0]) }()
	go func() { defer d.wg.Done(); d.ctrLoop.Run(loopCtx, d.revs[1]) }()
	go func() { defer d.wg.Done(); d.svcs.Run(loopCtx) }()
	go func() { defer d.wg.Done(); d.pols.Run(loopCtx) }()
	srv := &http.Server{Handler: d.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	cancel()
	d.wg.Wait()
	_ = os.Remove(d.cfg.Socket)
	d.cfg.Logger.Info("knitd stopped; container networking stays in place")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (d *daemon) close() {
	if d.dp != nil {
		d.dp.Close()
	}
	if d.dns != nil {
		d.dns.Close()
	}
	if d.hostNL != nil {
		d.hostNL.Close()
	}
	if d.st != nil && d.cfg.Store == nil {
		d.st.Close()
	}
}
