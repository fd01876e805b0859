package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/kname"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/portmap"
)

// PruneLinks removes knit's bridges ("kn-…") and host veths ("knv…") in
// h's namespace that are not in bridges and veths. Links of other names
// are never touched (user-named bridges are found through the store).
func PruneLinks(h *netlink.Handle, bridges, veths map[string]bool, log *slog.Logger) error {
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		stale := (strings.HasPrefix(name, kname.BridgePrefix) && l.Type() == "bridge" && !bridges[name]) ||
			(strings.HasPrefix(name, kname.HostVethPrefix) && l.Type() == "veth" && !veths[name])
		if stale {
			log.Info("removing stale link", "link", name)
			if err := h.LinkDel(l); err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				errs = append(errs, fmt.Errorf("delete stale link %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// HostView is the API's read-only look at the host.
type HostView struct{ NL *netlink.Handle }

func (h HostView) Routes() []netip.Prefix {
	routes, err := h.NL.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 || a.IsLinkLocalUnicast() || a.IsMulticast() {
			continue
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), ones).Masked())
	}
	return out
}

func (h HostView) HasAddress(ip netip.Addr) bool {
	addrs, err := h.NL.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true
		}
	}
	return false
}

// Sockets reads /proc/thread-self/net: the calling thread is never in a
// container's namespace (those threads stay locked to their goroutine).
func (h HostView) Sockets() portmap.HostHolder { return portmap.HostSockets("/proc/thread-self/net") }

// CheckEndpoint looks, read-only, for the host veth in knitd's namespace and
// the interface in the container's.
func (h HostView) CheckEndpoint(nsPath, ifName, hostVeth string) error {
	if _, err := h.NL.LinkByName(hostVeth); err != nil {
		return v1.Conflictf("host veth %s of interface %s is missing; DEL and ADD the attachment again", hostVeth, ifName)
	}
	ch, err := netns.NetlinkHandle(nsPath)
	if err != nil {
		return v1.Conflictf("network namespace %s cannot be opened: %s", nsPath, err)
	}
	defer ch.Close()
	if _, err := ch.LinkByName(ifName); err != nil {
		return v1.Conflictf("interface %s is missing in %s; DEL and ADD the attachment again", ifName, nsPath)
	}
	return nil
}

func (h HostView) LinkExists(name string) bool {
	_, err := h.NL.LinkByName(name)
	return err == nil
}
