package main

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/bench/internal/benchns"
)

// netNS is a throwaway namespace of this run,
// /run/netns/kb-pol-<role>-<random> with lo up: a benchns.NS under the names
// the rest of this program uses.
type netNS struct {
	*benchns.NS
	path string          // NS.Path
	nl   *netlink.Handle // NS.Netlink
}

func newNS(role string) (*netNS, error) {
	ns, err := benchns.New("kb-pol-" + role)
	if err != nil {
		return nil, err
	}
	return &netNS{NS: ns, path: ns.Path, nl: ns.Netlink}, nil
}

// close deletes the namespace; the kernel frees it once nothing holds it.
func (ns *netNS) close() error { return ns.Close() }

// do runs fn on a locked thread inside the namespace. Sockets fn opens and
// processes it starts belong to the namespace.
func (ns *netNS) do(fn func() error) error { return ns.Do(fn) }

// sysctl writes /proc/sys/<path> inside the namespace.
func (ns *netNS) sysctl(path, value string) error { return ns.Sysctl(path, value) }

// addrUp adds addrs to link and sets it up (benchns.AddrUp).
func addrUp(h *netlink.Handle, link string, addrs ...string) error {
	return benchns.AddrUp(h, link, addrs...)
}

// podVeth connects pod to the bridge of host: a veth named hostName in
// host, enslaved to br, and eth0 in pod with addr.
func podVeth(host *netNS, br netlink.Link, hostName string, pod *netNS, addr string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MasterIndex: br.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(pod.Handle.Fd()))}
	if err := host.Netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s: %w", hostName, err)
	}
	if err := addrUp(host.Netlink, hostName); err != nil {
		return err
	}
	return addrUp(pod.Netlink, "eth0", addr)
}
