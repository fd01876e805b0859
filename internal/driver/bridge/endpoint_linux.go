package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureEndpoint makes the veth pair of ep exist: the host end ep.Spec.HostVeth
// up, with the network's MTU, a port of the network's bridge; the container
// end ep.Spec.Interface inside ep.NetNSPath, up, with the MTU, the MAC (when
// given), exactly the addresses, and one default route per gateway. An
// existing pair is adopted as it is when right and fixed in place otherwise;
// it is recreated only when its halves are not each other's peers.
func (d *Driver) EnsureEndpoint(ep driver.Endpoint) error {
	e, err := endpointOf(ep)
	if err != nil {
		return err
	}
	host, err := d.nl.LinkByName(e.hostVeth)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("endpoint %q: look up host veth: %w", e.hostVeth, err)
	}
	ch, herr := netns.NetlinkHandle(e.netns)
	if herr != nil {
		return fmt.Errorf("endpoint %q: %w", e.hostVeth, herr)
	}
	defer ch.Close()
	if host == nil {
		return d.createEndpoint(e, ch)
	}
	return d.adoptEndpoint(e, ch, host)
}

// createEndpoint creates the pair and configures the container end. ch is a
// netlink handle inside the container namespace.
func (d *Driver) createEndpoint(e endpointSpec, ch *netlink.Handle) error {
	nsfd, err := unix.Open(e.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("endpoint %q: open netns %q: %w", e.hostVeth, e.netns, err)
	}
	defer unix.Close(nsfd)
	v := vethSpec{host: e.hostVeth, peer: e.iface, mtu: e.mtu, peerMAC: e.mac, peerNSFd: nsfd}
	err = d.createPair(v, e.bridge)
	if errors.Is(err, unix.EEXIST) {
		// The host end was absent, so the container's name is taken, by an
		// interface that is not the host end's peer: knit owns the container
		// namespace, so it goes.
		if l, lerr := ch.LinkByName(e.iface); lerr == nil {
			d.log.Warn("deleting stale container interface", "hostVeth", e.hostVeth,
				"interface", e.iface, "netns", e.netns, "kind", l.Type())
			if derr := ch.LinkDel(l); derr != nil && !isNotFound(derr) {
				return fmt.Errorf("endpoint %q: delete stale %s %q in container: %w", e.hostVeth, l.Type(), e.iface, derr)
			}
			err = d.createPair(v, e.bridge)
		}
	}
	if err != nil {
		return fmt.Errorf("endpoint %q: create veth pair with %q in %q: %w", e.hostVeth, e.iface, e.netns, err)
	}
	c, err := ch.LinkByName(e.iface)
	if err != nil {
		return fmt.Errorf("endpoint %q: container interface %q: look up: %w", e.hostVeth, e.iface, err)
	}
	// The veth's peer index is the host end's: no lookup by name.
	if err := d.upHostEnd(e.hostVeth, c.Attrs().ParentIndex); err != nil {
		return fmt.Errorf("endpoint %q: host veth: %w", e.hostVeth, err)
	}
	if !e.hasIPv6() {
		// Before up, or the kernel makes a link-local address anyway.
		err = ch.LinkSetIP6AddrGenMode(c, in6AddrGenModeNone)
	}
	if err == nil {
		err = ch.LinkSetUp(c)
	}
	if err != nil {
		return fmt.Errorf("endpoint %q: container interface %q: bring up: %w", e.hostVeth, e.iface, err)
	}
	for _, p := range e.addrs {
		if err := addAddr(ch, c, p); err != nil {
			return fmt.Errorf("endpoint %q: container interface %q: %w", e.hostVeth, e.iface, err)
		}
	}
	for _, gw := range e.gateways {
		if err := replaceDefaultRoute(ch, c.Attrs().Index, gw.Unmap()); err != nil {
			return fmt.Errorf("endpoint %q: container interface %q: %w", e.hostVeth, e.iface, err)
		}
	}
	d.log.Debug("endpoint created", "hostVeth", e.hostVeth, "interface", e.iface, "netns", e.netns)
	return nil
}

// adoptEndpoint checks an existing host link against e. A compatible pair is
// fixed in place (nothing is written when nothing differs); anything else is
// deleted and created again.
func (d *Driver) adoptEndpoint(e endpointSpec, ch *netlink.Handle, host netlink.Link) error {
	c, err := ch.LinkByName(e.iface)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("endpoint %q: container interface %q: look up: %w", e.hostVeth, e.iface, err)
	}
	var reason string
	switch hv, ok := host.(*netlink.Veth); {
	case !ok:
		reason = fmt.Sprintf("host link is a %s, not a veth", host.Type())
	case c == nil:
		reason = fmt.Sprintf("host veth's peer is not %q in the container namespace", e.iface)
	case c.Type() != "veth":
		reason = fmt.Sprintf("container interface is a %s, not a veth", c.Type())
	case c.Attrs().Index != hv.ParentIndex || c.Attrs().ParentIndex != hv.Index:
		reason = "container interface and host veth are not peers"
	}
	if reason != "" {
		return d.recreateEndpoint(e, ch, host, c, reason)
	}

	hostChanges, err := d.fixHostEnd(e, host)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", e.hostVeth, err)
	}
	contChanges, err := fixContainerEnd(e, ch, c)
	if changes := append(hostChanges, contChanges...); len(changes) > 0 {
		d.log.Info("endpoint fixed", "hostVeth", e.hostVeth, "interface", e.iface, "changes", changes)
	} else {
		d.log.Debug("endpoint adopted unchanged", "hostVeth", e.hostVeth, "interface", e.iface)
	}
	if err != nil {
		return fmt.Errorf("endpoint %q: container interface %q: %w", e.hostVeth, e.iface, err)
	}
	return nil
}

