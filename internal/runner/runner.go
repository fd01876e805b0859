// Package runner runs knit's containers: a command from the host's own
// filesystem (there are no images) in new UTS and mount namespaces, inside a
// network namespace prepared elsewhere (or the daemon's own, for host mode),
// with its own /etc/hosts, /etc/hostname and /etc/resolv.conf bind-mounted
// from its state directory.
//
// <dir>/<id>/ holds hosts, hostname and resolv.conf (the bind mounts'
// sources, rewritten in place by WriteFiles), log (the command's stdout and
// stderr, appended to) and pid ("pid starttime").
//
// # Starting
//
// Start re-executes the running binary (/proc/self/exe) as a small helper,
// cloned with CLONE_NEWUTS|CLONE_NEWNS into a new session, from an OS thread
// that has entered the container's network namespace: the child inherits the
// thread's namespace, as with containernetworking's ns.Do around cmd.Start.
// The helper is InitMain: it makes its mounts private, detaches the copies
// of namespace files, binds the three files, sets the hostname and execs the
// command, so the container's PID is the helper's (mounts_linux.go explains
// the mount choices). A close-on-exec status pipe tells Start how that went: it closes
// with no data when the exec happened, or carries the reason it failed.
// Every binary that creates a Runtime must therefore call InitMain as the
// first statement of main (tests: of TestMain).
//
// # Reaping
//
// One process-wide reaper goroutine waits for SIGCHLD and calls
// wait4(-1, WNOHANG) until nothing is left to reap, dispatching exits by PID
// to the owning Runtime's onExit. No goroutine or thread is kept per
// container. The price: a process that uses this package must not wait for
// any other child itself. os/exec's Cmd.Wait (and Run, Output,
// CombinedOutput) would race with the reaper and fail with ECHILD or lose the
// exit status. Start other processes through this package, or hand them to a
// separate process.
//
// When a container's main process exits, the rest of its process group
// (the session Start created) is killed, so nothing it started lingers.
//
// # Daemon restarts
//
// Start records "pid starttime" in <dir>/<id>/pid. After a restart, Adopt
// checks that the PID still carries that start time (field 22 of
// /proc/<pid>/stat), so a reused PID is never taken for the container, and
// then polls it every 500ms: it is no longer our child, so onExit receives -1
// as its exit code, and what its process group leaves behind is not killed
// for it (Stop still signals the whole group).
package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Spec describes one container process.
type Spec struct {
	// ID names the container and its state directory; letters, digits, '-',
	// '_' and '.' (knit uses hex).
	ID      string
	Command []string
	// Hostname defaults to the first 12 characters of ID.
	Hostname string
	// NetNSPath is the network namespace file to run in; "" is the daemon's
	// own network namespace (host mode).
	NetNSPath string
	// Hosts and Resolv become the container's /etc/hosts and /etc/resolv.conf.
	Hosts, Resolv []byte
	// Env adds "KEY=value" entries to the command's environment, which
	// otherwise holds only PATH, HOME=/root and HOSTNAME. Later entries win.
	Env []string
}

// Runtime starts, watches and stops container processes. Its methods are
// safe for concurrent use.
type Runtime struct {
	dir    string
	log    *slog.Logger
	onExit func(id string, exitCode int)

	mu      sync.Mutex
	procs   map[string]*proc // running (or starting) containers by ID
	polling bool             // the poller of adopted processes is running
}

// proc is one container process. It costs a few hundred bytes: no goroutine
// waits on it.
type proc struct {
	r       *Runtime
	id      string
	adopted bool          // found by Adopt: not our child
	done    chan struct{} // closed once the process is gone

	// Set under reaper.mu and r.mu together; read under either.
	pid   int    // 0 until forked
	start uint64 // start time in clock ticks since boot

	// Guarded by r.mu.
	starting bool // Start has not returned: the exit is Start's to report
	exited   bool
	code     int
}

