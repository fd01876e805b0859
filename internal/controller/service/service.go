// Package service is the Kubernetes Service controller. Services and
// containers both live in the store; whenever either changes, it recomputes
// every service's endpoints (package endpoints selects them) and hands the
// result to the nftables data plane (virtual IPs, node ports and load
// balancer addresses DNATed to ready endpoints), to the DNS server
// (cluster.local names) and to the host's routing table (the service range
// and load balancer addresses are local, so the host itself reaches them and
// answers ARP for load balancer addresses). It also runs the readiness
// probes and records their results in the containers' status.
//
// It is level-triggered over the whole state rather than per key: a label
// change can move a container between any number of services, and
// recomputing 10,000 services from an index costs milliseconds. Changes that
// arrive while a pass runs are folded into the next one.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/dns"
	"github.com/knit-net/knit/internal/endpoints"
	"github.com/knit-net/knit/internal/probe"
	"github.com/knit-net/knit/internal/reconcile"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Options configure the controller.
type Options struct {
	Store     store.Store
	Dataplane Dataplane
	// DNS serves the cluster.local names; nil is none.
	DNS Names
	// Ranges are the ClusterIP ranges.
	Ranges []netip.Prefix
	// Routes makes the host's local routes for service addresses match.
	Routes RouteSyncer
	// Containers lists the containers each pass (shared with the policy
	// controller); nil is a lister of its own.
	Containers *state.ContainerLister
	Logger     *slog.Logger
}

// Dataplane load-balances the service ports: *dataplane.Manager.
type Dataplane interface {
	SetServices([]services.ServicePort, []netip.Prefix) error
}

// Names serves the services' DNS names: *dns.Server.
type Names interface {
	SetServices([]dns.Service)
}

var (
	_ Dataplane   = (*dataplane.Manager)(nil)
	_ Names       = (*dns.Server)(nil)
	_ RouteSyncer = dataplane.LocalRoutes{}
)

// RouteSyncer keeps knit's local routes: exactly the given prefixes are
// routed to the host itself.
type RouteSyncer interface {
	SyncLocalRoutes(prefixes []netip.Prefix) error
}

// Controller runs the service control loop.
type Controller struct {
	*reconcile.PassLoop
	opts   Options
	st     store.Store
	log    *slog.Logger
	probes *probe.Manager
}

