package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// initArg in os.Args[1] makes InitMain act: argv is
	// [initArgv0, initArg, stateDir, command...].
	initArg   = "__knit_init"
	initArgv0 = "knit-init"
	// statusFD is the helper's end of the status pipe.
	statusFD = 3
	// startTimeout bounds how long the helper may take to exec the command.
	startTimeout = 30 * time.Second
)

// ExecError is Start's error when the helper could not run the command. Code
// is what a shell would exit with: 127 not found, 126 not executable, 125 the
// container could not be set up.
type ExecError struct {
	ID   string
	Code int
	Msg  string
}

func (e *ExecError) Error() string { return "container " + e.ID + ": " + e.Msg }

// Start runs spec.Command as a container and returns its PID once the
// command is executing. The state files are (re)written first; the log is
// appended to. If the command cannot be executed, Start returns an
// *ExecError, the helper is already reaped, onExit is not called and the
// state directory (with the log) stays for the caller to Remove.
func (r *Runtime) Start(spec Spec) (int, error) {
	if err := checkID(spec.ID); err != nil {
		return 0, err
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return 0, fmt.Errorf("container %s: empty command", spec.ID)
	}
	if h := hostnameFor(spec); len(h) > 64 || strings.ContainsAny(h, " \t\n\x00/") {
		return 0, fmt.Errorf("container %s: invalid hostname %q: want at most 64 characters, no spaces or '/'", spec.ID, h)
	}
	p := &proc{r: r, id: spec.ID, starting: true, done: make(chan struct{})}
	r.mu.Lock()
	if q := r.procs[spec.ID]; q != nil {
		r.mu.Unlock()
		return 0, fmt.Errorf("container %s: already running (pid %d)", spec.ID, q.pid)
	}
	r.procs[spec.ID] = p
	r.mu.Unlock()

	status, err := r.spawn(p, spec)
	if err != nil {
		if p.pid == 0 {
			r.finish(p, -1) // never forked: just release the ID
		} else {
			<-p.done // killed by spawn; the reaper releases the ID
		}
		return 0, fmt.Errorf("container %s: %w", spec.ID, err)
	}
	if err := r.awaitExec(p, status); err != nil {
		_ = os.Remove(filepath.Join(r.dir, spec.ID, "pid"))
		return 0, err
	}
	r.mu.Lock()
	p.starting = false
	exited, code := p.exited, p.code
	r.mu.Unlock()
	if exited && r.onExit != nil {
		go r.onExit(spec.ID, code) // the reaper skipped it while starting
	}
	r.log.Debug("container started", "id", spec.ID, "pid", p.pid)
	return p.pid, nil
}

// spawn writes the state files and forks the helper. It returns the read
// end of the status pipe.
func (r *Runtime) spawn(p *proc, spec Spec) (*os.File, error) {
	dir := filepath.Join(r.dir, spec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	hostname := hostnameFor(spec)
	for name, data := range map[string][]byte{
		"hosts": spec.Hosts, "resolv.conf": spec.Resolv, "hostname": []byte(hostname + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create status pipe: %w", err)
	}
	defer unix.Close(fds[1])
	// Non-blocking, so the read waits in the poller, not on a thread.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("create status pipe: %w", err)
	}
	status := os.NewFile(uintptr(fds[0]), "status")

	argv := append([]string{initArgv0, initArg, dir}, spec.Command...)
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   containerEnv(hostname, spec.Env),
		Files: []uintptr{devNull.Fd(), logFile.Fd(), logFile.Fd(), uintptr(fds[1])},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Cloneflags: unix.CLONE_NEWUTS | unix.CLONE_NEWNS,
		},
	}
	// Under the reaper's lock, so at most one thread at a time is locked
	// into a namespace for a fork.
	err = reaper.fork(p, func() (int, error) {
		return forkIn(spec.NetNSPath, func() (int, error) {
			pid, err := syscall.ForkExec("/proc/self/exe", argv, attr)
			if err != nil {
				return 0, fmt.Errorf("start helper: %w", err)
			}
			return pid, nil
		})
	})
	if err == nil {
		if err = writePIDFile(filepath.Join(dir, "pid"), p.pid, p.start); err != nil {
			_ = r.signal(p, unix.SIGKILL)
		}
	}
	if err != nil {
		status.Close()
		return nil, err
	}
	return status, nil
}

// forkIn runs fork on a fresh goroutine, on an OS thread that has entered the
// network namespace at path ("" = the daemon's own, which every unlocked
// thread is in). The child inherits the thread's namespace. A thread that
// cannot return to its namespace stays locked and dies with the goroutine.
func forkIn(path string, fork func() (int, error)) (int, error) {
	target := -1
	if path != "" {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open network namespace: %w", err)
		}
		defer unix.Close(fd)
		target = fd
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		if target < 0 {
			pid, err := fork()
			done <- result{pid, err}
			return
		}
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{0, fmt.Errorf("open current network namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{0, fmt.Errorf("enter network namespace %s: %w", path, err)}
			return
		}
		pid, err := fork()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{pid, err}
	}()
	res := <-done
	return res.pid, res.err
}

// awaitExec reads the status pipe until the helper has exec'd the command
// (end of file, no data) or reported why it could not (then it waits for the
// helper to be reaped).
func (r *Runtime) awaitExec(p *proc, status *os.File) error {
	defer status.Close()
	_ = status.SetReadDeadline(time.Now().Add(startTimeout))
	msg, err := io.ReadAll(status)
	if err == nil && len(msg) == 0 {
		return nil
	}
	_ = r.signal(p, unix.SIGKILL) // it exits by itself; make sure
	<-p.done
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("container %s: helper did not exec the command within %s", p.id, startTimeout)
		}
		return fmt.Errorf("container %s: read helper status: %w", p.id, err)
	}
	code, text, _ := strings.Cut(string(msg), " ")
	e := &ExecError{ID: p.id, Code: 125, Msg: text}
	if c, err := strconv.Atoi(code); err == nil {
		e.Code = c
	}
	return e
}