// recreateEndpoint deletes both ends (c may be nil) and creates the pair anew.
// It refuses when the host link is not a veth named like knit's.
func (d *Driver) recreateEndpoint(e endpointSpec, ch *netlink.Handle, host, c netlink.Link, reason string) error {
	if _, ok := host.(*netlink.Veth); !ok || !isKnit(e.hostVeth) {
		// Only a veth of knit's is ever deleted here: a bridge or anything
		// else by that name is not an endpoint gone wrong.
		return fmt.Errorf("endpoint %q: a %s link of that name is in the way (%s): remove it or rename the endpoint", e.hostVeth, host.Type(), reason)
	}
	d.log.Warn("recreating endpoint", "hostVeth", e.hostVeth, "interface", e.iface, "netns", e.netns, "reason", reason)
	if err := d.nl.LinkDel(host); err != nil && !isNotFound(err) {
		return fmt.Errorf("endpoint %q: delete %s: %w", e.hostVeth, host.Type(), err)
	}
	if c != nil {
		if err := ch.LinkDel(c); err != nil && !isNotFound(err) {
			return fmt.Errorf("endpoint %q: delete container interface %q: %w", e.hostVeth, e.iface, err)
		}
	}
	return d.createEndpoint(e, ch)
}

// fixHostEnd puts the host veth on the bridge, at the MTU, without IPv6, up,
// in hairpin mode.
func (d *Driver) fixHostEnd(e endpointSpec, host netlink.Link) ([]string, error) {
	a := host.Attrs()
	master, cached, err := d.bridgeIndex(e.bridge)
	if err == nil && cached && a.MasterIndex != master {
		// Check that the cached index is still the bridge's before moving
		// the port to it.
		master, err = d.lookupBridge(e.bridge)
	}
	if err != nil {
		return nil, err
	}
	var changes []string
	if a.MTU != e.mtu {
		if err := d.nl.LinkSetMTU(host, e.mtu); err != nil {
			return changes, fmt.Errorf("host veth: set mtu %d: %w", e.mtu, err)
		}
		changes = append(changes, fmt.Sprintf("host mtu %d -> %d", a.MTU, e.mtu))
	}
	if a.MasterIndex != master {
		if err := d.nl.LinkSetMasterByIndex(host, master); err != nil {
			return changes, fmt.Errorf("host veth: set master %q: %w", e.bridge, err)
		}
		changes = append(changes, "host master -> "+e.bridge)
	}
	// Before up, so that a link brought up here gets no IPv6 state at all;
	// on a link that is up, turning IPv6 off leaves the link as it is.
	if changed, err := d.disableIPv6(e.hostVeth); err != nil {
		return changes, fmt.Errorf("host veth: disable ipv6: %w", err)
	} else if changed {
		changes = append(changes, "host ipv6 off")
	}
	if a.Flags&net.FlagUp == 0 {
		if err := d.nl.LinkSetUp(host); err != nil {
			return changes, fmt.Errorf("host veth: set up: %w", err)
		}
		changes = append(changes, "host up")
	}
	if on, err := d.hairpinOn(a.Index); err != nil || !on {
		if err := setHairpin(d.nl, a.Index); err != nil {
			return changes, fmt.Errorf("host veth: hairpin: %w", err)
		}
		changes = append(changes, "host hairpin on")
	}
	return changes, nil
}

// fixContainerEnd sets the container interface's MAC, MTU, up, addresses and
// default routes, each only when it differs.
func fixContainerEnd(e endpointSpec, ch *netlink.Handle, c netlink.Link) ([]string, error) {
	a := c.Attrs()
	var changes []string
	if e.mac != nil && !bytes.Equal(a.HardwareAddr, e.mac) {
		if err := ch.LinkSetHardwareAddr(c, e.mac); err != nil {
			return changes, fmt.Errorf("set mac %s: %w", e.mac, err)
		}
		changes = append(changes, fmt.Sprintf("mac %s -> %s", a.HardwareAddr, e.mac))
	}
	if a.MTU != e.mtu {
		if err := ch.LinkSetMTU(c, e.mtu); err != nil {
			return changes, fmt.Errorf("set mtu %d: %w", e.mtu, err)
		}
		changes = append(changes, fmt.Sprintf("mtu %d -> %d", a.MTU, e.mtu))
	}
	if a.Flags&net.FlagUp == 0 {
		if err := ch.LinkSetUp(c); err != nil {
			return changes, fmt.Errorf("set up: %w", err)
		}
		changes = append(changes, "up")
	}
	addrChanges, err := syncAddrs(ch, c, e.addrs)
	changes = append(changes, addrChanges...)
	if err != nil {
		return changes, err
	}
	routeChanges, err := syncDefaultRoutes(ch, a.Index, e.gateways)
	return append(changes, routeChanges...), err
}

// DeleteEndpoint deletes the host veth, which takes the container end with
// it. A missing one is no error; a link of that name that is not a veth is.
func (d *Driver) DeleteEndpoint(ep driver.Endpoint) error {
	if ep.Spec == nil || ep.Spec.HostVeth == "" {
		return fmt.Errorf("bridge driver: delete endpoint: no host veth name")
	}
	name := ep.Spec.HostVeth
	l, err := d.nl.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("endpoint %q: look up host veth: %w", name, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("endpoint %q: link is a %s, not a veth: not deleting it", name, l.Type())
	}
	if err := d.nl.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("endpoint %q: delete host veth: %w", name, err)
	}
	return nil
}
