// Package policy is the NetworkPolicy controller: whenever a policy, a
// namespace or a container changes, it compiles every policy against every
// container (package policy) and hands the result to the nftables data
// plane, which enforces it with sets and maps. It keeps the compiled state
// so that `knit policy trace` answers from exactly what the kernel enforces,
// and it keeps the recent drops the kernel reports.
package policy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/policy"
	"github.com/knit-net/knit/internal/reconcile"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Kernel is what the controller reads back from the data plane: exact drop
// counts per policy group, and a stream of (rate-limited) dropped packets.
type Kernel interface {
	PolicyDropCounts() (map[uint32]uint64, error)
	ReadPolicyDrops(fn func(netpol.Drop)) (io.Closer, error)
}

// Dataplane enforces the compiled policy: *dataplane.Manager.
type Dataplane interface {
	SetPolicy(*policy.Compiled) error
}

var (
	_ Dataplane = (*dataplane.Manager)(nil)
	_ Kernel    = (*dataplane.Manager)(nil)
)

// Controller runs the policy control loop.
type Controller struct {
	*reconcile.PassLoop
	st     store.Store
	dp     Dataplane
	kernel Kernel
	ctrs   *state.ContainerLister
	log    *slog.Logger
	// compiler reuses the work of the last pass for what did not change;
	// passes run one at a time.
	compiler policy.Compiler

	mu       sync.Mutex
	compiled *policy.Compiled
	names    map[netip.Addr]string // address → "namespace/container"
	drops    dropLog
}

// New makes a controller; Run starts it. ctrs lists the containers each
// pass (shared with the service controller; nil: a lister of its own).
func New(st store.Store, dp Dataplane, kernel Kernel, ctrs *state.ContainerLister, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	if ctrs == nil {
		ctrs = state.NewContainerLister()
	}
	c := &Controller{st: st, dp: dp, kernel: kernel, ctrs: ctrs, log: log, compiled: policy.Compile(policy.Input{}), drops: newDropLog(256)}
	c.PassLoop = reconcile.NewPassLoop("policies", st, []string{state.PoliciesPrefix, state.NamespacesPrefix, state.ContainersPrefix}, time.Minute, log, c.pass)
	return c
}

// Run runs the loop and records dropped packets until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if c.kernel != nil {
		r, err := c.kernel.ReadPolicyDrops(c.recordDrop)
		if err != nil {
			c.log.Warn("policy drops will not be listed: cannot read the kernel's drop log", "err", err)
		} else {
			defer r.Close()
		}
	}
	c.PassLoop.Run(ctx)
}

// recordDrop keeps a dropped packet with the names of its ends and the
// policies that isolate the side that dropped it.
func (c *Controller) recordDrop(d netpol.Drop) {
	c.mu.Lock()
	comp, names := c.compiled, c.names
	c.mu.Unlock()
	hostPort := func(a netip.Addr, port uint16) string {
		if port == 0 {
			return a.String()
		}
		return netip.AddrPortFrom(a, port).String()
	}
	c.drops.add(v1.PolicyDrop{
		Time: d.Time, Direction: d.Direction, Protocol: policy.ProtoName(d.Proto),
		Src: hostPort(d.Src, d.SrcPort), Dst: hostPort(d.Dst, d.DstPort),
		SrcName: names[d.Src], DstName: names[d.Dst], Policies: comp.GroupPolicies[d.Group],
	})
}

func (c *Controller) pass(ctx context.Context) error {
	var in policy.Input
	names := map[netip.Addr]string{}
	if err := c.st.View(ctx, func(tx store.Tx) (err error) {
		if in.Policies, err = state.ListPolicies(tx, ""); err != nil {
			return err
		}
		if in.Namespaces, err = state.ListNamespaces(tx); err != nil {
			return err
		}
		ctrs, err := c.ctrs.List(tx)
		if err != nil {
			return err
		}
		in.Pods = pods(ctrs, names)
		return nil
	}); err != nil {
		return err
	}
	comp := c.compiler.Compile(in)
	if err := c.dp.SetPolicy(comp); err != nil {
		return fmt.Errorf("program network policy: %w", err)
	}
	c.mu.Lock()
	c.compiled, c.names = comp, names
	c.mu.Unlock()
	return nil
}

