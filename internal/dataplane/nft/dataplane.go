// Package nft renders knit's desired network state into its own nftables
// table, "table inet knit", one netlink transaction per Sync.
//
// Design notes (the full picture, with hooks and priorities, is in
// docs/datapath.md):
//
//   - One table, both families, owned entirely by this package. Nothing else
//     writes it, so Sync can be declarative: whatever the rendered Config does
//     not contain is removed. Later features (published ports, services,
//     policy) extend Config and add their chains here; they do not open a
//     second writer.
//   - Kube-proxy's shape: chains are static and rules never grow with the
//     number of networks, published ports or services; what changes is data
//     in sets and maps (bridge names, subnet ranges, port mappings, VIPs and
//     backends). 1 network or 1,000, no port or 10,000, no service or
//     10,000, give the same rules.
//   - Sync never deletes the table. A full sync adds the table (a no-op when
//     present), flushes and refills sets, flushes chains and appends their
//     rules, all in one transaction: a packet sees the old ruleset or the
//     new one, the table's handle survives, and conntrack entries
//     (including NAT bindings) are untouched, so restarting knitd does not
//     interrupt traffic. Two exceptions: the affinity sets the packet path
//     fills are kept (clients keep their backends through a restart), and
//     count chains whose rules the table already has are left alone (adding
//     a rule that looks up a map makes the kernel walk the whole map).
//   - Kube-proxy's partial sync: the Dataplane remembers what it applied
//     and, while the rendered chains, rules and set definitions stay the
//     same, sends only element additions and deletions (one more port at
//     1,000: under 1 ms instead of a full sync's 4 ms). The first sync, any
//     sync after an error and one an hour are full.
//   - Services (ClusterIP, load balancer addresses, node ports) take three
//     lookups, whatever their number: "daddr . l4proto . dport" in a verdict
//     map goes to a chain shared by every service port with the same number
//     of backends K, whose one rule DNATs through a global map keyed
//     "vip . l4proto . port . numgen random mod K". A chain per service and
//     per endpoint (kube-proxy's nftables mode) measured over 100× slower to
//     install and over 50× slower to change at 10,000 services
//     (docs/benchmarks.md). Count chains are rendered in blocks of 64
//     so that an endpoint more or less changes elements, not the shape. What
//     no service port took on a VIP or in the service ranges is refused in
//     the filter hooks (TCP reset, port unreachable). Session affinity keeps
//     "client . vip . l4proto . port . slot" in a set the packet path fills
//     (a slot, not a backend: it can never point at a removed one); syncs
//     move clients to their backend's new slot. Service ports are kept from
//     one sync to the next (svcState), so a sync renders and sends only the
//     ones that changed.
//   - Network policy (Config.Policy, see policy.go) takes, per new
//     connection and direction, a map lookup of the isolated pod's address
//     and a pipapo lookup of "key . peer . l4proto . port"; a policy change
//     adds elements under fresh keys rather than deleting any (deleting
//     from a pipapo set costs the kernel a walk of the whole set).
//   - Published ports are DNAT maps keyed by "daddr . l4proto . dport"
//     (bound to one host address) and "l4proto . dport" (every address),
//     looked up for destinations that are local addresses of the host, in
//     prerouting and in output. Hairpin, 127.0.0.1 and the CVE-2020-8558
//     guard each take one rule; docs/datapath.md explains them.
//   - Base chains only jump to regular chains that hold the logic (forward →
//     svc_check and isolate, input and filter_output → svc_check,
//     postrouting → hairpin and masq, prerouting and output → services and
//     ports, raw_prerouting → guard). A "return" in a regular chain ends
//     only that chain, so later chains can be jumped to after it; an
//     "accept" in the base chain would have ended all of knit's filtering.
//   - nftables cannot compare iifname with oifname. "Same bridge" is a
//     lookup of "iifname . oifname" in a hash set holding "br" . "br" for
//     every bridge.
//   - Masquerade skips everything leaving through any knit bridge, then
//     masquerades sources in the non-internal subnets. Docker's rule is
//     "! -o own-bridge"; the difference (traffic from network X into bridge
//     Y) is traffic the forward chain already drops. The exact form needs an
//     "ip saddr . oifname" set with intervals (a pipapo set), which measured
//     36 ms per sync at 100 networks against 2 ms for this one.
//   - Elements go out in batches of at most 512 per message (the library
//     silently truncates larger ones) over a socket with 16 MiB buffers,
//     after the rules: the kernel checks a map's elements against every
//     chain that looks it up, and checking each element as it comes is
//     cheaper than walking the map once per chain.
//
// The product never executes nft, iptables or ip; tests use nft only to look.
package nft

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer is the netlink socket's send and receive buffer size: one
// transaction carries the whole ruleset, and the kernel's acks for every
// message of it must fit too.
const socketBuffer = 16 << 20

// Options configure a Dataplane.
type Options struct {
	// NetNSPath is the network namespace file to program, e.g.
	// /run/netns/NAME. Empty means the namespace of the calling thread at New.
	NetNSPath string
	// Logger receives a debug line per sync and an info line for every
	// chain or set a sync removes or recreates; nil discards.
	Logger *slog.Logger
}

// Dataplane owns table inet knit in one network namespace. Its methods are
// safe for concurrent use; they serialise on one netlink socket.
type Dataplane struct {
	mu     sync.Mutex
	ns     *os.File // keeps the namespace reachable for redials
	conn   *nftables.Conn
	log    *slog.Logger
	closed bool
	// applied is what the last sync wrote; nil forces a full sync.
	applied *applied
}

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("nftables dataplane is closed")