// New returns a Runtime keeping per-container state under dir/<id>/. onExit,
// which may be nil, is called once for every container process that ends:
// with its exit status, 128+signal when a signal killed it, or -1 for an
// adopted process. It runs on the process-wide reaper goroutine, so it must
// not block; it may be called before Start has returned for a command that
// exits at once.
func New(dir string, log *slog.Logger, onExit func(id string, exitCode int)) (*Runtime, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create runtime state directory: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	startReaper()
	return &Runtime{dir: dir, log: log, onExit: onExit, procs: make(map[string]*proc)}, nil
}

// LogPath is the file that collects the container's stdout and stderr.
func (r *Runtime) LogPath(id string) string { return filepath.Join(r.dir, id, "log") }

// WriteFiles rewrites the container's hosts and resolv.conf in place, keeping
// their inodes so that the running container's bind mounts show the new
// contents. A nil slice leaves that file alone.
func (r *Runtime) WriteFiles(id string, hosts, resolv []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"hosts", hosts}, {"resolv.conf", resolv}} {
		if f.data == nil {
			continue
		}
		if err := rewrite(filepath.Join(r.dir, id, f.name), f.data); err != nil {
			return fmt.Errorf("container %s: rewrite %s: %w", id, f.name, err)
		}
	}
	return nil
}

// rewrite replaces a file's contents without replacing the file. It writes
// before truncating so a reader never sees it empty.
func rewrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	return errors.Join(err, f.Close())
}

// Prune removes the state directories of containers not in keep (removed
// while knitd was down).
func (r *Runtime) Prune(keep map[string]bool) error {
	dirs, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list container state in %s: %w", r.dir, err)
	}
	var errs []error
	for _, e := range dirs {
		if e.IsDir() && !keep[e.Name()] {
			r.log.Info("removing state of a removed container", "id", e.Name())
			errs = append(errs, r.Remove(e.Name()))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes the container's state directory, log included. The process
// must be gone; a container that was never started or is already removed is
// fine.
func (r *Runtime) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	r.mu.Lock()
	p := r.procs[id]
	r.mu.Unlock()
	pid, alive := r.recorded(id)
	if p != nil {
		pid, alive = p.pid, true
	}
	if alive {
		return fmt.Errorf("container %s: remove: process %d is still running; stop it first", id, pid)
	}
	if err := os.RemoveAll(filepath.Join(r.dir, id)); err != nil {
		return fmt.Errorf("container %s: remove state directory: %w", id, err)
	}
	return nil
}

// NsenterPath is util-linux nsenter, which ExecArgs runs.
const NsenterPath = "/usr/bin/nsenter"

// ExecArgs returns the argv that runs cmd inside the namespaces of container
// process pid (network, UTS, mount), for `knit exec`. Joining a mount
// namespace needs a single-threaded process, hence nsenter rather than Go.
func ExecArgs(pid int, cmd []string) []string {
	args := []string{NsenterPath, "--target", strconv.Itoa(pid), "--net", "--uts", "--mount", "--"}
	return append(args, cmd...)
}

// checkID refuses IDs that are not a single safe path element.
func checkID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' || strings.Trim(id, idChars) != "" {
		return fmt.Errorf("invalid container ID %q: want 1-128 letters, digits, '-', '_' or '.', not starting with '.'", id)
	}
	return nil
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

// hostnameFor is the spec's hostname or the ID's first 12 characters.
func hostnameFor(spec Spec) string {
	if spec.Hostname != "" {
		return spec.Hostname
	}
	return spec.ID[:min(12, len(spec.ID))]
}

// containerEnv is the command's environment: defaults overridden by extra,
// one entry per key, in first-seen order.
func containerEnv(hostname string, extra []string) []string {
	env := append([]string{"PATH=" + defaultPath, "HOME=/root", "HOSTNAME=" + hostname}, extra...)
	index := make(map[string]int, len(env))
	out := env[:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
