// Package nstest gives kernel tests a fresh, named network namespace that is
// removed when the test ends, so no test touches the machine's own namespace.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/knit-net/knit/internal/netns"
)

// NS is a throwaway network namespace.
type NS struct {
	Name   string
	Path   string
	Handle vnetns.NsHandle
	// Netlink is a netlink handle bound to the namespace.
	Netlink *netlink.Handle
}

// RequireRoot skips the test when not running as root: kernel tests need
// CAP_NET_ADMIN and CAP_SYS_ADMIN.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}

// dir holds the namespace files, as with `ip netns add`, so that
// `ip netns exec NAME` reaches them.
const dir = "/run/netns"

// New creates a namespace named "kt-<prefix>-<random>" under /run/netns, with
// lo up, and deletes it in t.Cleanup. It is made with knit's netns.Create,
// which never leaves a thread of the test in the new namespace.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kt-" + prefix + "-" + hex.EncodeToString(b[:])
	ns := &NS{Name: name, Path: filepath.Join(dir, name), Handle: vnetns.None()}

	// A mount point of its own, shared, as iproute2 makes it: otherwise
	// the first `ip netns add` (podman's CNI setup runs one) mounts
	// /run/netns over itself and hides the namespaces already in it,
	// which then cannot be deleted.
	if err := netns.PrepareDir(dir); err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Create(ns.Path); err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if ns.Netlink != nil {
			ns.Netlink.Close()
		}
		if ns.Handle.IsOpen() {
			ns.Handle.Close()
		}
		if err := netns.Delete(ns.Path); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	h, err := vnetns.GetFromPath(ns.Path)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	ns.Handle = h
	// All the netlink families (route, xfrm, netfilter), as
	// netlink.NewHandleAt gives, but with the sockets made by netns.Do.
	err = netns.Do(ns.Path, func() error {
		var err error
		ns.Netlink, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	return ns
}

// Do runs fn on a locked OS thread inside the namespace (with knit's
// netns.Do) and returns to the original namespace afterwards. fn may end
// with t.FailNow (t.Fatal); Do then returns at once, and the thread, still
// locked, ends with fn's goroutine.
func (ns *NS) Do(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	goexit := make(chan struct{}) // closed when fn ends without returning
	go func() {
		done <- netns.Do(ns.Path, func() error {
			returned := false
			defer func() {
				if !returned {
					close(goexit)
				}
			}()
			fn()
			returned = true
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("in %s: %v", ns.Name, err)
		}
	case <-goexit:
		// netns.Do never returns, as its goroutine waits for fn's result:
		// this goroutine stays blocked for the rest of the test binary.
	}
}
