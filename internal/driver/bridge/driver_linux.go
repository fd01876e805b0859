package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var _ driver.Driver = (*Driver)(nil)

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h): no IPv6
// link-local address is generated for the interface.
const in6AddrGenModeNone = 1

// Driver programs bridge networks. It is safe for concurrent use; calls for
// different endpoints may run in parallel, calls for the same endpoint or
// network must be serialized by the caller.
type Driver struct {
	nl     *netlink.Handle
	log    *slog.Logger
	hostNS string

	mu sync.Mutex
	// rtnl is the driver's own rtnetlink socket in the host namespace, for
	// the requests the netlink library cannot build (see createVeth and
	// hairpinOn). Opened on first use so that New cannot fail.
	rtnl map[int]*nl.SocketHandle
	// bridges caches the ifindex of each bridge by name (see bridgeIndex).
	bridges map[string]int
}

// New returns a driver for the host namespace of opt. It panics if
// opt.Handle is nil.
func New(opt Options) *Driver {
	if opt.Handle == nil {
		panic("bridge.New: Options.Handle is nil")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{nl: opt.Handle, log: log.With("driver", "bridge"), hostNS: opt.HostNetNS}
}

// Close releases the driver's own socket. It leaves the kernel state alone.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.rtnl {
		s.Close()
	}
	d.rtnl = nil
	return nil
}

// socket returns the driver's rtnetlink socket, opening it in the host
// namespace the first time.
func (d *Driver) socket() (map[int]*nl.SocketHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rtnl != nil {
		return d.rtnl, nil
	}
	var sock *nl.NetlinkSocket
	open := func() error {
		var err error
		sock, err = nl.GetNetlinkSocketAt(vnetns.None(), vnetns.None(), unix.NETLINK_ROUTE)
		return err
	}
	var err error
	if d.hostNS == "" {
		err = open()
	} else {
		err = netns.Do(d.hostNS, open)
	}
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket in host namespace %q: %w", d.hostNS, err)
	}
	if err := sock.SetExtAck(true); err != nil {
		sock.Close()
		return nil, fmt.Errorf("rtnetlink socket: extended ack: %w", err)
	}
	d.rtnl = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	return d.rtnl, nil
}

// vethSpec is one veth pair to create in a single RTM_NEWLINK.
type vethSpec struct {
	host     string // host end, in the namespace of d.rtnl
	peer     string // container end
	mtu      int
	master   int              // bridge ifindex
	peerMAC  net.HardwareAddr // nil: random
	peerNSFd int              // container namespace
}

// createVeth creates a veth pair with one RTM_NEWLINK: the host end enslaved
// but down (its IPv6 is turned off before it goes up, see disableIPv6), the
// peer made directly inside its namespace with its name, MTU and MAC (it is
// set up afterwards, see below). The kernel applies IFLA_MASTER at creation;
// netlink.LinkAdd does not send it and instead looks the new link up by name
// and enslaves it: two more round trips.
func (d *Driver) createVeth(v vethSpec) error {
	socks, err := d.socket()
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.Sockets = socks

	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC)) // not IFF_UP: see disableIPv6
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.host)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.master))))

	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	// No IFF_UP for the peer: the kernel configures it before pairing the two
	// ends, and opening an unpaired veth fails with ENOTCONN.
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.peer))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.mtu)))
	if v.peerMAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, []byte(v.peerMAC))
	}
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.peerNSFd)))
	req.AddData(info)

	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// hostSysctls sets keys to values in the host namespace, with one namespace
// switch for all of them.
func (d *Driver) hostSysctls(kv ...string) error {
	return d.inHost(func() error {
		var errs []error
		for i := 0; i+1 < len(kv); i += 2 {
			errs = append(errs, netns.SetSysctl("", kv[i], kv[i+1]))
		}
		return errors.Join(errs...)
	})
}

// inHost runs fn in the host namespace: on a thread switched into it when
// it is not the caller's, for /proc/sys/net.
func (d *Driver) inHost(fn func() error) error {
	if d.hostNS == "" {
		return fn()
	}
	return netns.Do(d.hostNS, fn)
}

// isNotFound reports whether err says a link (or address, or route) is gone.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EADDRNOTAVAIL)
}
