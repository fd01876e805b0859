package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// threadNetNS is the current thread's network namespace. It is only right on
// a thread locked with runtime.LockOSThread.
const threadNetNS = "/proc/thread-self/ns/net"

// loopbackIndex is lo's ifindex in every network namespace.
const loopbackIndex = 1

// Create makes a new network namespace, bind-mounts it at path (creating the
// file; its directory must exist) and brings its loopback up.
//
// If path already holds a live namespace mount, Create leaves it alone and
// returns an error wrapping fs.ErrExist, so that two containers can never end
// up sharing a namespace by accident; callers that want "ensure" semantics
// check errors.Is(err, fs.ErrExist). A file left without its mount (after a
// crash) is reused. Concurrent Creates of the same path must be serialized by
// the caller.
func Create(path string) (err error) {
	mounted, err := Mounted(path)
	if err != nil {
		return fmt.Errorf("netns %q: create: %w", path, err)
	}
	if mounted {
		return fmt.Errorf("netns %q: create: %w", path, fs.ErrExist)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	switch {
	case err == nil:
		f.Close()
		defer func() {
			if err != nil {
				os.Remove(path)
			}
		}()
	case !errors.Is(err, fs.ErrExist): // an existing, unmounted file is reused
		return fmt.Errorf("netns %q: create file: %w", path, err)
	}

	errc := make(chan error, 1)
	go func() { errc <- createOnThread(path) }()
	if err := <-errc; err != nil {
		return fmt.Errorf("netns %q: create: %w", path, err)
	}
	return nil
}

// createOnThread does Create's namespace work on the calling goroutine, which
// must be a fresh one: it locks the thread, unshares a new namespace, mounts
// it, sets lo up and returns the thread to its original namespace. If that
// return fails the thread stays locked and dies with the goroutine.
func createOnThread(path string) error {
	runtime.LockOSThread()
	orig, err := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare: %w", err)
	}

	err = unix.Mount(threadNetNS, path, "none", unix.MS_BIND, "")
	if err != nil {
		err = fmt.Errorf("bind mount: %w", err)
	} else if err = loUp(); err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
	}

	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		// Leave the thread locked: Go ends it when this goroutine exits.
		return errors.Join(err, fmt.Errorf("return to original namespace: %w", rerr))
	}
	runtime.UnlockOSThread()
	return err
}

// loUp sets the loopback of the calling thread's namespace up.
func loUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: loopbackIndex, Name: "lo"}}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// Delete unmounts the namespace at path and removes the file. The kernel frees
// the namespace, and every interface in it, once nothing else holds it (no
// process inside, no other mount, no open file). A missing path is no error;
// neither is a file without a mount.
func Delete(path string) error {
	// Stacked mounts (from racing Creates) are taken off one by one.
	for range 16 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("netns %q: unmount: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns %q: remove: %w", path, err)
	}
	return nil
}

// PrepareDir creates dir if needed and makes it a shared mount point (bind
// mounting it onto itself first when it is not a mount point yet), as
// iproute2 does for /run/netns. Namespace mounts made in it then propagate to
// mount namespaces copied from the caller's, and so do their unmounts, so a
// container's copy of another container's namespace file does not keep that
// namespace alive after Delete. Safe to call again; knitd calls it once at
// startup. Undo with unmount(dir) when the directory is to be removed.
func PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns dir %q: create: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("netns dir %q: make shared: %w", dir, err)
	}
	// EINVAL: dir is not a mount point yet.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("netns dir %q: bind mount onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return fmt.Errorf("netns dir %q: make shared: %w", dir, err)
	}
	return nil
}

// Mounted reports whether path holds a namespace mount (a file on nsfs), which
// is what keeps a container's namespace alive. A missing path is false, nil.
func Mounted(path string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	return st.Type == unix.NSFS_MAGIC, nil
}
