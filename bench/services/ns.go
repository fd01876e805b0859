package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netNS is a throwaway named network namespace of this run.
type netNS struct {
	name, path string
	handle     vnetns.NsHandle
	nl         *netlink.Handle
}

// newNS creates /run/netns/kb-svc-<role>-<random> with lo up. The thread
// that creates it switches into it and back; it is locked meanwhile, and
// left locked (so the runtime ends it) if switching back fails.
func newNS(role string) (*netNS, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := &netNS{name: "kb-svc-" + role + "-" + hex.EncodeToString(b[:])}
	ns.path = "/run/netns/" + ns.name
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := vnetns.NewNamed(ns.name)
		if err != nil {
			_ = vnetns.Set(orig)
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create namespace %s: %w", ns.name, err)
			return
		}
		if err := vnetns.Set(orig); err != nil {
			h.Close()
			errc <- fmt.Errorf("return from namespace %s: %w", ns.name, err)
			return
		}
		runtime.UnlockOSThread()
		ns.handle = h
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns.handle)
	if err != nil {
		ns.close()
		return nil, fmt.Errorf("netlink in %s: %w", ns.name, err)
	}
	ns.nl = nl
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		ns.close()
		return nil, fmt.Errorf("lo up in %s: %w", ns.name, err)
	}
	return ns, nil
}

// close deletes the namespace; the kernel frees it and its links once
// nothing holds it.
func (ns *netNS) close() error {
	if ns.nl != nil {
		ns.nl.Close()
	}
	if ns.handle.IsOpen() {
		ns.handle.Close()
	}
	return vnetns.DeleteNamed(ns.name)
}

// do runs fn on a locked thread inside the namespace.
func (ns *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := vnetns.Set(ns.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", ns.name, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave %s: %w", ns.name, err))
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sysctl writes a /proc/sys key (dotted) inside the namespace.
func (ns *netNS) sysctl(key, value string) error {
	path := "/proc/sys/" + dotsToSlashes(key)
	return ns.do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// veth connects host (hostName, address hostAddr) with eth0 in peer
// (addresses peerAddrs, default route via the host's address).
func veth(host *netNS, hostName, hostAddr string, peer *netNS, peerAddrs ...string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(peer.handle))}
	if err := host.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s: %w", hostName, err)
	}
	if err := addrUp(host.nl, hostName, hostAddr); err != nil {
		return err
	}
	if err := addrUp(peer.nl, "eth0", peerAddrs...); err != nil {
		return err
	}
	eth, err := peer.nl.LinkByName("eth0")
	if err != nil {
		return err
	}
	gw, _, _ := net.ParseCIDR(hostAddr)
	if err := peer.nl.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("default route in %s: %w", peer.name, err)
	}
	return nil
}

func addrUp(h *netlink.Handle, link string, addrs ...string) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("find %s: %w", link, err)
	}
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		ad.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(l, ad); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, link, err)
		}
	}
	return h.LinkSetUp(l)
}
