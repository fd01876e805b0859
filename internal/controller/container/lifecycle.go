package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// start brings a created container up: namespace, endpoints, process. A
// process still alive from before a daemon restart is adopted instead.
func (c *Controller) start(ctx context.Context, ctr *v1.Container) error {
	nsPath, owner, err := c.netnsFor(ctx, ctr)
	var nets map[string]*v1.Network
	if err == nil {
		nets, err = c.networksOf(ctx, owner)
	}
	if err == nil && ownNetNS(ctr) {
		err = c.ensureNetNS(ctr.ID, nsPath)
	}
	if err == nil {
		err = c.ensureEndpoints(ctr, nets)
	}
	pid, alive := 0, false
	if ctr.Runtime != v1.RuntimeCNI {
		pid, alive = c.rt.Adopt(ctr.ID)
	}
	if err == nil && !alive && ctr.Runtime != v1.RuntimeCNI {
		pid, err = c.rt.Start(runner.Spec{
			ID: ctr.ID, Command: ctr.Command, Hostname: ctr.Hostname, NetNSPath: nsPath,
			Hosts: hostsFile(ctr, owner), Resolv: c.resolvConf(ctr, owner, nets),
		})
	}
	if err != nil {
		c.log.Warn("container start failed", "container", ctr.Name, "err", err)
		if terr := c.teardown(ctr); terr != nil {
			return errors.Join(err, terr)
		}
		return c.updateStatus(ctx, ctr, false, func(tx store.Tx, cur *v1.Container) error {
			cur.Status = v1.ContainerStatus{State: v1.StateExited, ExitCode: 127, Error: err.Error(),
				FinishedAt: time.Now().UTC(), ObservedGeneration: cur.Generation}
			return releaseAll(tx, cur)
		})
	}
	c.log.Info("container started", "container", ctr.Name, "pid", pid, "adopted", alive)
	return c.updateStatus(ctx, ctr, false, func(_ store.Tx, cur *v1.Container) error {
		cur.Status = v1.ContainerStatus{State: v1.StateRunning, Pid: pid, StartedAt: time.Now().UTC(),
			ObservedGeneration: ctr.Generation}
		return nil
	})
}