// New makes a controller; Run starts it.
func New(opts Options) *Controller {
	if opts.Containers == nil {
		opts.Containers = state.NewContainerLister()
	}
	c := &Controller{opts: opts, st: opts.Store, log: opts.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.probes = probe.New(c.recordReady)
	c.PassLoop = reconcile.NewPassLoop("services", opts.Store, []string{state.ServicesPrefix, state.ContainersPrefix}, 30*time.Second, c.log, c.pass)
	return c
}

// Run watches services and containers and applies until ctx ends; the
// readiness probes stop with it.
func (c *Controller) Run(ctx context.Context) {
	defer c.probes.Close()
	c.PassLoop.Run(ctx)
}

// pass recomputes everything from one consistent read and applies it.
func (c *Controller) pass(ctx context.Context) error {
	var svcs []v1.Service
	var ctrs []v1.Container
	if err := c.st.View(ctx, func(tx store.Tx) (err error) {
		if svcs, err = state.ListServices(tx, ""); err != nil {
			return err
		}
		ctrs, err = c.opts.Containers.List(tx)
		return err
	}); err != nil {
		return err
	}
	d := Compute(svcs, ctrs)
	c.probes.Set(d.Probes)
	if err := c.opts.Dataplane.SetServices(d.Ports, c.opts.Ranges); err != nil {
		return fmt.Errorf("program service load balancing: %w", err)
	}
	if c.opts.DNS != nil {
		c.opts.DNS.SetServices(d.DNS)
	}
	if c.opts.Routes != nil {
		if err := c.opts.Routes.SyncLocalRoutes(append(c.opts.Ranges[:len(c.opts.Ranges):len(c.opts.Ranges)], d.LBAddrs...)); err != nil {
			return fmt.Errorf("route service addresses to the host: %w", err)
		}
	}
	return nil
}

// recordReady writes a probe result into the container's status.
func (c *Controller) recordReady(name string, ready bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.st.Update(ctx, func(tx store.Tx) error {
		ctr, err := state.GetContainer(tx, name)
		if err != nil || ctr == nil || ctr.Status.Ready == ready {
			return err
		}
		ctr.Status.Ready = ready
		return state.PutContainer(tx, ctr)
	})
	if err != nil {
		c.log.Warn("services: record readiness", "container", name, "ready", ready, "err", err)
		return
	}
	c.log.Debug("readiness changed", "container", name, "ready", ready)
}

// Desired is what one pass applies.
type Desired struct {
	Ports   []services.ServicePort
	DNS     []dns.Service
	LBAddrs []netip.Prefix
	Probes  map[string]probe.Target
}

// Compute derives the data plane, DNS, routes and probes from the store's
// services and containers.
func Compute(svcs []v1.Service, ctrs []v1.Container) Desired {
	ix := endpoints.NewIndex(ctrs)
	d := Desired{Probes: map[string]probe.Target{}}
	for i := range svcs {
		svc := &svcs[i]
		eps := ix.Endpoints(svc)
		var ready []v1.ServiceEndpoint
		for _, ep := range eps {
			if ep.Ready || svc.Spec.PublishNotReadyAddresses {
				ready = append(ready, ep)
			}
		}
		d.DNS = append(d.DNS, dnsService(svc, ready))
		if svc.Headless() || svc.Spec.Type == v1.ServiceTypeExternalName {
			continue
		}
		vips := svc.ClusterAddrs()
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				vips = append(vips, a)
				d.LBAddrs = append(d.LBAddrs, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		for _, sp := range svc.Spec.Ports {
			p := services.ServicePort{
				Name: fmt.Sprintf("%s:%s", svc.Key(), portLabel(sp)), VIPs: vips,
				Protocol: strings.ToLower(sp.Protocol), Port: uint16(sp.Port), NodePort: uint16(sp.NodePort),
				AffinityTimeout: svc.AffinityTimeout(),
			}
			for _, ep := range ready {
				for _, tp := range ep.Ports {
					if tp.Name == sp.Name && tp.Protocol == sp.Protocol {
						for _, a := range ep.Addresses {
							p.Backends = append(p.Backends, netip.AddrPortFrom(a, tp.Port))
						}
					}
				}
			}
			d.Ports = append(d.Ports, p)
		}
	}
	for i := range ctrs {
		ctr := &ctrs[i]
		if ctr.Readiness == nil || ctr.Status.State != v1.StateRunning || ctr.Deleting || ctr.Stopped {
			continue
		}
		addr, ok := probeAddr(ctr)
		port, okp := ctr.Readiness.ResolvePort(ctr.ContainerPorts)
		if !ok || !okp {
			continue
		}
		d.Probes[ctr.Name] = probe.Target{
			Addr: addr, Port: port, HTTP: ctr.Readiness.Type == "http", Path: ctr.Readiness.Path,
			Period: ctr.Readiness.Period, Timeout: ctr.Readiness.Timeout,
		}
	}
	return d
}

func portLabel(sp v1.ServicePort) string {
	if sp.Name != "" {
		return sp.Name
	}
	return fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)
}

// probeAddr is where a container is probed: its first IPv4 address, else
// its first address.
func probeAddr(c *v1.Container) (netip.Addr, bool) {
	var first netip.Addr
	for _, ep := range c.Endpoints {
		for _, p := range ep.Addresses {
			if p.Addr().Is4() {
				return p.Addr(), true
			}
			if !first.IsValid() {
				first = p.Addr()
			}
		}
	}
	return first, first.IsValid()
}

func dnsService(svc *v1.Service, ready []v1.ServiceEndpoint) dns.Service {
	out := dns.Service{
		Name: svc.Metadata.Name, Namespace: svc.Metadata.Namespace,
		ClusterIPs: svc.ClusterAddrs(), Headless: svc.Headless(),
	}
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		out.ExternalName = svc.Spec.ExternalName
	}
	for _, sp := range svc.Spec.Ports {
		out.Ports = append(out.Ports, dns.ServicePort{Name: sp.Name, Protocol: strings.ToLower(sp.Protocol), Port: uint16(sp.Port)})
	}
	for _, ep := range ready {
		de := dns.ServiceEndpoint{Hostname: ep.Hostname, Addrs: ep.Addresses}
		for _, tp := range ep.Ports {
			de.Ports = append(de.Ports, dns.ServicePort{Name: tp.Name, Protocol: strings.ToLower(tp.Protocol), Port: tp.Port})
		}
		out.Endpoints = append(out.Endpoints, de)
	}
	return out
}
