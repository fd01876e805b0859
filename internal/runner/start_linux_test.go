package runner_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

func TestStartInNetNS(t *testing.T) {
	r, rec, dir := newRuntime(t)
	ns := nstest.New(t, "rt")
	// A namespace file outside any self-bind too: both ways of detaching
	// nsfs mounts in the container get used.
	extra := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(extra, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(ns.Path, extra, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(extra, unix.MNT_DETACH) })
	hostsBefore := readFile(t, "/etc/hosts")
	hostnameBefore, _ := os.Hostname()

	spec := runner.Spec{
		ID:        "c0ffee01",
		Hostname:  "web-1",
		NetNSPath: ns.Path,
		Hosts:     []byte("127.0.0.1 localhost\n10.1.0.2 web-1\n"),
		Resolv:    []byte("nameserver 10.1.0.1\n"),
		Env:       []string{"GREETING=hi"},
		Command: []string{"sh", "-c", `hostname; echo "--hosts"; cat /etc/hosts; echo "--resolv"; cat /etc/resolv.conf;
			echo "--hostname $(cat /etc/hostname) $HOSTNAME $GREETING"; echo "--net"; cat /proc/self/net/dev;
			echo "--nsfs $(grep -c ' - nsfs ' /proc/self/mountinfo)"; echo "--fds" $(ls /proc/self/fd);
			echo END; exec sleep 1000`},
	}
	pid := start(t, r, spec)
	log := waitLog(t, r, spec.ID, "END")

	for _, want := range []string{
		"web-1\n--hosts\n127.0.0.1 localhost\n10.1.0.2 web-1\n--resolv\nnameserver 10.1.0.1\n",
		"--hostname web-1 web-1 hi\n",
		"--nsfs 0\n",      // the netns file's copy is detached inside
		"--fds 0 1 2 3\n", // ls's own: nothing leaked from the daemon
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	_, netdev, _ := strings.Cut(log, "--net\n")
	netdev, _, _ = strings.Cut(netdev, "--nsfs")
	if !strings.Contains(netdev, "lo:") || strings.Contains(netdev, "eth0") {
		t.Errorf("/proc/self/net/dev is not the test namespace's (lo only):\n%s", netdev)
	}
	if got, want := inode(t, procPath(pid, "ns/net")), inode(t, ns.Path); got != want {
		t.Errorf("container netns inode %d, want %d (%s)", got, want, ns.Path)
	}
	for _, kind := range []string{"uts", "mnt"} {
		if inode(t, procPath(pid, "ns/"+kind)) == inode(t, "/proc/self/ns/"+kind) {
			t.Errorf("container shares the test's %s namespace", kind)
		}
	}
	if got := readFile(t, procPath(pid, "root/etc/hosts")); got != string(spec.Hosts) {
		t.Errorf("/proc/<pid>/root/etc/hosts = %q", got)
	}
	if p, alive := r.Adopt(spec.ID); p != pid || !alive {
		t.Errorf("Adopt of own container = %d, %v; want %d, true", p, alive, pid)
	}
	if got := readFile(t, filepath.Join(dir, spec.ID, "pid")); !strings.HasPrefix(got, strconv.Itoa(pid)+" ") {
		t.Errorf("pid file %q, want %d and a start time", got, pid)
	}

	if err := r.Stop(spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := rec.wait(t, spec.ID); code != 143 {
		t.Errorf("exit code %d after SIGTERM, want 143", code)
	}
	if got := readFile(t, "/etc/hosts"); got != hostsBefore {
		t.Errorf("host /etc/hosts changed: %q", got)
	}
	if h, _ := os.Hostname(); h != hostnameBefore {
		t.Errorf("host hostname changed to %q", h)
	}
	// Other tests may be mounting namespace files meanwhile: look only for
	// what this one could have leaked.
	for _, line := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], "/etc/h") || f[4] == "/etc/resolv.conf" || strings.Contains(f[3], dir)) {
			t.Errorf("mount leaked into the test's namespace: %s", line)
		}
	}
}

func TestStartHostNetNS(t *testing.T) {
	r, _, _ := newRuntime(t)
	spec := sleeper("a1")
	pid := start(t, r, spec)
	if got, want := inode(t, procPath(pid, "ns/net")), inode(t, "/proc/self/ns/net"); got != want {
		t.Errorf("host-mode container netns %d, want the test's %d", got, want)
	}
	if got := readFile(t, procPath(pid, "root/etc/hostname")); got != "a1\n" {
		t.Errorf("hostname file %q, want the ID", got)
	}
}