// finish records an exit: kernel objects go, addresses are released, the
// record stays as exited.
func (c *Controller) finish(ctx context.Context, ctr *v1.Container, code int) error {
	if err := c.teardown(ctr); err != nil {
		return err
	}
	err := c.updateStatus(ctx, ctr, false, func(tx store.Tx, cur *v1.Container) error {
		cur.Status.State, cur.Status.ExitCode, cur.Status.Pid = v1.StateExited, code, 0
		cur.Status.FinishedAt = time.Now().UTC()
		cur.Status.ObservedGeneration = cur.Generation
		return releaseAll(tx, cur)
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.exits, ctr.ID)
	delete(c.stopping, ctr.ID)
	c.mu.Unlock()
	c.log.Info("container exited", "container", ctr.Name, "code", code)
	return nil
}

// remove kills, tears down and deletes a container marked for deletion.
func (c *Controller) remove(ctx context.Context, ctr *v1.Container) error {
	own := ctr.Runtime != v1.RuntimeCNI // a CNI runtime's process is not knit's
	if own {
		if err := c.rt.Kill(ctr.ID); err != nil {
			return err
		}
	}
	if err := c.teardown(ctr); err != nil {
		return err
	}
	if own {
		if err := c.rt.Remove(ctr.ID); err != nil {
			return err
		}
	}
	_, err := c.st.Update(ctx, func(tx store.Tx) error {
		cur, err := state.GetContainer(tx, ctr.Name)
		if err != nil || cur == nil || cur.ID != ctr.ID {
			return err
		}
		if err := releaseAll(tx, cur); err != nil {
			return err
		}
		return tx.Delete(state.ContainerKey(ctr.Name))
	})
	if err != nil {
		return fmt.Errorf("container %q: delete record: %w", ctr.Name, err)
	}
	c.mu.Lock()
	delete(c.names, ctr.ID)
	delete(c.exits, ctr.ID)
	delete(c.stopping, ctr.ID)
	c.mu.Unlock()
	c.log.Info("container removed", "container", ctr.Name)
	return nil
}

// teardown removes the container's endpoints and namespace file; already gone
// is fine.
func (c *Controller) teardown(ctr *v1.Container) error {
	var errs []error
	c.opts.DNS.DeleteContainer(ctr.ID)
	if err := c.opts.Dataplane.SetPorts(ctr.ID, nil); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	applied := c.applied[ctr.ID]
	delete(c.applied, ctr.ID)
	c.mu.Unlock()
	for _, a := range applied {
		errs = append(errs, c.deleteEndpoint(a.hostVeth))
	}
	for _, ep := range ctr.Endpoints {
		if findApplied(applied, ep.HostVeth) < 0 {
			errs = append(errs, c.deleteEndpoint(ep.HostVeth))
		}
	}
	if ownNetNS(ctr) {
		if err := c.ns.Delete(c.NetNSPath(ctr.ID)); err != nil {
			errs = append(errs, err)
		} else {
			c.mu.Lock()
			delete(c.netns, ctr.ID)
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// releaseAll frees every address and host port of cur and forgets the
// addresses in the record (the port mappings stay, for inspect).
func releaseAll(tx store.Tx, cur *v1.Container) error {
	if err := portmap.Release(tx, cur.Name, cur.Ports); err != nil {
		return err
	}
	for i := range cur.Endpoints {
		if err := ipam.ReleaseEndpoint(tx, &cur.Endpoints[i]); err != nil {
			return err
		}
		cur.Endpoints[i].Addresses = nil
	}
	return nil
}

// ownNetNS reports whether the container has a namespace of its own that
// knit made (a CNI runtime's namespace is the runtime's).
func ownNetNS(ctr *v1.Container) bool {
	return ctr.Runtime != v1.RuntimeCNI && (ctr.NetworkMode == v1.DriverBridge || ctr.NetworkMode == v1.DriverNone)
}

// nsPathOf is the container's network namespace file.
func (c *Controller) nsPathOf(ctr *v1.Container) string {
	if ctr.NetNS != "" {
		return ctr.NetNS
	}
	return c.NetNSPath(ctr.ID)
}

// netnsFor is the namespace the process runs in — its own, the host's (""),
// or the one of the container it shares — and the container that owns it.
func (c *Controller) netnsFor(ctx context.Context, ctr *v1.Container) (string, *v1.Container, error) {
	other, ok := strings.CutPrefix(ctr.NetworkMode, "container:")
	switch {
	case ctr.Runtime == v1.RuntimeCNI:
		return ctr.NetNS, ctr, nil
	case ownNetNS(ctr):
		return c.NetNSPath(ctr.ID), ctr, nil
	case !ok:
		return "", ctr, nil // host
	}
	var o *v1.Container
	err := c.st.View(ctx, func(tx store.Tx) (err error) {
		o, err = state.GetContainer(tx, other)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	if o == nil || o.Status.State != v1.StateRunning {
		return "", nil, fmt.Errorf("cannot join the network namespace of %q: it is not running", other)
	}
	return c.netnsFor(ctx, o)
}

func (c *Controller) ensureNetNS(id, path string) error {
	err := c.ns.Create(path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	c.mu.Lock()
	c.netns[id] = true
	c.mu.Unlock()
	return nil
}

// adoptNetNS records the namespace file of a running container (after a
// daemon restart) so pruning keeps it.
func (c *Controller) adoptNetNS(ctr *v1.Container) error {
	if !ownNetNS(ctr) {
		return nil
	}
	c.mu.Lock()
	known := c.netns[ctr.ID]
	c.mu.Unlock()
	if known {
		return nil
	}
	ok, err := c.ns.Mounted(c.NetNSPath(ctr.ID))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("network namespace file %s is gone while the process runs; remove the container (knit rm -f %s) and run it again", c.NetNSPath(ctr.ID), ctr.Name)
	}
	c.mu.Lock()
	c.netns[ctr.ID] = true
	c.mu.Unlock()
	return nil
}

// PruneNetNS removes the namespace files in NetNSDir that no container
// wants (containers that are gone, or stopped while knitd was down).
func (c *Controller) PruneNetNS() error {
	files, err := netns.List(c.opts.NetNSDir)
	if err != nil {
		return err
	}
	live := c.LiveNetNS()
	var errs []error
	for _, f := range files {
		if !live[f] {
			c.log.Info("removing stale network namespace", "netns", f)
			errs = append(errs, c.ns.Delete(c.NetNSPath(f)))
		}
	}
	return errors.Join(errs...)
}

// LiveNetNS reports the container IDs whose namespace files are wanted, for
// pruning.
func (c *Controller) LiveNetNS() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]bool, len(c.netns))
	for id := range c.netns {
		m[id] = true
	}
	return m
}
