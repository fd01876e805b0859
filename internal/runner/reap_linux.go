package runner

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reaper is the process-wide reaper of container processes.
//
// Its mutex is held across each fork (until the child is in children) and
// across each wait4, so a child can never be reaped before it is known; and
// across every signal sent to a child, so the PID signalled is still ours
// (an unreaped child's PID cannot be reused).
var reaper reaperState

type reaperState struct {
	once     sync.Once
	mu       sync.Mutex
	children map[int]*proc
}

// killTimeout bounds the wait for a process to vanish after SIGKILL.
const killTimeout = 10 * time.Second

func startReaper() {
	reaper.once.Do(func() {
		reaper.children = make(map[int]*proc)
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, unix.SIGCHLD)
		go func() {
			for range sigc {
				for {
					p, code, more := reapOne()
					if !more {
						break
					}
					if p != nil {
						p.r.finish(p, code)
					}
				}
			}
		}()
	})
}

// reapOne reaps one exited child, if any. more reports whether to call it
// again. Children that are not containers are reaped and dropped.
func reapOne() (p *proc, code int, more bool) {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	var ws unix.WaitStatus
	pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
	if errors.Is(err, unix.EINTR) {
		return nil, 0, true
	}
	if err != nil || pid <= 0 {
		return nil, 0, false
	}
	p = reaper.children[pid]
	if p == nil {
		return nil, 0, true
	}
	delete(reaper.children, pid)
	// The rest of the container's process group goes with it. Members still
	// alive keep the group's ID (= pid) from being reused.
	_ = unix.Kill(-pid, unix.SIGKILL)
	return p, exitCode(ws), true
}

// exitCode is the shell's view of a wait status: the exit status, or
// 128+signal.
func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// fork runs fork and registers the child, with its start time, before the
// reaper can see it exit.
func (rp *reaperState) fork(p *proc, fork func() (int, error)) error {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return err
	}
	rp.children[pid] = p
	// Unreaped, so /proc/<pid> is there even if the helper already died.
	start, _, err := procStat(pid)
	p.r.mu.Lock()
	p.pid, p.start = pid, start
	p.r.mu.Unlock()
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return fmt.Errorf("read start time of helper %d: %w", pid, err)
	}
	return nil
}

// finish records that p is gone, wakes its waiters and reports it unless
// Start is still running (Start reports then).
func (r *Runtime) finish(p *proc, code int) {
	r.mu.Lock()
	if r.procs[p.id] == p {
		delete(r.procs, p.id)
	}
	p.exited, p.code = true, code
	report := !p.starting && r.onExit != nil
	r.mu.Unlock()
	close(p.done)
	if report {
		r.onExit(p.id, code)
	}
}

// signal sends sig to p's process group (to p alone if it has left the
// group), unless p is already gone.
func (r *Runtime) signal(p *proc, sig unix.Signal) error {
	if p.adopted {
		// Not our child: the start time check makes a reused PID unlikely
		// to be hit, though not impossible in the instant between the two.
		if !isAlive(p.pid, p.start) {
			return nil
		}
		return killGroup(p.pid, sig)
	}
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if reaper.children[p.pid] != p {
		return nil
	}
	return killGroup(p.pid, sig)
}

func killGroup(pid int, sig unix.Signal) error {
	err := unix.Kill(-pid, sig)
	if errors.Is(err, unix.ESRCH) {
		err = unix.Kill(pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// Stop sends SIGTERM to the container's process group, SIGKILL after grace,
// and returns once the main process is gone. A container that is not
// running is not an error. A container left by a previous daemon is adopted
// first.
func (r *Runtime) Stop(id string, grace time.Duration) error {
	p, err := r.running(id)
	if p == nil {
		return err
	}
	if err := r.signal(p, unix.SIGTERM); err != nil {
		return fmt.Errorf("container %s: stop: send SIGTERM to %d: %w", id, p.pid, err)
	}
	if waitDone(p.done, grace) {
		return nil
	}
	r.log.Info("container ignored SIGTERM; killing", "id", id, "pid", p.pid, "grace", grace)
	if err := r.signal(p, unix.SIGKILL); err != nil {
		return fmt.Errorf("container %s: stop: send SIGKILL to %d: %w", id, p.pid, err)
	}
	if waitDone(p.done, killTimeout) {
		return nil
	}
	return fmt.Errorf("container %s: stop: process %d still there %s after SIGKILL", id, p.pid, killTimeout)
}

// Kill sends SIGKILL to the container's process group and returns without
// waiting (onExit reports the end). A container that is not running is not
// an error.
func (r *Runtime) Kill(id string) error {
	p, err := r.running(id)
	if p == nil {
		return err
	}
	if err := r.signal(p, unix.SIGKILL); err != nil {
		return fmt.Errorf("container %s: kill %d: %w", id, p.pid, err)
	}
	return nil
}

// running returns the container's live process, adopting it if a previous
// daemon started it; nil if there is none.
func (r *Runtime) running(id string) (*proc, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if !r.tracked(id) {
		if _, alive := r.Adopt(id); !alive {
			return nil, nil
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[id]
	if p != nil && p.pid == 0 {
		return nil, fmt.Errorf("container %s: still starting; try again", id)
	}
	return p, nil
}

func (r *Runtime) tracked(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[id] != nil
}

// waitDone reports whether done closed within d.
func waitDone(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
