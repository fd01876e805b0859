package runner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestMain lets Start re-execute this test binary as the container helper.
// Note: no test here may use os/exec, whose Wait would race with the reaper.
func TestMain(m *testing.M) {
	runner.InitMain()
	os.Exit(m.Run())
}

// recorder collects onExit reports.
type recorder struct {
	mu  sync.Mutex
	chs map[string]chan int
}

func (rec *recorder) ch(id string) chan int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.chs == nil {
		rec.chs = make(map[string]chan int)
	}
	if rec.chs[id] == nil {
		rec.chs[id] = make(chan int, 4)
	}
	return rec.chs[id]
}

func (rec *recorder) onExit(id string, code int) { rec.ch(id) <- code }

// wait returns the exit code reported for id.
func (rec *recorder) wait(t *testing.T, id string) int {
	t.Helper()
	select {
	case code := <-rec.ch(id):
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("container %s: no exit reported within 10s", id)
		return 0
	}
}

// none fails if id reports an exit within d.
func (rec *recorder) none(t *testing.T, id string, d time.Duration) {
	t.Helper()
	select {
	case code := <-rec.ch(id):
		t.Errorf("container %s: unexpected exit report %d", id, code)
	case <-time.After(d):
	}
}

// newRuntime returns a Runtime on a fresh directory and checks, when the test
// ends, that no child process is left.
func newRuntime(t testing.TB) (*runner.Runtime, *recorder, string) {
	t.Helper()
	nstest.RequireRoot(t)
	dir := t.TempDir()
	rec := &recorder{}
	r, err := runner.New(dir, nil, rec.onExit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { noChildren(t) })
	return r, rec, dir
}

// start starts spec and stops it when the test ends.
func start(t testing.TB, r *runner.Runtime, spec runner.Spec) int {
	t.Helper()
	pid, err := r.Start(spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(spec.ID, 0); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return pid
}

// noChildren fails if this process has a child or a container session left.
func noChildren(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := children()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("child processes left: %v", left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// children lists live processes whose parent is this process.
func children() []int {
	var pids []int
	self := os.Getpid()
	forEachProc(func(pid int, state byte, ppid, _ int) {
		if ppid == self && state != 'Z' {
			pids = append(pids, pid)
		}
	})
	return pids
}

// noSession fails unless every process of session sid is gone within 5s.
func noSession(t *testing.T, sid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(sessionMembers(sid)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("container processes left: %v", sessionMembers(sid))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionMembers lists live processes in session sid.
func sessionMembers(sid int) []int {
	var pids []int
	forEachProc(func(pid int, state byte, _, session int) {
		if session == sid && state != 'Z' {
			pids = append(pids, pid)
		}
	})
	return pids
}

func forEachProc(fn func(pid int, state byte, ppid, session int)) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		ppid, _ := strconv.Atoi(f[1])
		session, _ := strconv.Atoi(f[3])
		fn(pid, f[0][0], ppid, session)
	}
}

// waitLog waits until the container's log holds want and returns the log.
func waitLog(t *testing.T, r *runner.Runtime, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(r.LogPath(id))
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: log never showed %q; log:\n%s", id, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sleeper(id string) runner.Spec {
	return runner.Spec{ID: id, Command: []string{"sleep", "1000"}}
}

func procPath(pid int, rest string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), rest)
}
