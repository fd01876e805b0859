package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often adopted processes are checked for life.
const pollInterval = 500 * time.Millisecond

// Adopt takes over a container started by an earlier daemon (or by another
// Runtime on the same directory): if <dir>/<id>/pid names a live process
// with the recorded start time, Adopt watches it, onExit(id, -1) fires when
// it dies, and Stop and Kill work on it. A container this Runtime already
// watches is reported as it is (pid 0 while it is starting).
func (r *Runtime) Adopt(id string) (pid int, alive bool) {
	if checkID(id) != nil {
		return 0, false
	}
	r.mu.Lock()
	if p := r.procs[id]; p != nil {
		r.mu.Unlock()
		return p.pid, true
	}
	r.mu.Unlock()
	pid, start, err := readPIDFile(r.pidPath(id))
	if err != nil || !isAlive(pid, start) {
		return 0, false
	}
	p := &proc{r: r, id: id, adopted: true, pid: pid, start: start, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.procs[id]; q != nil {
		return q.pid, true
	}
	r.procs[id] = p
	if !r.polling {
		r.polling = true
		go r.poll()
	}
	r.log.Info("adopted container process", "id", id, "pid", pid)
	return pid, true
}

// poll checks the adopted processes every pollInterval and finishes the dead
// ones. It is the Runtime's only goroutine and ends when none is left.
func (r *Runtime) poll() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var watch []*proc
	for range t.C {
		watch = watch[:0]
		r.mu.Lock()
		for _, p := range r.procs {
			if p.adopted {
				watch = append(watch, p)
			}
		}
		if len(watch) == 0 {
			r.polling = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		for _, p := range watch {
			if !isAlive(p.pid, p.start) {
				r.log.Info("adopted container process exited", "id", p.id, "pid", p.pid)
				r.finish(p, -1)
			}
		}
	}
}

// recorded reads the container's pid file and reports whether that process
// is alive, without adopting it.
func (r *Runtime) recorded(id string) (pid int, alive bool) {
	pid, start, err := readPIDFile(r.pidPath(id))
	return pid, err == nil && isAlive(pid, start)
}

func (r *Runtime) pidPath(id string) string { return filepath.Join(r.dir, id, "pid") }

// isAlive reports whether pid is a live (not zombie) process that started at
// start: a PID reused by another process has another start time.
func isAlive(pid int, start uint64) bool {
	got, state, err := procStat(pid)
	return err == nil && got == start && state != 'Z' && state != 'X'
}

// procStat reads a process's start time (clock ticks since boot) and state
// from /proc/<pid>/stat, without allocating a buffer.
func procStat(pid int) (start uint64, state byte, err error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(fd)
	var buf [1024]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return 0, 0, err
	}
	return parseStat(buf[:n])
}

// parseStat extracts fields 3 (state) and 22 (starttime) of a
// /proc/<pid>/stat line. Field 2, the command name, may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStat(b []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat: no command name")
	}
	rest := b[i+1:]
	for field := 3; ; field++ {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			return 0, 0, fmt.Errorf("malformed /proc stat: %d fields", field-1)
		}
		switch field {
		case 3:
			state = rest[0]
		case 22:
			start, err = strconv.ParseUint(string(bytes.TrimSpace(rest[:end])), 10, 64)
			return start, state, err
		}
		rest = rest[end:]
	}
}

// writePIDFile records "pid starttime" atomically.
func writePIDFile(path string, pid int, start uint64) error {
	tmp := path + ".tmp"
	data := strconv.Itoa(pid) + " " + strconv.FormatUint(start, 10) + "\n"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

func readPIDFile(path string) (pid int, start uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("malformed pid file %s", path)
	}
	if pid, err = strconv.Atoi(f[0]); err == nil && pid <= 0 {
		err = fmt.Errorf("malformed pid file %s: pid %d", path, pid)
	}
	if err == nil {
		start, err = strconv.ParseUint(f[1], 10, 64)
	}
	return pid, start, err
}
