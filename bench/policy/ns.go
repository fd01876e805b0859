package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// newNS creates /run/netns/kb-pol-<role>-<random> with lo up.
func newNS(role string) (*netNS, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := &netNS{name: "kb-pol-" + role + "-" + hex.EncodeToString(b[:])}
	ns.path = "/run/netns/" + ns.name
	err := onLockedThread(func() error {
		orig, err := vnetns.Get()
		if err != nil {
			return fmt.Errorf("current namespace: %w", err)
		}
		defer orig.Close()
		h, err := vnetns.NewNamed(ns.name) // switches this thread into it
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", ns.name, err)
		}
		ns.handle = h
		if err := vnetns.Set(orig); err != nil {
			return errStuck{fmt.Errorf("return from namespace %s: %w", ns.name, err)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ns.nl, err = netlink.NewHandleAt(ns.handle); err != nil {
		ns.close()
		return nil, fmt.Errorf("netlink in %s: %w", ns.name, err)
	}
	if err := addrUp(ns.nl, "lo"); err != nil {
		ns.close()
		return nil, err
	}
	return ns, nil
}

// close deletes the namespace; the kernel frees it once nothing holds it.
func (ns *netNS) close() error {
	if ns.nl != nil {
		ns.nl.Close()
	}
	if ns.handle.IsOpen() {
		ns.handle.Close()
	}
	return vnetns.DeleteNamed(ns.name)
}

// errStuck says the thread could not go back to its namespace: it must not
// return to the runtime's pool.
type errStuck struct{ error }

func (e errStuck) Unwrap() error { return e.error }

// onLockedThread runs fn on a goroutine locked to its thread; the thread is
// unlocked afterwards unless fn returns errStuck (then it ends with the
// goroutine).
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := fn()
		if !errors.As(err, new(errStuck)) {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// do runs fn on a locked thread inside the namespace. Sockets fn opens and
// processes it starts belong to the namespace.
func (ns *netNS) do(fn func() error) error {
	return onLockedThread(func() error {
		orig, err := vnetns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := vnetns.Set(ns.handle); err != nil {
			return fmt.Errorf("enter %s: %w", ns.name, err)
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			return errStuck{errors.Join(ferr, fmt.Errorf("leave %s: %w", ns.name, err))}
		}
		return ferr
	})
}

// sysctl writes /proc/sys/<path> inside the namespace.
func (ns *netNS) sysctl(path, value string) error {
	return ns.do(func() error { return os.WriteFile("/proc/sys/"+path, []byte(value), 0o644) })
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

// podVeth connects pod to the bridge of host: a veth named hostName in
// host, enslaved to br, and eth0 in pod with addr.
func podVeth(host *netNS, br netlink.Link, hostName string, pod *netNS, addr string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MasterIndex: br.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(pod.handle))}
	if err := host.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s: %w", hostName, err)
	}
	if err := addrUp(host.nl, hostName); err != nil {
		return err
	}
	return addrUp(pod.nl, "eth0", addr)
}
