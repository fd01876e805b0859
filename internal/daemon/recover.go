package daemon

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/controller/network"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/kname"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// recover brings the kernel in line with the store before the API opens:
// predefined networks exist, networks and containers are synced (adopting
// what matches), and knit objects that nothing wants are removed.
func (d *daemon) recover(ctx context.Context) error {
	if err := d.ensurePredefined(ctx); err != nil {
		return err
	}
	rev, kvs, err := d.netLoop.Initial(ctx)
	if err != nil {
		return fmt.Errorf("sync networks: %w", err)
	}
	d.revs[0] = rev
	if err := d.nets.SyncDataplane(ctx); err != nil {
		return fmt.Errorf("sync nftables: %w", err)
	}
	rev, ckvs, err := d.ctrLoop.Initial(ctx)
	if err != nil {
		return fmt.Errorf("sync containers: %w", err)
	}
	d.revs[1] = rev
	// Every network and running container is known now, and with them
	// every service's endpoints: program the table.
	if err := d.svcs.Sync(ctx); err != nil {
		return fmt.Errorf("sync services: %w", err)
	}
	if err := d.pols.Sync(ctx); err != nil {
		return fmt.Errorf("sync network policies: %w", err)
	}
	if err := d.dp.Release(); err != nil {
		return fmt.Errorf("sync nftables: %w", err)
	}
	var nets []v1.Network
	for _, kv := range kvs {
		if n, err := state.DecodeNetwork(kv.Value); err == nil {
			nets = append(nets, *n)
		}
	}
	ids := map[string]bool{}
	for _, kv := range ckvs {
		if c, err := state.DecodeContainer(kv.Value); err == nil {
			ids[c.ID] = true
		}
	}
	return d.prune(network.Wanted(nets), ids)
}

// ensurePredefined creates the bridge, host and none networks on first start.
func (d *daemon) ensurePredefined(ctx context.Context) error {
	reqs := []v1.NetworkCreate{
		{Name: v1.DefaultBridgeNetwork, Driver: v1.DriverBridge, Bridge: kname.DefaultBridge},
		{Name: v1.HostNetwork, Driver: v1.DriverHost},
		{Name: v1.NoneNetwork, Driver: v1.DriverNone},
	}
	for _, req := range reqs {
		var exists bool
		err := d.st.View(ctx, func(tx store.Tx) error {
			n, err := state.GetNetwork(tx, req.Name)
			exists = n != nil
			return err
		})
		if err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := d.api.CreateNetwork(ctx, req); err != nil {
			return fmt.Errorf("create predefined network %q: %w", req.Name, err)
		}
	}
	return nil
}

// prune removes knit's bridges and veths that no network or container wants,
// namespace files of containers that are gone or not running, and runtime
// state of containers no longer in the store.
func (d *daemon) prune(bridges, ids map[string]bool) error {
	return errors.Join(
		dataplane.PruneLinks(d.hostNL, bridges, d.ctrs.Applied(), d.cfg.Logger),
		d.ctrs.PruneNetNS(),
		d.rt.Prune(ids))
}
