// Package container is the container reconciler. For each container record it
// makes the kernel and the process table match: a new container gets its
// network namespace, one veth per endpoint and its process; a running one
// gets endpoints added or removed as the record changes; one whose process
// exited is torn down and its addresses released (the record stays, exited);
// one marked for deletion is killed, torn down and its record deleted.
//
// After a daemon restart the same Sync adopts what is already right: a live
// process is found again through the runtime's pid file and its endpoints
// are ensured, which touches nothing that already matches.
package container

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/controller/network"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Runtime runs containers' processes: *runner.Runtime.
type Runtime interface {
	// Adopt finds a container's process again: its pid and whether it
	// is alive.
	Adopt(id string) (int, bool)
	Start(spec runner.Spec) (int, error)
	Stop(id string, grace time.Duration) error
	Kill(id string) error
	Remove(id string) error
}

// Networks puts a network's host side in place before an endpoint joins
// it: *network.Controller.
type Networks interface {
	Ensure(n *v1.Network) error
}

// Dataplane receives each container's published ports: *dataplane.Manager.
type Dataplane interface {
	SetPorts(id string, ports []ports.Port) error
}

// Namespaces makes and removes network namespace files; nil is package
// netns (tests give a fake).
type Namespaces interface {
	Create(path string) error
	Delete(path string) error
	Mounted(path string) (bool, error)
}

var (
	_ Runtime   = (*runner.Runtime)(nil)
	_ Networks  = (*network.Controller)(nil)
	_ Dataplane = (*dataplane.Manager)(nil)
)

// kernelNamespaces is package netns.
type kernelNamespaces struct{}

func (kernelNamespaces) Create(path string) error          { return netns.Create(path) }
func (kernelNamespaces) Delete(path string) error          { return netns.Delete(path) }
func (kernelNamespaces) Mounted(path string) (bool, error) { return netns.Mounted(path) }

// Options configure a Controller.
type Options struct {
	Store    store.Store
	Runtime  Runtime
	Networks Networks
	// Dataplane receives the container's published ports.
	Dataplane Dataplane
	// Namespaces defaults to package netns.
	Namespaces Namespaces
	// DNS receives the container's names.
	DNS     Names
	Drivers map[string]driver.Driver
	// NetNSDir holds the containers' network namespace files.
	NetNSDir string
	// HostResolvConf is read for the containers' resolv.conf.
	HostResolvConf string
	// ClusterDomain ("cluster.local") puts Kubernetes' search domains in
	// the resolv.conf of containers that use knit's resolver.
	ClusterDomain string
	Logger        *slog.Logger
}

// Controller reconciles containers.
type Controller struct {
	opts Options
	st   store.Store
	rt   Runtime
	ns   Namespaces
	log  *slog.Logger
	// Enqueue is set by the daemon to its loop's Enqueue, so process exits
	// reported by the runtime reach Sync.
	Enqueue func(key string)

	mu       sync.Mutex
	names    map[string]string      // container ID → name
	exits    map[string]int         // container ID → exit code not yet recorded
	applied  map[string][]appliedEP // container ID → its endpoints in place
	stopping map[string]bool
	netns    map[string]bool // container IDs whose namespace file is in place
}

// appliedEP is what the controller remembers of an endpoint it put in
// place: enough to skip a sync that would change nothing, and to delete it.
type appliedEP struct {
	hostVeth    string
	fingerprint [32]byte
	at          time.Time // when the kernel was last made to match
}

// New makes a controller.
func New(opts Options) *Controller {
	ns := opts.Namespaces
	if ns == nil {
		ns = kernelNamespaces{}
	}
	return &Controller{
		opts: opts, st: opts.Store, rt: opts.Runtime, ns: ns, log: opts.Logger,
		names: map[string]string{}, exits: map[string]int{},
		applied: map[string][]appliedEP{}, stopping: map[string]bool{}, netns: map[string]bool{},
	}
}

