package netns_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/testutil/nstest"
	"golang.org/x/sys/unix"
)

// newNS creates a namespace file under a fresh temporary directory and deletes
// it when the test ends.
func newNS(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := netns.Create(p); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(p); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})
	return p
}

// nsInode identifies the namespace of the calling thread (run it locked).
func nsInode(t *testing.T, file string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatalf("stat %s: %v", file, err)
	}
	return st.Ino
}

// threadNS returns the namespace inode of a thread that has run no Do.
func threadNS(t *testing.T) uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return nsInode(t, "/proc/thread-self/ns/net")
}

// mountCount counts the mounts at path in this process's mount table.
func mountCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}

func TestCreateListDelete(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	before := threadNS(t)
	a := filepath.Join(dir, "a")
	b := newNS(t, dir, "b")
	if err := netns.Create(a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := netns.Create(a); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over a live namespace: got %v, want fs.ErrExist", err)
	}
	if names, err := netns.List(dir); err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("List = %v, %v; want [a b]", names, err)
	}
	if ok, err := netns.Mounted(a); !ok || err != nil {
		t.Fatalf("Mounted(a) = %v, %v", ok, err)
	}
	if nsInode(t, a) == nsInode(t, b) || nsInode(t, a) == before {
		t.Fatal("namespaces a, b and the test's are not distinct")
	}

	// lo is up inside.
	h, err := netns.NetlinkHandle(a)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	h.Close()
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("lo in new namespace: %v, err %v; want up", lo, err)
	}

	for range 2 {
		if err := netns.Delete(a); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) || mountCount(t, a) != 0 {
		t.Fatalf("after Delete: stat err %v, %d mounts; want gone", err, mountCount(t, a))
	}
	if names, _ := netns.List(dir); !slices.Equal(names, []string{"b"}) {
		t.Fatalf("List after Delete = %v, want [b]", names)
	}
	if names, err := netns.List(filepath.Join(dir, "missing")); names != nil || err != nil {
		t.Fatalf("List(missing) = %v, %v; want nil, nil", names, err)
	}
	if threadNS(t) != before {
		t.Fatal("a thread of the pool changed namespace")
	}
}

func TestCreateReusesUnmountedFile(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "stale")
	if err := os.WriteFile(p, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	newNS(t, dir, "stale")
	if ok, _ := netns.Mounted(p); !ok {
		t.Fatal("stale file not mounted over")
	}
}

func TestDoSocketsStayInNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	p := newNS(t, dir, "c")
	before := threadNS(t)

	var ln net.Listener
	err := netns.Do(p, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("listen inside: %v", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	// Accept runs outside Do yet serves the namespace's 127.0.0.1.
	err = netns.Do(p, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		return err
	})
	if err != nil {
		t.Fatalf("dial inside: %v", err)
	}
	if threadNS(t) != before {
		t.Fatal("a thread of the pool changed namespace")
	}
}

func TestDoErrors(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	if err := netns.Do(filepath.Join(dir, "missing"), func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Do(missing) = %v, want fs.ErrNotExist", err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if err := netns.Do(plain, func() error { return nil }); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Do(plain file) = %v, want ErrNotNetNS", err)
	}
	p := newNS(t, dir, "c")
	sentinel := errors.New("sentinel")
	if err := netns.Do(p, func() error { return sentinel }); err != sentinel {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

func TestSysctl(t *testing.T) {
	nstest.RequireRoot(t)
	p := newNS(t, t.TempDir(), "c")
	const key = "net/ipv4/ip_forward"
	outside, err := netns.Sysctl("", key)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"0", "1", "1"} {
		if err := netns.SetSysctl(p, key, v); err != nil {
			t.Fatalf("SetSysctl %s: %v", v, err)
		}
		if got, err := netns.Sysctl(p, key); got != v || err != nil {
			t.Fatalf("Sysctl = %q, %v; want %q", got, err, v)
		}
	}
	if got, _ := netns.Sysctl("", key); got != outside {
		t.Fatalf("the test's own %s changed: %s -> %s", key, outside, got)
	}
	for _, bad := range []string{"", "/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward", "../etc/passwd", "net/../../x"} {
		if err := netns.SetSysctl(p, bad, "1"); err == nil {
			t.Errorf("SetSysctl(%q) accepted", bad)
		}
	}
}

func TestPrepareDir(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "netns")
	for range 2 {
		if err := netns.PrepareDir(dir); err != nil {
			t.Fatalf("PrepareDir: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if n := mountCount(t, dir); n != 1 {
		t.Fatalf("%d mounts at %s, want 1", n, dir)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 6 && f[4] == dir && !strings.HasPrefix(f[6], "shared:") {
			t.Fatalf("%s is not shared: %s", dir, line)
		}
	}
	p := newNS(t, dir, "c")
	if ok, _ := netns.Mounted(p); !ok {
		t.Fatal("namespace in prepared dir not mounted")
	}
}
