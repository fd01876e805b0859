// Package nstest gives kernel tests a fresh, named network namespace that is
// removed when the test ends, so no test touches the machine's own namespace.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is a throwaway network namespace.
type NS struct {
	Name   string
	Path   string
	Handle netns.NsHandle
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

// New creates a namespace named "kt-<prefix>-<random>" under /run/netns, with
// lo up, and deletes it in t.Cleanup.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kt-" + prefix + "-" + hex.EncodeToString(b[:])

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name) // switches this thread into the new namespace
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return to original netns: %v", err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns := &NS{Name: name, Path: filepath.Join("/run/netns", name), Handle: h, Netlink: nl}
	t.Cleanup(func() {
		nl.Close()
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return ns
}

// Do runs fn on a locked OS thread inside the namespace and returns to the
// original namespace afterwards.
func (ns *NS) Do(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is not unlocked: if returning fails it must die with the
		// goroutine rather than go back to the pool in the wrong namespace.
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("get netns: %v", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.Handle); err != nil {
			t.Errorf("enter %s: %v", ns.Name, err)
			return
		}
		fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}
