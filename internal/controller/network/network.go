// Package network is the network reconciler: it makes each network's host
// side (for bridge networks: the bridge, its MTU and gateway addresses) and
// knit's nftables table match the store, tears a network down when the API
// marks it for deletion, and then deletes its record and its addresses.
package network

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Dataplane is where the live networks go (knit's nftables table):
// *dataplane.Manager.
type Dataplane interface {
	SetNetworks([]v1.Network) error
}

var _ Dataplane = (*dataplane.Manager)(nil)

// Controller reconciles networks.
type Controller struct {
	st      store.Store
	drivers map[string]driver.Driver
	dp      Dataplane
	log     *slog.Logger

	// OnNetworks, if set, is told the live networks after every change (knit's
	// DNS server listens on their gateways).
	OnNetworks func([]v1.Network) error

	mu      sync.Mutex
	applied map[string]string // network ID → fingerprint of what the driver applied
}

// New makes a controller. drivers maps a driver name to its implementation.
func New(st store.Store, drivers map[string]driver.Driver, dp Dataplane, log *slog.Logger) *Controller {
	return &Controller{st: st, drivers: drivers, dp: dp, log: log, applied: map[string]string{}}
}

func (c *Controller) driver(n *v1.Network) (driver.Driver, error) {
	d, ok := c.drivers[n.Driver]
	if !ok {
		return nil, fmt.Errorf("network %q: no driver %q in this knitd", n.Name, n.Driver)
	}
	return d, nil
}

// Sync reconciles one network key.
func (c *Controller) Sync(ctx context.Context, key string, value []byte) error {
	if value == nil {
		return c.SyncDataplane(ctx)
	}
	n, err := state.DecodeNetwork(value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if n.Deleting {
		return c.remove(ctx, n)
	}
	if err := c.Ensure(n); err != nil {
		return err
	}
	return c.SyncDataplane(ctx)
}

// Ensure applies n's host side unless it already is. The container
// reconciler calls it before attaching an endpoint, so a container never
// waits for the network loop to get round to a new network.
func (c *Controller) Ensure(n *v1.Network) error {
	fp := fingerprint(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied[n.ID] == fp {
		return nil
	}
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	if err := d.EnsureNetwork(n); err != nil {
		return err
	}
	c.applied[n.ID] = fp
	c.log.Info("network applied", "network", n.Name, "driver", n.Driver, "bridge", n.Bridge)
	return nil
}

func (c *Controller) remove(ctx context.Context, n *v1.Network) error {
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	if err := d.DeleteNetwork(n); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.applied, n.ID)
	c.mu.Unlock()
	_, err = c.st.Update(ctx, func(tx store.Tx) error {
		cur, err := state.GetNetwork(tx, n.Name)
		if err != nil || cur == nil || cur.ID != n.ID {
			return err
		}
		if err := ipam.ReleaseNetwork(tx, n.ID); err != nil {
			return err
		}
		return tx.Delete(state.NetworkKey(n.Name))
	})
	if err != nil {
		return fmt.Errorf("network %q: delete record: %w", n.Name, err)
	}
	c.log.Info("network removed", "network", n.Name)
	return c.SyncDataplane(ctx)
}

// SyncDataplane hands every live network to the dataplane manager.
func (c *Controller) SyncDataplane(ctx context.Context) error {
	var nets []v1.Network
	err := c.st.View(ctx, func(tx store.Tx) (err error) {
		nets, err = state.ListNetworks(tx)
		return err
	})
	if err != nil {
		return err
	}
	live := nets[:0]
	for _, n := range nets {
		if !n.Deleting {
			live = append(live, n)
		}
	}
	if err := c.dp.SetNetworks(live); err != nil {
		return err
	}
	if c.OnNetworks != nil {
		return c.OnNetworks(live)
	}
	return nil
}

// Wanted returns the bridges of the given networks, for pruning.
func Wanted(nets []v1.Network) map[string]bool {
	m := map[string]bool{}
	for _, n := range nets {
		if n.Driver == v1.DriverBridge && !n.Deleting {
			m[n.Bridge] = true
		}
	}
	return m
}

func fingerprint(n *v1.Network) string {
	b, _ := json.Marshal(struct {
		Bridge  string
		Subnets []v1.Subnet
		MTU     int
	}{n.Bridge, n.Subnets, n.MTU})
	return string(b)
}
