package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/bench/internal/benchns"
	"github.com/knit-net/knit/internal/client"
	"github.com/knit-net/knit/internal/netns"
)

// host is the throwaway host namespace with knitd running in it.
type host struct {
	cfg                   config
	nsName, nsPath        string
	nsCreated             bool        // whatever is at nsPath is this run's
	ns                    *benchns.NS // the host namespace, once made
	dir, runDir, stateDir string
	socket, logPath       string
	logFile               *os.File
	cmd                   *exec.Cmd
	exited                chan struct{} // closed when knitd has exited
	pid                   int           // knitd's own PID, checked
	mu                    sync.Mutex
	pids                  map[int]bool // container PIDs seen, for the last resort
}

// setup makes the temporary directory and the host namespace.
func (h *host) setup() error {
	dir, err := os.MkdirTemp("", "knit-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	h.dir = dir
	h.runDir, h.stateDir = filepath.Join(dir, "run"), filepath.Join(dir, "state")
	h.socket, h.logPath = filepath.Join(dir, "knit.sock"), filepath.Join(dir, "knitd.log")
	h.nsName = fmt.Sprintf("kb-host-%d", os.Getpid())
	h.nsPath = filepath.Join(benchns.Dir, h.nsName)
	if _, err := os.Stat(h.nsPath); err == nil {
		return fmt.Errorf("namespace %s already exists: a run with this PID did not clean up; delete it with ip netns del %s", h.nsName, h.nsName)
	}
	h.nsCreated = true // from here on, whatever exists at nsPath is ours
	if h.ns, err = benchns.Create(h.nsName); err != nil {
		if errors.Is(err, fs.ErrExist) { // made by someone else since the check
			h.nsCreated = false
		}
		return err
	}
	for _, kv := range h.cfg.sysctls {
		k, v, _ := strings.Cut(kv, "=")
		if err := h.ns.Sysctl(strings.ReplaceAll(k, ".", "/"), v); err != nil {
			return fmt.Errorf("-host-sysctl %s: %w", kv, err)
		}
	}
	return nil
}

// startKnitd runs knitd inside the host namespace, entering only its network
// namespace as the e2e harness does, and waits until the API answers.
func (h *host) startKnitd(ctx context.Context) error {
	f, err := os.Create(h.logPath)
	if err != nil {
		return fmt.Errorf("knitd log: %w", err)
	}
	h.logFile = f
	cmd := exec.Command("nsenter", "--net="+h.nsPath, h.cfg.knitd,
		"--state-dir", h.stateDir, "--run-dir", h.runDir, "--socket", h.socket,
		"--address-pool", "base=10.128.0.0/9,size=16")
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C on the terminal reaches only the
	// benchmark, which then removes the containers through knitd first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start knitd: %w", err)
	}
	h.cmd, h.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(h.exited) }()

	c := client.New(h.socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Do(ctx, http.MethodGet, "/v1/networks", nil, nil)
		if err == nil {
			break
		}
		select {
		case <-h.exited:
			return fmt.Errorf("knitd exited before serving (%s)", cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("knitd did not answer on %s within 30s: %w", h.socket, err)
		}
	}
	h.pid, err = knitdPID(cmd.Process.Pid, h.cfg.knitd, h.nsPath)
	return err
}

// knitdPID returns the PID running the knitd binary in namespace nsPath:
// nsenter execs its command in place, so that is normally pid itself; a
// child of pid is accepted too, should an nsenter ever fork.
func knitdPID(pid int, knitd, nsPath string) (int, error) {
	want, err := sameFile(knitd)
	if err != nil {
		return 0, err
	}
	candidates := []int{pid}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			var child int
			if _, err := fmt.Sscan(f, &child); err == nil {
				candidates = append(candidates, child)
			}
		}
	}
	for _, p := range candidates {
		exe, err := sameFile(fmt.Sprintf("/proc/%d/exe", p))
		if err != nil || exe != want {
			continue
		}
		ns, err1 := sameFile(fmt.Sprintf("/proc/%d/ns/net", p))
		hostNS, err2 := sameFile(nsPath)
		if err1 != nil || err2 != nil || ns != hostNS {
			return 0, fmt.Errorf("knitd (pid %d) is not in namespace %s", p, nsPath)
		}
		return p, nil
	}
	return 0, fmt.Errorf("no process runs %s under nsenter (pid %d)", knitd, pid)
}

// sameFile identifies a file (following magic links such as /proc/*/exe).
func sameFile(path string) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return [2]uint64{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}

// notePID remembers a container's PID for killLeftovers.
func (h *host) notePID(pid int) {
	if pid <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pids == nil {
		h.pids = map[int]bool{}
	}
	h.pids[pid] = true
}

// netnsPath is a container's namespace file.
func (h *host) netnsPath(id string) string { return filepath.Join(h.runDir, "netns", id) }

// cleanup removes everything setup and the run made, in order: containers
// through the API, knitd, container processes knitd did not end, namespace
// mounts, the host namespace, the temporary directory.
func (h *host) cleanup() error {
	var errs []error
	if h.cmd != nil && !h.done() {
		if err := removeAll(h); err != nil {
			errs = append(errs, err)
		}
		if err := h.stopKnitd(); err != nil {
			errs = append(errs, err)
		}
	}
	h.killLeftovers()
	if h.runDir != "" {
		dir := filepath.Join(h.runDir, "netns")
		files, _ := netns.List(dir)
		for _, f := range files {
			if err := netns.Delete(filepath.Join(dir, f)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
		}
	}
	if h.nsCreated {
		var err error
		if h.ns != nil {
			err = h.ns.Close()
		} else { // a half-made one, if anything
			err = netns.Delete(h.nsPath)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", h.nsName, err))
		}
	}
	if h.logFile != nil {
		h.logFile.Close()
	}
	if h.dir != "" {
		if err := os.RemoveAll(h.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (h *host) done() bool {
	select {
	case <-h.exited:
		return true
	default:
		return false
	}
}

// stopKnitd sends SIGTERM and waits (SIGKILL after 15 s).
func (h *host) stopKnitd() error {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		return errors.New("knitd did not stop within 15s of SIGTERM; killed it")
	}
}

// killLeftovers kills container processes that outlived knitd, which happens
// only when removing the containers failed. A PID counts only while it still
// runs the benchmark's command.
func (h *host) killLeftovers() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for pid := range h.pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && string(b) == strings.Join(containerCmd, "\x00")+"\x00" {
			fmt.Fprintf(os.Stderr, "attach: killing leftover container process %d\n", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// printLogTail shows the end of knitd's log after a failure.
func (h *host) printLogTail(w io.Writer, n int) {
	f, err := os.Open(h.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	fmt.Fprintf(w, "--- last %d lines of knitd's log ---\n%s\n---\n", len(lines), strings.Join(lines, "\n"))
}
