package bridge

import (
	"bytes"
	"fmt"
	"net"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/vishvananda/netlink"
)

// EnsureNetwork makes the bridge n.Bridge exist in the host namespace as a
// bridge with MTU n.MTU (0 means 1500), the network's fixed MAC, up, and
// exactly the gateway addresses of n.Subnets (IPv6 link-local addresses
// aside). It turns forwarding on in the host for the families n uses, and
// for IPv6 turns the bridge's duplicate address detection off. A link of
// another kind by that name is recreated if it is knit's ("kn" prefix), and
// is an error otherwise.
func (d *Driver) EnsureNetwork(n *v1.Network) error {
	b, err := bridgeOf(n)
	if err != nil {
		return err
	}
	link, err := d.ensureBridgeLink(b)
	if err != nil {
		d.forgetBridge(b.name)
		return err
	}
	d.rememberBridge(b.name, link.Attrs().Index) // it may have been recreated
	if err := d.ensureNetworkSysctls(b); err != nil {
		return err
	}
	changes, err := syncAddrs(d.nl, link, b.gateways)
	if len(changes) > 0 {
		d.log.Info("bridge addresses fixed", "bridge", b.name, "changes", changes)
	}
	if err != nil {
		return fmt.Errorf("bridge %q: %w", b.name, err)
	}
	return nil
}

// ensureBridgeLink returns the bridge link, created or fixed as needed.
func (d *Driver) ensureBridgeLink(b bridgeSpec) (netlink.Link, error) {
	l, err := d.nl.LinkByName(b.name)
	switch {
	case isNotFound(err):
		return d.createBridge(b)
	case err != nil:
		return nil, fmt.Errorf("bridge %q: look up: %w", b.name, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		if !isKnit(b.name) {
			return nil, fmt.Errorf("bridge %q: a %s link of that name exists and is not knit's: remove it or choose another bridge name", b.name, l.Type())
		}
		d.log.Warn("recreating bridge", "bridge", b.name, "reason", fmt.Sprintf("link is a %s, not a bridge", l.Type()))
		if err := d.nl.LinkDel(l); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("bridge %q: delete %s link in the way: %w", b.name, l.Type(), err)
		}
		return d.createBridge(b)
	}

	a := l.Attrs()
	var changes []string
	if a.MTU != b.mtu {
		if err := d.nl.LinkSetMTU(l, b.mtu); err != nil {
			return nil, fmt.Errorf("bridge %q: set mtu %d: %w", b.name, b.mtu, err)
		}
		changes = append(changes, fmt.Sprintf("mtu %d -> %d", a.MTU, b.mtu))
	}
	if !bytes.Equal(a.HardwareAddr, b.mac) {
		if err := d.nl.LinkSetHardwareAddr(l, b.mac); err != nil {
			return nil, fmt.Errorf("bridge %q: set mac %s: %w", b.name, b.mac, err)
		}
		changes = append(changes, fmt.Sprintf("mac %s -> %s", a.HardwareAddr, b.mac))
	}
	if a.Flags&net.FlagUp == 0 {
		if err := d.nl.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("bridge %q: set up: %w", b.name, err)
		}
		changes = append(changes, "up")
	}
	if len(changes) > 0 {
		d.log.Info("bridge fixed", "bridge", b.name, "changes", changes)
	}
	return l, nil
}

// createBridge creates the bridge up, with its MTU and MAC, in one request
// (the library then looks the index up).
func (d *Driver) createBridge(b bridgeSpec) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = b.name
	attrs.MTU = b.mtu
	attrs.HardwareAddr = b.mac
	attrs.Flags = net.FlagUp
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := d.nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("bridge %q: create: %w", b.name, err)
	}
	if br.Index == 0 {
		return nil, fmt.Errorf("bridge %q: created but not found by name", b.name)
	}
	d.log.Info("bridge created", "bridge", b.name, "mtu", b.mtu, "mac", b.mac.String())
	return br, nil
}

// ensureNetworkSysctls turns on forwarding for the network's families and,
// for IPv6, makes sure the bridge has IPv6 and does no DAD: a bridge without
// ports has no carrier, and its addresses would stay tentative, unusable,
// until the first container arrives and DAD finishes a second later. The
// gateways themselves are added with IFA_F_NODAD too. route_localnet lets
// the host's own connections to 127.0.0.1 be DNATed out of the bridge to a
// published port; knit's table drops packets to 127.0.0.0/8 arriving on any
// interface but lo, so nothing outside can use it (CVE-2020-8558).
func (d *Driver) ensureNetworkSysctls(b bridgeSpec) error {
	var kv []string
	if b.ipv4 {
		kv = append(kv, "net/ipv4/ip_forward", "1", "net/ipv4/conf/"+b.name+"/route_localnet", "1")
	}
	if b.ipv6 {
		conf := "net/ipv6/conf/" + b.name + "/"
		kv = append(kv,
			"net/ipv6/conf/all/forwarding", "1",
			conf+"disable_ipv6", "0",
			conf+"accept_dad", "0",
		)
	}
	if len(kv) == 0 {
		return nil
	}
	if err := d.hostSysctls(kv...); err != nil {
		return fmt.Errorf("bridge %q: host sysctls: %w", b.name, err)
	}
	return nil
}

// DeleteNetwork deletes the bridge n.Bridge. A missing bridge is no error; a
// link of that name that is not a bridge is left alone (it is not the
// network's), with a warning.
func (d *Driver) DeleteNetwork(n *v1.Network) error {
	if n == nil || n.Bridge == "" {
		return fmt.Errorf("bridge driver: delete network: no bridge name")
	}
	defer d.forgetBridge(n.Bridge)
	l, err := d.nl.LinkByName(n.Bridge)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %q: look up: %w", n.Bridge, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		d.log.Warn("not deleting link: not a bridge", "bridge", n.Bridge, "kind", l.Type())
		return nil
	}
	if err := d.nl.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("bridge %q: delete: %w", n.Bridge, err)
	}
	d.log.Info("bridge deleted", "bridge", n.Bridge)
	return nil
}
