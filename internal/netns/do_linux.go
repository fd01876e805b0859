package netns

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread inside the network namespace mounted at path and
// returns fn's error (or the error of entering the namespace).
//
// It follows containernetworking/plugins' pkg/ns: fn runs on a fresh
// goroutine locked to its thread, because a namespace belongs to a thread and
// the Go scheduler would otherwise move fn, or other goroutines, on and off
// the switched thread at any time. After fn the thread goes back to the
// original namespace and is unlocked; if going back fails the thread stays
// locked and is destroyed with the goroutine, so the pool never sees a thread
// in the wrong namespace.
//
// What fn does on its own goroutine happens inside the namespace. Goroutines
// it starts run on other threads, in knitd's namespace; but sockets and
// netlink handles it creates belong to the namespace for good and may be used
// from anywhere once Do returns.
func Do(path string, fn func() error) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %q: open: %w", path, err)
	}
	defer unix.Close(target)

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %q: open current namespace: %w", path, err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w: %w", ErrNotNetNS, err)
			}
			errc <- fmt.Errorf("netns %q: enter: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: Go ends it when this goroutine exits.
			errc <- errors.Join(ferr, fmt.Errorf("netns %q: return to original namespace: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NetlinkHandle returns a netlink handle (rtnetlink only) whose socket lives in
// the namespace at path, for configuring it without entering it again: every
// request on it acts inside that namespace whatever thread sends it. An empty
// path means the caller's namespace. The caller closes the handle.
func NetlinkHandle(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	var h *netlink.Handle
	err := Do(path, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		if h != nil {
			h.Close()
		}
		return nil, fmt.Errorf("netns %q: netlink handle: %w", path, err)
	}
	return h, nil
}

// SetSysctl sets key (slash form, relative to /proc/sys, such as
// "net/ipv4/ip_forward") to value inside the namespace at path; an empty path
// means the caller's namespace. A key that already holds value is not
// written. To set several keys in one namespace switch, call SetSysctl with
// an empty path inside Do.
func SetSysctl(path, key, value string) error {
	if path == "" {
		return writeSysctl(key, value)
	}
	return Do(path, func() error {
		if err := writeSysctl(key, value); err != nil {
			return fmt.Errorf("netns %q: %w", path, err)
		}
		return nil
	})
}

// Sysctl reads key (slash form) inside the namespace at path, or in the
// caller's namespace for an empty path, without the trailing newline.
func Sysctl(path, key string) (string, error) {
	if path == "" {
		return readSysctl(key)
	}
	var v string
	err := Do(path, func() error {
		var err error
		if v, err = readSysctl(key); err != nil {
			return fmt.Errorf("netns %q: %w", path, err)
		}
		return nil
	})
	return v, err
}