// pods turns containers into the compiler's pods: every container with an
// address of its own, in its namespace, with its labels and named ports. A
// container sharing another's network namespace adds its labels' worth of
// nothing: the namespace's address belongs to its owner.
func pods(ctrs []v1.Container, names map[netip.Addr]string) []policy.Pod {
	out := make([]policy.Pod, 0, len(ctrs))
	for _, c := range ctrs {
		if c.Deleting || len(c.Endpoints) == 0 {
			continue
		}
		ns := c.Namespace
		if ns == "" {
			ns = v1.DefaultNamespace
		}
		p := policy.Pod{Name: c.Name, Namespace: ns, Labels: c.Labels, Ports: c.ContainerPorts}
		for _, ep := range c.Endpoints {
			for _, a := range ep.Addresses {
				p.Addrs = append(p.Addrs, a.Addr())
				names[a.Addr()] = ns + "/" + c.Name
			}
		}
		out = append(out, p)
	}
	return out
}

// Trace answers knit policy trace from the compiled state in force.
func (c *Controller) Trace(ctx context.Context, q v1.PolicyTrace) (v1.PolicyVerdict, error) {
	proto, ok := policy.ParseProto(q.Protocol)
	if !ok {
		return v1.PolicyVerdict{}, v1.Invalidf("--port %d/%s: unknown protocol; use tcp, udp or sctp", q.Port, q.Protocol)
	}
	if q.Port == 0 {
		return v1.PolicyVerdict{}, v1.Invalidf("--port: give PORT/PROTOCOL, e.g. 80/tcp")
	}
	src, err := c.resolve(ctx, "--from", q.From)
	if err != nil {
		return v1.PolicyVerdict{}, err
	}
	dst, err := c.resolve(ctx, "--to", q.To)
	if err != nil {
		return v1.PolicyVerdict{}, err
	}
	c.mu.Lock()
	comp := c.compiled
	c.mu.Unlock()
	return comp.Trace(src, dst, proto, q.Port), nil
}

// resolve turns a container name ("web" or "ns/web") or an address into the
// address traced (a container's first IPv4 address, else its first).
func (c *Controller) resolve(ctx context.Context, flag, s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	name := s
	if _, after, ok := strings.Cut(s, "/"); ok {
		name = after
	}
	var ctr *v1.Container
	if err := c.st.View(ctx, func(tx store.Tx) (err error) {
		ctr, err = state.GetContainer(tx, name)
		return err
	}); err != nil {
		return netip.Addr{}, err
	}
	if ctr == nil {
		return netip.Addr{}, v1.NotFoundf("%s %s: no container or address of that name; give a container name or an IP address", flag, s)
	}
	var first netip.Addr
	for _, ep := range ctr.Endpoints {
		for _, a := range ep.Addresses {
			if a.Addr().Is4() {
				return a.Addr(), nil
			}
			if !first.IsValid() {
				first = a.Addr()
			}
		}
	}
	if !first.IsValid() {
		return netip.Addr{}, v1.Invalidf("%s %s: the container has no address of its own (host, none or shared networking); policies do not apply to it", flag, s)
	}
	return first, nil
}

// Drops returns the drops counted per policy (the kernel's exact counts
// per group, charged to each policy isolating the group) and the most
// recent drops.
func (c *Controller) Drops(limit int) v1.PolicyDrops {
	out := c.drops.snapshot(limit)
	if c.kernel == nil {
		return out
	}
	counts, err := c.kernel.PolicyDropCounts()
	if err != nil {
		c.log.Warn("read policy drop counters", "err", err)
		return out
	}
	c.mu.Lock()
	comp := c.compiled
	c.mu.Unlock()
	for g, n := range counts {
		for _, p := range comp.GroupPolicies[g] {
			out.Counts[p] += n
		}
	}
	return out
}

// dropLog keeps the last drops in a ring.
type dropLog struct {
	mu   sync.Mutex
	ring []v1.PolicyDrop
	next int
	full bool
}

func newDropLog(n int) dropLog { return dropLog{ring: make([]v1.PolicyDrop, n)} }

func (l *dropLog) add(d v1.PolicyDrop) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % len(l.ring)
	l.full = l.full || l.next == 0
}

func (l *dropLog) snapshot(limit int) v1.PolicyDrops {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := v1.PolicyDrops{Counts: map[string]uint64{}, Recent: []v1.PolicyDrop{}}
	n := l.next
	if l.full {
		n = len(l.ring)
	}
	for i := 0; i < n && len(out.Recent) < limit; i++ {
		j := (l.next - 1 - i + len(l.ring)) % len(l.ring)
		out.Recent = append(out.Recent, l.ring[j])
	}
	return out
}
