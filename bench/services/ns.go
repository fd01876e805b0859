package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/bench/internal/benchns"
)

// netNS is a throwaway namespace of this run,
// /run/netns/kb-svc-<role>-<random> with lo up: a benchns.NS under the names
// the rest of this program uses.
type netNS struct {
	*benchns.NS
	path   string // NS.Path
	handle int    // NS.Handle's descriptor, for nftables.WithNetNSFd
}

func newNS(role string) (*netNS, error) {
	ns, err := benchns.New("kb-svc-" + role)
	if err != nil {
		return nil, err
	}
	return &netNS{NS: ns, path: ns.Path, handle: int(ns.Handle.Fd())}, nil
}

// close deletes the namespace; the kernel frees it and its links once
// nothing holds it.
func (ns *netNS) close() error { return ns.Close() }

// do runs fn on a locked thread inside the namespace.
func (ns *netNS) do(fn func() error) error { return ns.Do(fn) }

// sysctl sets a /proc/sys key, given dotted, inside the namespace.
func (ns *netNS) sysctl(key, value string) error {
	return ns.Sysctl(strings.ReplaceAll(key, ".", "/"), value)
}

// veth connects host (hostName, address hostAddr) with eth0 in peer
// (addresses peerAddrs, default route via the host's address).
func veth(host *netNS, hostName, hostAddr string, peer *netNS, peerAddrs ...string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(peer.handle)}
	if err := host.Netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s: %w", hostName, err)
	}
	if err := benchns.AddrUp(host.Netlink, hostName, hostAddr); err != nil {
		return err
	}
	if err := benchns.AddrUp(peer.Netlink, "eth0", peerAddrs...); err != nil {
		return err
	}
	eth, err := peer.Netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	gw, _, _ := net.ParseCIDR(hostAddr)
	if err := peer.Netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("default route in %s: %w", peer.Name, err)
	}
	return nil
}
