package container

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// recheckAfter is how old an endpoint's last check may be before a sync
// checks it against the kernel again.
const recheckAfter = 30 * time.Second

// networksOf reads the networks of the container's endpoints.
func (c *Controller) networksOf(ctx context.Context, ctr *v1.Container) (map[string]*v1.Network, error) {
	nets := map[string]*v1.Network{}
	err := c.st.View(ctx, func(tx store.Tx) error {
		for _, ep := range ctr.Endpoints {
			n, err := state.GetNetwork(tx, ep.Network)
			if err != nil {
				return err
			}
			if n == nil || n.ID != ep.NetworkID {
				return fmt.Errorf("network %q of interface %s no longer exists", ep.Network, ep.Interface)
			}
			nets[ep.Network] = n
		}
		return nil
	})
	return nets, err
}

// ensureEndpoints makes the container's interfaces match its record: missing
// or changed endpoints are ensured (which leaves a matching one untouched),
// endpoints no longer in the record are deleted; then its published ports and
// DNS names follow.
func (c *Controller) ensureEndpoints(ctr *v1.Container, nets map[string]*v1.Network) error {
	if ctr.NetworkMode != v1.DriverBridge {
		return nil
	}
	// Published ports go to nftables while the veths are made: the two do not
	// depend on each other, and a DNAT toward an address not yet up is harmless.
	portsDone := make(chan error, 1)
	go func() { portsDone <- c.opts.Dataplane.SetPorts(ctr.ID, portsFor(ctr, nets)) }()
	gw := gateways(ctr, nets)
	c.mu.Lock()
	applied := slices.Clone(c.applied[ctr.ID])
	c.mu.Unlock()
	want := map[string]bool{}
	var errs []error
	for i := range ctr.Endpoints {
		spec := &ctr.Endpoints[i]
		want[spec.HostVeth] = true
		dep := c.driverEndpoint(ctr, spec, nets[spec.Network], gw[spec.Interface])
		fp := fingerprint(dep)
		// A matching endpoint is skipped, unless it was last checked long ago:
		// then it is ensured again (touching nothing that still matches), so
		// the periodic resync repairs what was changed behind knit's back.
		if i := findApplied(applied, spec.HostVeth); i >= 0 && applied[i].fingerprint == fp && time.Since(applied[i].at) < recheckAfter {
			continue
		}
		if err := c.ensureEndpoint(dep); err != nil {
			errs = append(errs, fmt.Errorf("interface %s on network %q: %w", spec.Interface, spec.Network, err))
			continue
		}
		c.setApplied(ctr.ID, appliedEP{hostVeth: spec.HostVeth, fingerprint: fp, at: time.Now()})
	}
	if err := <-portsDone; err != nil {
		errs = append(errs, fmt.Errorf("published ports: %w", err))
	}
	c.opts.DNS.SetContainer(dnsRecord(ctr, nets))
	for _, a := range applied {
		if !want[a.hostVeth] {
			if err := c.deleteEndpoint(a.hostVeth); err != nil {
				errs = append(errs, err)
				continue
			}
			c.mu.Lock()
			c.applied[ctr.ID] = slices.DeleteFunc(c.applied[ctr.ID], func(x appliedEP) bool { return x.hostVeth == a.hostVeth })
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func findApplied(eps []appliedEP, hostVeth string) int {
	return slices.IndexFunc(eps, func(a appliedEP) bool { return a.hostVeth == hostVeth })
}

func (c *Controller) ensureEndpoint(ep driver.Endpoint) error {
	if err := c.opts.Networks.Ensure(ep.Network); err != nil {
		return err
	}
	d, ok := c.opts.Drivers[ep.Network.Driver]
	if !ok {
		return fmt.Errorf("no driver %q", ep.Network.Driver)
	}
	return d.EnsureEndpoint(ep)
}

// deleteEndpoint removes an endpoint by its host veth: the container end
// goes with it, so it works without the container's namespace.
func (c *Controller) deleteEndpoint(hostVeth string) error {
	return c.opts.Drivers[v1.DriverBridge].DeleteEndpoint(driver.Endpoint{Spec: &v1.Endpoint{HostVeth: hostVeth}})
}

func (c *Controller) setApplied(id string, a appliedEP) {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := c.applied[id]
	if i := findApplied(eps, a.hostVeth); i >= 0 {
		eps[i] = a
		return
	}
	c.applied[id] = append(eps, a)
}

// Applied reports the host veths this controller has in place, for pruning.
func (c *Controller) Applied() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]bool{}
	for _, eps := range c.applied {
		for _, a := range eps {
			m[a.hostVeth] = true
		}
	}
	return m
}

func (c *Controller) driverEndpoint(ctr *v1.Container, spec *v1.Endpoint, n *v1.Network, gws []netip.Addr) driver.Endpoint {
	if n == nil {
		n = &v1.Network{Name: spec.Network, ID: spec.NetworkID, Driver: v1.DriverBridge}
	}
	return driver.Endpoint{Network: n, Spec: spec, NetNSPath: c.nsPathOf(ctr), Gateways: gws}
}

// fingerprint summarises what an endpoint was ensured with; a hash keeps the
// per-endpoint memory small.
func fingerprint(ep driver.Endpoint) [32]byte {
	b, _ := json.Marshal(struct {
		Net  string
		MTU  int
		Spec *v1.Endpoint
		GW   []netip.Addr
	}{ep.Network.Bridge, ep.Network.MTU, ep.Spec, ep.Gateways})
	return sha256.Sum256(b)
}

// gateways picks, per family, the first endpoint on a non-internal network to
// carry the default route, and returns interface → gateways.
func gateways(ctr *v1.Container, nets map[string]*v1.Network) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	taken := map[bool]bool{}
	for _, ep := range ctr.Endpoints {
		n := nets[ep.Network]
		if n == nil || n.Internal {
			continue
		}
		for _, sub := range n.Subnets {
			v6 := sub.Subnet.Addr().Is6()
			if !taken[v6] && sub.Gateway.IsValid() {
				taken[v6] = true
				out[ep.Interface] = append(out[ep.Interface], sub.Gateway)
			}
		}
	}
	return out
}
