// Package netns manages persistent container network namespaces: each one is
// a file in a directory chosen by the caller (knitd uses <run-dir>/netns,
// tests a temporary directory) with the namespace bind-mounted onto it, the
// way `ip netns add` does under /run/netns. The mount keeps the namespace
// alive without any process in it, so a container's network outlives both its
// processes and a restart of knitd, and the file's path is the namespace's
// stable name.
//
// # Design notes
//
// Network namespaces belong to threads, not processes. Go moves goroutines
// between threads at will, so every function here that has to be inside a
// namespace (Create, Do, NetlinkHandle, SetSysctl with a path) runs its work
// on a fresh goroutine locked to its OS thread, switches that thread with
// setns(2) and switches it back before unlocking it. If switching back fails,
// the thread is left locked: the Go runtime then terminates it when the
// goroutine exits, instead of handing a thread in the wrong namespace to some
// unrelated goroutine later. A fresh goroutine (rather than locking the
// caller's) also keeps the caller's own thread state untouched, which matters
// when the caller is itself locked inside a namespace.
//
// Sockets belong to the namespace they were created in, for their whole life.
// A netlink handle or a TCP listener opened inside Do keeps working in that
// namespace from any goroutine afterwards; that is how NetlinkHandle works.
//
// /proc/sys/net shows the namespace of the thread that opens the file, so
// SetSysctl opens and writes it from a thread inside the wanted namespace.
//
// Mounts are visible only in knitd's mount namespace and those that share
// propagation with it. Call PrepareDir once at startup to make the directory
// a shared mount (as iproute2 does with /run/netns), so that a namespace file
// unmounted by Delete is also unmounted in mount namespaces copied from
// knitd's, such as the containers', and the kernel can free the namespace.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrNotNetNS is wrapped by errors about a path that exists but holds no
// network namespace mount.
var ErrNotNetNS = errors.New("not a network namespace mount")

// List returns the names (not paths) of the files in dir, sorted: the
// namespaces knit created there, including files that lost their mount after
// a crash (Delete cleans those up too). A missing dir is no error.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns dir %q: list: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// sysctlFile returns the /proc/sys file of key, given in slash form
// ("net/ipv4/ip_forward", "net/ipv6/conf/kn-1a2b/accept_dad"). The dotted form
// is refused because interface names may contain dots.
func sysctlFile(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key ||
		strings.HasPrefix(key, "..") {
		return "", fmt.Errorf("sysctl %q: invalid key: want a relative path under /proc/sys such as net/ipv4/ip_forward", key)
	}
	if !strings.Contains(key, "/") && strings.Contains(key, ".") {
		return "", fmt.Errorf("sysctl %q: invalid key: use slashes (net/ipv4/ip_forward), not dots", key)
	}
	return "/proc/sys/" + key, nil
}

// sameSysctlValue compares the way the kernel prints values: whitespace
// separated fields, so "32768\t60999" equals "32768 60999".
func sameSysctlValue(cur, want string) bool {
	return strings.Join(strings.Fields(cur), " ") == strings.Join(strings.Fields(want), " ")
}

// readSysctl reads key in the calling thread's namespace.
func readSysctl(key string) (string, error) {
	file, err := sysctlFile(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("sysctl %s: read: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeSysctl sets key in the calling thread's namespace, leaving it alone
// when it already holds value: some writes have side effects even when the
// value does not change.
func writeSysctl(key, value string) error {
	cur, err := readSysctl(key)
	if err != nil {
		return err
	}
	if sameSysctlValue(cur, value) {
		return nil
	}
	file, _ := sysctlFile(key) // validated by readSysctl
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: write %q: %w", key, value, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysctl %s: write %q: %w", key, value, err)
	}
	return nil
}

// Open opens the network namespace file at path, or the calling thread's
// namespace when path is empty, for netlink sockets bound to it.
func Open(path string) (*os.File, error) {
	if path == "" {
		path = "/proc/thread-self/ns/net"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return f, nil
}
