package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
