// Package benchns gives the benchmark programs throwaway named network
// namespaces under /run/netns (so that `ip netns exec NAME` reaches them),
// built on knit's own internal/netns: creating a namespace and running code
// inside one happen on fresh goroutines locked to their threads, and a thread
// that cannot return to its namespace is never handed back to the Go
// runtime.
package benchns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/netns"
)

// Dir holds the namespace files, as with `ip netns add`.
const Dir = "/run/netns"

// NS is a named network namespace of a benchmark run, with lo up.
type NS struct {
	Name string // file name in Dir
	Path string // Dir/Name
	// Handle is the namespace file, open for as long as NS is: its Fd()
	// serves netlink.NsFd and nftables.WithNetNSFd.
	Handle *os.File
	// Netlink is an rtnetlink handle whose socket lives in the namespace.
	Netlink *netlink.Handle
}

// New creates the namespace "<prefix>-<6 random hex digits>".
func New(prefix string) (*NS, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return Create(prefix + "-" + hex.EncodeToString(b[:]))
}

// Create creates the namespace Dir/name. A namespace already mounted there is
// left alone and the error wraps fs.ErrExist. On error nothing of the new
// namespace is left behind.
func Create(name string) (_ *NS, err error) {
	if err := netns.PrepareDir(Dir); err != nil { // a shared mount point, as iproute2 makes it
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	ns := &NS{Name: name, Path: filepath.Join(Dir, name)}
	if err := netns.Create(ns.Path); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ns.Close())
		}
	}()
	if ns.Handle, err = netns.Open(ns.Path); err != nil {
		return nil, err
	}
	if ns.Netlink, err = netns.NetlinkHandle(ns.Path); err != nil {
		return nil, err
	}
	return ns, nil
}

// Close closes the handles and deletes the namespace; the kernel frees it,
// and every link in it, once nothing else holds it.
func (ns *NS) Close() error {
	if ns.Netlink != nil {
		ns.Netlink.Close()
		ns.Netlink = nil
	}
	if ns.Handle != nil {
		ns.Handle.Close()
		ns.Handle = nil
	}
	return netns.Delete(ns.Path)
}

// Do runs fn on a locked thread inside the namespace (see netns.Do). Sockets
// fn opens, and processes it starts, belong to the namespace.
func (ns *NS) Do(fn func() error) error { return netns.Do(ns.Path, fn) }

// Sysctl sets key, in slash form relative to /proc/sys (such as
// "net/ipv4/ip_forward"), to value inside the namespace.
func (ns *NS) Sysctl(key, value string) error { return netns.SetSysctl(ns.Path, key, value) }

// AddrUp adds addrs (CIDR notation; IPv6 without duplicate address detection,
// so they are usable at once) to link and sets it up.
func AddrUp(h *netlink.Handle, link string, addrs ...string) error {
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