func TestStartErrors(t *testing.T) {
	r, rec, dir := newRuntime(t)
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		code int
		msg  string
	}{
		{"knit-no-such-command", 127, `container e1: command "knit-no-such-command" not found in PATH`},
		{"/nonexistent/cmd", 127, `container e1: command "/nonexistent/cmd" not found`},
		{notExec, 126, `is not executable`},
		{dir, 126, `is a directory`},
	} {
		_, err := r.Start(runner.Spec{ID: "e1", Command: []string{tc.cmd}})
		var ee *runner.ExecError
		if !errors.As(err, &ee) || ee.Code != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Start(%s) = %v, want ExecError %d %q", tc.cmd, err, tc.code, tc.msg)
		}
		if left := children(); len(left) > 0 {
			t.Errorf("Start(%s) left processes %v", tc.cmd, left)
		}
	}
	if log := readFile(t, r.LogPath("e1")); !strings.Contains(log, "knit: command \"knit-no-such-command\" not found in PATH\n") {
		t.Errorf("log lacks the error:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "e1", "pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after failed start: %v", err)
	}
	rec.none(t, "e1", 200*time.Millisecond)

	// The ID is free again.
	start(t, r, sleeper("e1"))
	for _, tc := range []struct {
		spec runner.Spec
		want string
	}{
		{sleeper("e1"), "container e1: already running"},
		{runner.Spec{ID: "e2"}, "container e2: empty command"},
		{runner.Spec{ID: "../x", Command: []string{"true"}}, "invalid container ID"},
		{runner.Spec{ID: "e3", Hostname: "a b", Command: []string{"true"}}, "invalid hostname"},
		{runner.Spec{ID: "e4", NetNSPath: "/nonexistent", Command: []string{"true"}}, "container e4: open network namespace"},
		{runner.Spec{ID: "e5", NetNSPath: "/etc/hosts", Command: []string{"true"}}, "container e5: enter network namespace /etc/hosts"},
	} {
		if _, err := r.Start(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	r, _, _ := newRuntime(t)
	ns := nstest.New(t, "rt")
	spec := sleeper("f1")
	spec.NetNSPath = ns.Path
	spec.Hosts = []byte("10.0.0.1 old-name-that-is-long\n")
	spec.Resolv = []byte("nameserver 10.0.0.53\n")
	pid := start(t, r, spec)

	for _, hosts := range []string{"10.0.0.1 a\n10.0.0.2 b-much-longer-than-before\n", "10.0.0.9 short\n"} {
		if err := r.WriteFiles(spec.ID, []byte(hosts), nil); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, procPath(pid, "root/etc/hosts")); got != hosts {
			t.Errorf("container /etc/hosts = %q, want %q", got, hosts)
		}
	}
	if got := readFile(t, procPath(pid, "root/etc/resolv.conf")); got != string(spec.Resolv) {
		t.Errorf("resolv.conf changed by a nil rewrite: %q", got)
	}
	if err := r.WriteFiles(spec.ID, nil, []byte("nameserver 10.0.0.54\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, procPath(pid, "root/etc/resolv.conf")); got != "nameserver 10.0.0.54\n" {
		t.Errorf("container /etc/resolv.conf = %q", got)
	}
}

func TestExecArgs(t *testing.T) {
	if _, err := os.Stat(runner.NsenterPath); err != nil {
		t.Fatalf("nsenter is not installed (%v): apt-get install util-linux (make test installs what the tests need)", err)
	}
	r, rec, _ := newRuntime(t)
	ns := nstest.New(t, "rt")
	target := sleeper("x1")
	target.Hostname, target.NetNSPath, target.Hosts = "alpha", ns.Path, []byte("10.9.9.9 alpha\n")
	pid := start(t, r, target)

	// The exec runs as a host-mode container so that nothing here waits for a
	// child behind the reaper's back.
	execSpec := runner.Spec{ID: "x2", Command: runner.ExecArgs(pid, []string{"sh", "-c", "hostname; cat /etc/hosts; readlink /proc/self/ns/net"})}
	start(t, r, execSpec)
	if code := rec.wait(t, "x2"); code != 0 {
		t.Fatalf("nsenter exited %d; log:\n%s", code, readFile(t, r.LogPath("x2")))
	}
	want := "alpha\n10.9.9.9 alpha\nnet:[" + strconv.FormatUint(inode(t, ns.Path), 10) + "]\n"
	if got := readFile(t, r.LogPath("x2")); got != want {
		t.Errorf("exec output %q, want %q", got, want)
	}
}

// The helper run by hand (here: by a shell inside a container, so a broken
// guard could only harm that container) refuses to touch its namespaces.
func TestInitGuard(t *testing.T) {
	r, rec, _ := newRuntime(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := runner.Spec{ID: "g1", Hostname: "guarded", Command: []string{"sh", "-c",
		`"$0" __knit_init /nonexistent true 3>&1 | cat; echo "after $(hostname)"`, exe}}
	start(t, r, spec)
	if code := rec.wait(t, spec.ID); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	log := readFile(t, r.LogPath(spec.ID))
	for _, want := range []string{
		"knit: refusing to run: not started by knit (mnt namespace is the parent's)\n",
		"125 refusing to run",
		"after guarded\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
