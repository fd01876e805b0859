package bridge

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The host end of an endpoint: a port of its network's bridge, found by the
// bridge's cached ifindex, with IPv6 off and hairpin mode on.

// bridgeIndex returns the ifindex of the bridge named name: from the cache
// when it is there (cached is then true), else looked up and cached. A cached
// index is stale when the bridge was deleted and created again behind the
// driver's back; callers that get an error using it call lookupBridge and
// retry once if the index changed.
func (d *Driver) bridgeIndex(name string) (index int, cached bool, err error) {
	d.mu.Lock()
	index, cached = d.bridges[name]
	d.mu.Unlock()
	if cached {
		return index, true, nil
	}
	index, err = d.lookupBridge(name)
	return index, false, err
}

// lookupBridge looks the bridge named name up in the kernel and caches its
// ifindex, or forgets it when it is not a bridge or cannot be found.
func (d *Driver) lookupBridge(name string) (int, error) {
	l, err := d.nl.LinkByName(name)
	switch {
	case isNotFound(err):
		err = fmt.Errorf("bridge %q: not found: ensure the network first: %w", name, err)
	case err != nil:
		err = fmt.Errorf("bridge %q: look up: %w", name, err)
	default:
		if _, ok := l.(*netlink.Bridge); !ok {
			err = fmt.Errorf("bridge %q: link is a %s, not a bridge", name, l.Type())
		}
	}
	if err != nil {
		d.forgetBridge(name)
		return 0, err
	}
	d.rememberBridge(name, l.Attrs().Index)
	return l.Attrs().Index, nil
}

func (d *Driver) rememberBridge(name string, index int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bridges == nil {
		d.bridges = make(map[string]int)
	}
	d.bridges[name] = index
}

func (d *Driver) forgetBridge(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.bridges, name)
}

// createPair creates the veth pair v as a port of the bridge named bridge.
// The kernel refuses an IFLA_MASTER that is no longer a bridge's (EINVAL for
// an unknown ifindex, ENODEV, EOPNOTSUPP for a link that is not a bridge), so
// when creation with a cached index fails the bridge is looked up again, and
// creation retried once if its index changed.
func (d *Driver) createPair(v vethSpec, bridge string) error {
	master, cached, err := d.bridgeIndex(bridge)
	if err != nil {
		return err
	}
	v.master = master
	err = d.createVeth(v)
	if err == nil || !cached || errors.Is(err, unix.EEXIST) {
		return err
	}
	fresh, lerr := d.lookupBridge(bridge)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	if fresh == master {
		return err
	}
	d.log.Info("bridge index changed", "bridge", bridge, "old", master, "new", fresh)
	v.master = fresh
	return d.createVeth(v)
}

// upHostEnd finishes a host end that createVeth made: IPv6 off, hairpin on,
// then up. name and index are the host end's.
func (d *Driver) upHostEnd(name string, index int) error {
	if _, err := d.disableIPv6(name); err != nil {
		return fmt.Errorf("disable ipv6: %w", err)
	}
	if err := setHairpin(d.nl, index); err != nil {
		return fmt.Errorf("hairpin: %w", err)
	}
	if err := d.nl.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index}}); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// disableIPv6 turns IPv6 off on the host link name (a bridge port needs no
// address of its own: IPv6 between containers is switched by the bridge) and
// reports whether it was on. Reading the setting first keeps a correct link
// free of writes. Each host veth with IPv6 would get a link-local address and
// three routes that the kernel walks on every link event in the host, so
// attaching got slower with every container present. The kernel refuses the
// setting in the create message (the link's IPv6 state does not exist yet),
// hence the host end is created down and set up after this. A kernel without
// IPv6, or a link whose MTU is below IPv6's minimum, has no such setting:
// there is nothing to turn off.
func (d *Driver) disableIPv6(name string) (changed bool, err error) {
	key := "net/ipv6/conf/" + name + "/disable_ipv6"
	err = d.inHost(func() error {
		v, err := netns.Sysctl("", key)
		if err != nil || v == "1" {
			return err
		}
		changed = true
		return netns.SetSysctl("", key, "1")
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return changed, err
}

// setHairpin lets the bridge send a frame back out of the port it came in
// on: a container reaching its own published port is DNATed back to itself,
// and with br_netfilter that frame is switched straight back to its port.
func setHairpin(nl *netlink.Handle, index int) error {
	return nl.LinkSetHairpin(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index}}, true)
}

// hairpinOn reports whether the bridge port with ifindex index is in hairpin
// mode, from one RTM_GETLINK of that link: a bridge port's settings are in
// the slave data of its IFLA_LINKINFO. (netlink.LinkGetProtinfo dumps every
// bridge port of the namespace to read one: with a thousand containers that
// made adopting an endpoint take milliseconds.)
func (d *Driver) hairpinOn(index int) (bool, error) {
	socks, err := d.socket()
	if err != nil {
		return false, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, 0)
	req.Sockets = socks
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg || nl.DeserializeIfInfomsg(m).Index != int32(index) {
			continue
		}
		info := attr(m[unix.SizeofIfInfomsg:], unix.IFLA_LINKINFO)
		if string(attr(info, unix.IFLA_INFO_SLAVE_KIND)) != "bridge\x00" {
			return false, nil
		}
		mode := attr(attr(info, unix.IFLA_INFO_SLAVE_DATA), unix.IFLA_BRPORT_MODE)
		return len(mode) > 0 && mode[0] != 0, nil
	}
	return false, fmt.Errorf("link %d: not in the answer", index)
}

// attr returns the value of the netlink attribute of type typ in b, nil when
// there is none (or b does not parse).
func attr(b []byte, typ uint16) []byte {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil
	}
	for _, a := range attrs {
		if a.Attr.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
			return a.Value
		}
	}
	return nil
}
