package runtime

// Design notes: the helper's mounts.
//
// CLONE_NEWNS gives the helper a copy of the daemon's mount table, in which
// mounts that are shared on the host stay peers of the host's. So the first
// step makes every mount recursively private; only after that may the helper
// unmount or bind anything without it reaching the host. (rslave would let
// host unmounts reach the container, but every later host mount would then
// be copied into every container: a cost that grows with their number.)
//
// The second step detaches every nsfs mount (network namespace files such as
// /run/netns/*). A container needs none, and the copies would otherwise pin
// the other containers' namespaces for as long as it lives and make the
// kernel's mount count grow as containers × namespaces.
//
// Then the three files are bound. A symlink (/etc/resolv.conf pointing to
// /run/systemd/resolve/stub-resolv.conf) is bound over its target, which only
// this container sees. A dangling link into /run gets a private tmpfs on the
// target's directory holding an empty file to bind over; any other missing
// file is skipped with a warning in the container's log.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitMain turns the process into a container's helper when Start created
// it, and returns at once otherwise. Call it as the first statement of main
// (and of TestMain in tests that start containers). As a helper it never
// returns: it execs the container's command, or writes why it could not to
// the log and to Start, and exits with 125, 126 or 127.
func InitMain() {
	if len(os.Args) < 4 || os.Args[1] != initArg {
		return
	}
	code, err := initContainer(os.Args[2], os.Args[3:])
	fmt.Fprintf(os.Stderr, "knit: %v\n", err)
	if isPipe(statusFD) {
		_, _ = unix.Write(statusFD, []byte(strconv.Itoa(code)+" "+err.Error()))
	}
	os.Exit(code)
}

// checkOwnNamespaces refuses to go on unless this process has mount and UTS
// namespaces of its own, as Start's clone gives it, and the status pipe. The
// marker typed by hand would otherwise make the host's mounts private, cover
// its /etc files and detach its namespace files.
func checkOwnNamespaces() error {
	for _, ns := range []string{"mnt", "uts"} {
		self, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			return fmt.Errorf("refusing to run: %w", err)
		}
		parent, err := os.Readlink("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/" + ns)
		if err != nil || parent == self {
			return fmt.Errorf("refusing to run: not started by knit (%s namespace is the parent's)", ns)
		}
	}
	if !isPipe(statusFD) {
		return errors.New("refusing to run: not started by knit (no status pipe)")
	}
	return nil
}

func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// initContainer sets up the namespaces that Start created and execs argv.
// It only returns on failure, with the exit code to use.
func initContainer(dir string, argv []string) (int, error) {
	if err := checkOwnNamespaces(); err != nil {
		return 125, err
	}
	// Nothing the daemon inherited reaches the command; a successful exec
	// also closes the status pipe.
	if err := unix.CloseRange(statusFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 125, fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return 125, fmt.Errorf("make mounts private: %w", err)
	}
	detachNSMounts()
	for _, f := range [...]struct{ src, dst string }{
		{"hosts", "/etc/hosts"}, {"hostname", "/etc/hostname"}, {"resolv.conf", "/etc/resolv.conf"},
	} {
		if err := bindFile(filepath.Join(dir, f.src), f.dst); err != nil {
			return 125, fmt.Errorf("bind %s: %w", f.dst, err)
		}
	}
	hostname, err := os.ReadFile(filepath.Join(dir, "hostname"))
	if err == nil {
		err = unix.Sethostname(bytes.TrimSpace(hostname))
	}
	if err != nil {
		return 125, fmt.Errorf("set hostname: %w", err)
	}
	path, err := exec.LookPath(argv[0]) // PATH is the container's
	if errors.Is(err, exec.ErrDot) {
		err = nil // the user's own PATH asked for it
	}
	if err != nil {
		return lookPathError(argv[0], err)
	}
	err = syscall.Exec(path, argv, os.Environ())
	if errors.Is(err, unix.ENOENT) { // e.g. a script's missing interpreter
		return 127, fmt.Errorf("exec %q: %w", path, err)
	}
	return 126, fmt.Errorf("exec %q: %w", path, err)
}

// lookPathError words a failed lookup the way a shell's exit code does.
func lookPathError(name string, err error) (int, error) {
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return 127, fmt.Errorf("command %q not found in PATH", name)
	case errors.Is(err, fs.ErrNotExist):
		return 127, fmt.Errorf("command %q not found", name)
	case errors.Is(err, fs.ErrPermission):
		return 126, fmt.Errorf("command %q is not executable", name)
	}
	return 126, fmt.Errorf("command %q: %w", name, err)
}

// detachNSMounts lazily unmounts every nsfs mount in the (private) mount
// namespace, children first. Failures only leave a mount in place.
func detachNSMounts() {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		pre, post, ok := strings.Cut(lines[i], " - ")
		f := strings.Fields(pre)
		if ok && strings.HasPrefix(post, "nsfs ") && len(f) >= 5 {
			_ = unix.Unmount(unescapeMountPath(f[4]), unix.MNT_DETACH)
		}
	}
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bindFile bind-mounts src over dst, or over what dst links to.
func bindFile(src, dst string) error {
	target, err := filepath.EvalSymlinks(dst)
	if errors.Is(err, fs.ErrNotExist) {
		target, err = missingTarget(dst)
	}
	if err != nil || target == "" {
		return err
	}
	return unix.Mount(src, target, "", unix.MS_BIND, "")
}

// missingTarget makes a private file to bind over when dst is a dangling
// symlink into /run, and returns it; for anything else missing it warns and
// returns "".
func missingTarget(dst string) (string, error) {
	link := dst
	for range 40 {
		next, err := os.Readlink(link)
		if err != nil {
			break
		}
		if !filepath.IsAbs(next) {
			next = filepath.Join(filepath.Dir(link), next)
		}
		link = next
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(link))
	if link == dst || err != nil || !strings.HasPrefix(dir, "/run/") {
		fmt.Fprintf(os.Stderr, "knit: warning: %s does not exist (resolves to %s); the container has none\n", dst, link)
		return "", nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return "", fmt.Errorf("dangling link to %s: mount private tmpfs on %s: %w", link, dir, err)
	}
	target := filepath.Join(dir, filepath.Base(link))
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return "", fmt.Errorf("dangling link to %s: %w", link, err)
	}
	return target, nil
}