// New opens a netlink socket to nftables in the namespace. It changes
// nothing in the kernel.
func New(opts Options) (*Dataplane, error) {
	path := opts.NetNSPath
	if path == "" {
		path = "/proc/thread-self/ns/net"
	}
	ns, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dataplane{ns: ns, log: log}
	if d.conn, err = d.dial(); err != nil {
		ns.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dataplane) dial() (*nftables.Conn, error) {
	c, err := nftables.New(
		nftables.WithNetNSFd(int(d.ns.Fd())),
		nftables.AsLasting(),
		nftables.WithSockOptions(bigBuffers),
	)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket in %s: %w", d.ns.Name(), err)
	}
	return c, nil
}

// bigBuffers raises both socket buffers past the sysctl limits (root has
// CAP_NET_ADMIN), falling back to the ordinary, capped setsockopt.
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	})
	if err == nil && serr == nil {
		return nil
	}
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		return fmt.Errorf("netlink socket send buffer: %w", err)
	}
	if err := c.SetReadBuffer(socketBuffer); err != nil {
		return fmt.Errorf("netlink socket receive buffer: %w", err)
	}
	return nil
}

// Sync makes table inet knit exactly what cfg describes, in one netlink
// transaction. cfg is always the whole desired state.
//
// The first sync, the first after an error and one an hour are full: the
// table is read back and created if missing (never recreated, so its handle
// and unrelated state survive), sets are refilled, chains flushed and their
// rules added again, and anything in the table that cfg no longer needs is
// removed. Between them, when only set and map elements change, Sync sends
// just the elements added and deleted since the last sync, from the state it
// keeps in memory; a failed partial sync is followed at once by a full one.
//
// Packets see either the old or the new ruleset, never a mix, and conntrack
// entries are untouched (see FlushUDP and FlushServiceUDP for what UDP
// flows need). Calling it twice with the same cfg leaves the same ruleset.
// An invalid cfg changes nothing; the error names the first offending
// network, port or service port.
//
// Service ports are compared by name with those of the last sync; only the
// changed ones are validated and rendered, so a sync of 10,000 service
// ports of which one changed costs a few milliseconds.
func (d *Dataplane) Sync(cfg Config) error {
	norm, err := cfg.normalize()
	if err != nil {
		return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	var prevSvc *svcState
	var prevRS *ruleset
	if a := d.applied; a != nil {
		prevSvc, prevRS = a.svc, a.rs
	}
	plan, err := planServices(norm, prevSvc)
	if err != nil {
		return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
	}
	conn, err := d.connLocked()
	if err != nil {
		return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
	}
	delta := plan.apply()
	rs := renderTable(norm, plan.st, prevRS)
	if a := d.applied; a != nil && start.Sub(a.fullAt) < fullResyncInterval && a.sameShape(rs) && !a.rs.pol.rebuild() {
		next, sent, err := syncElems(conn, a, rs, plan.st, delta)
		if err == nil {
			d.applied = next
			d.log.Debug("synced nftables table elements", "table", "inet "+TableName,
				"networks", len(norm.Networks), "ports", len(norm.Ports), "services", len(norm.Services),
				"changes", sent, "duration", time.Since(start))
			return nil
		}
		d.log.Info("partial nftables sync failed, doing a full one", "table", "inet "+TableName, "error", err)
		d.resetLocked()
		if conn, err = d.connLocked(); err != nil {
			return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
		}
	}
	d.applied = nil
	rs.fillServices(plan.st)
	rs.fillPolicy()
	if err := syncTable(conn, rs, plan.st, d.log); err != nil {
		d.resetLocked()
		return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
	}
	elems := rs.elemCount()
	rs.dropServiceElems() // the svcState has them; partial syncs diff against it
	rs.dropPolicyElems()  // so has rs.pol
	d.applied = newApplied(rs, plan.st, start)
	d.log.Debug("synced nftables table", "table", "inet "+TableName,
		"networks", len(norm.Networks), "ports", len(norm.Ports), "services", len(norm.Services),
		"elements", elems, "rules", len(rs.rules), "duration", time.Since(start))
	return nil
}

// Delete removes table inet knit and everything in it, in one transaction.
// It is for explicit uninstall only: a stopping daemon leaves the table in
// place so that containers keep working. No table is nil. Other tables are
// never touched.
func (d *Dataplane) Delete() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	conn, err := d.connLocked()
	if err != nil {
		return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
	}
	d.applied = nil
	conn.DelTable(knitTable())
	err = conn.Flush()
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	d.resetLocked()
	return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
}

// Close releases the netlink socket and the namespace. The table stays.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.applied = nil
	var err error
	if d.conn != nil {
		err = d.conn.CloseLasting()
		d.conn = nil
	}
	return errors.Join(err, d.ns.Close())
}

// connLocked returns the socket, dialling again after a failure or
// ErrClosed after Close.
func (d *Dataplane) connLocked() (*nftables.Conn, error) {
	if d.closed {
		return nil, ErrClosed
	}
	if d.conn == nil {
		c, err := d.dial()
		if err != nil {
			return nil, err
		}
		d.conn = c
	}
	return d.conn, nil
}

// resetLocked drops the connection after a failure: the library keeps
// queued messages and serialisation errors in the Conn, and a half-queued
// transaction must never be sent by the next call. It also forgets the
// applied state, so that the next sync is a full one.
func (d *Dataplane) resetLocked() {
	d.applied = nil
	if d.conn != nil {
		_ = d.conn.CloseLasting()
		d.conn = nil
	}
}