// OnExit is the runtime's exit callback.
func (c *Controller) OnExit(id string, code int) {
	c.mu.Lock()
	c.exits[id] = code
	name, ok := c.names[id]
	c.mu.Unlock()
	if ok && c.Enqueue != nil {
		c.Enqueue(state.ContainerKey(name))
	}
}

// NetNSPath is the network namespace file of a container ID.
func (c *Controller) NetNSPath(id string) string { return filepath.Join(c.opts.NetNSDir, id) }

// Sync reconciles one container key.
func (c *Controller) Sync(ctx context.Context, key string, value []byte) error {
	if value == nil {
		return nil // records are deleted only by this controller, after teardown
	}
	ctr, err := state.DecodeContainer(value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	c.mu.Lock()
	c.names[ctr.ID] = ctr.Name
	code, exited := c.exits[ctr.ID]
	c.mu.Unlock()

	switch {
	case ctr.Deleting:
		return c.remove(ctx, ctr)
	case ctr.Status.State == v1.StateCreated:
		return c.start(ctx, ctr)
	case ctr.Status.State == v1.StateRunning && exited:
		return c.finish(ctx, ctr, code)
	case ctr.Status.State == v1.StateRunning:
		if !c.alive(ctr) {
			return c.finish(ctx, ctr, -1)
		}
		if ctr.Stopped {
			c.stop(ctr)
			return nil
		}
		if err := c.adoptNetNS(ctr); err != nil {
			return c.observe(ctx, ctr, err)
		}
		nets, err := c.networksOf(ctx, ctr)
		if err == nil {
			err = c.ensureEndpoints(ctr, nets)
		}
		return c.observe(ctx, ctr, err)
	default: // exited
		return c.teardown(ctr)
	}
}

// alive reports whether the container's process (or, for a CNI attachment,
// its runtime's namespace) still exists.
func (c *Controller) alive(ctr *v1.Container) bool {
	if ctr.Runtime == v1.RuntimeCNI {
		_, err := os.Stat(ctr.NetNS)
		return err == nil
	}
	_, alive := c.rt.Adopt(ctr.ID)
	return alive
}

// stop sends SIGTERM (SIGKILL after the grace period) once, off the worker:
// the exit comes back through OnExit.
func (c *Controller) stop(ctr *v1.Container) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping[ctr.ID] {
		return
	}
	c.stopping[ctr.ID] = true
	go func() {
		if err := c.rt.Stop(ctr.ID, ctr.StopGrace); err != nil {
			c.log.Warn("stop failed", "container", ctr.Name, "err", err)
		}
	}()
}

// observe records that the kernel matches ctr's generation (or why not).
func (c *Controller) observe(ctx context.Context, ctr *v1.Container, syncErr error) error {
	msg := ""
	if syncErr != nil {
		msg = syncErr.Error()
	}
	if ctr.Status.ObservedGeneration >= ctr.Generation && ctr.Status.Error == msg {
		return syncErr
	}
	err := c.updateStatus(ctx, ctr, true, func(_ store.Tx, cur *v1.Container) error {
		cur.Status.ObservedGeneration = ctr.Generation
		cur.Status.Error = msg
		return nil
	})
	if syncErr != nil {
		return syncErr
	}
	return err
}

// updateStatus applies fn to the stored container if it is still the same
// container (and, with sameGen, at the same generation: a newer spec gets its
// own sync).
func (c *Controller) updateStatus(ctx context.Context, ctr *v1.Container, sameGen bool, fn func(tx store.Tx, cur *v1.Container) error) error {
	_, err := c.st.Update(ctx, func(tx store.Tx) error {
		cur, err := state.GetContainer(tx, ctr.Name)
		if err != nil || cur == nil || cur.ID != ctr.ID || (sameGen && cur.Generation != ctr.Generation) {
			return err
		}
		if err := fn(tx, cur); err != nil {
			return err
		}
		return state.PutContainer(tx, cur)
	})
	if err != nil {
		return fmt.Errorf("container %q: write status: %w", ctr.Name, err)
	}
	return nil
}
