package runner_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/runner"
)

func TestExitCodes(t *testing.T) {
	r, rec, _ := newRuntime(t)
	for id, tc := range map[string]struct {
		cmd  string
		want int
	}{
		"0a": {"true", 0},
		"0b": {"exit 3", 3},
		"0c": {"sleep 0.05; exit 42", 42},
		"0d": {"kill -KILL $$", 137},
		"0e": {"kill -TERM $$", 143},
	} {
		start(t, r, runner.Spec{ID: id, Command: []string{"sh", "-c", tc.cmd}})
		if got := rec.wait(t, id); got != tc.want {
			t.Errorf("%q: exit code %d, want %d", tc.cmd, got, tc.want)
		}
	}
	start(t, r, sleeper("0f"))
	if err := r.Kill("0f"); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, "0f"); got != 137 {
		t.Errorf("Kill: exit code %d, want 137", got)
	}
	if err := r.Kill("0f"); err != nil {
		t.Errorf("Kill of a dead container: %v", err)
	}
	if err := r.Stop("0f", time.Second); err != nil {
		t.Errorf("Stop of a dead container: %v", err)
	}
	rec.none(t, "0f", 100*time.Millisecond)
}

func TestStopGrace(t *testing.T) {
	r, rec, _ := newRuntime(t)
	spec := runner.Spec{ID: "5a", Command: []string{"sh", "-c", `trap "" TERM; echo ready; sleep 1000; echo survived`}}
	pid := start(t, r, spec)
	waitLog(t, r, spec.ID, "ready")
	const grace = 300 * time.Millisecond
	t0 := time.Now()
	if err := r.Stop(spec.ID, grace); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < grace || took > 3*time.Second {
		t.Errorf("Stop took %v, want a bit over %v", took, grace)
	}
	if code := rec.wait(t, spec.ID); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
	noSession(t, pid)

	// A process that honours SIGTERM stops at once.
	start(t, r, sleeper("5b"))
	t0 = time.Now()
	if err := r.Stop("5b", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Stop of a SIGTERM-honouring process took %v", took)
	}
	if code := rec.wait(t, "5b"); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// When the main process exits, what it left running in its group goes too.
func TestGroupKilledOnExit(t *testing.T) {
	r, rec, _ := newRuntime(t)
	pid := start(t, r, runner.Spec{ID: "6a", Command: []string{"sh", "-c", `sleep 1000 & echo "bg $!"; exit 5`}})
	if code := rec.wait(t, "6a"); code != 5 {
		t.Fatalf("exit code %d, want 5", code)
	}
	waitLog(t, r, "6a", "bg ")
	noSession(t, pid) // the background sleep is in the container's session
}

// A daemon restart: runtime B on A's directory takes the process over.
func TestAdopt(t *testing.T) {
	a, recA, dir := newRuntime(t)
	pid := start(t, a, sleeper("ad01"))
	recB := &recorder{}
	b, err := runner.New(dir, nil, recB.onExit)
	if err != nil {
		t.Fatal(err)
	}
	if got, alive := b.Adopt("ad01"); got != pid || !alive {
		t.Fatalf("Adopt = %d, %v; want %d, true", got, alive, pid)
	}
	if err := b.Remove("ad01"); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Remove of a running container = %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := recB.wait(t, "ad01"); code != -1 {
		t.Errorf("adopted exit code %d, want -1", code)
	}
	if code := recA.wait(t, "ad01"); code != 137 {
		t.Errorf("starter's exit code %d, want 137", code)
	}
	if _, alive := b.Adopt("ad01"); alive {
		t.Error("Adopt of a dead container reports it alive")
	}
	if err := b.Remove("ad01"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ad01")); !os.IsNotExist(err) {
		t.Errorf("state directory left after Remove: %v", err)
	}
	if err := b.Remove("ad01"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, alive := b.Adopt("never-started"); alive {
		t.Error("Adopt of an unknown container reports it alive")
	}
}

// A reused PID (the recorded start time differs) is not adopted.
func TestAdoptReusedPID(t *testing.T) {
	a, _, dir := newRuntime(t)
	pid := start(t, a, sleeper("ad02"))
	b, _ := runner.New(dir, nil, nil)
	pidFile := filepath.Join(dir, "ad02", "pid")
	good := readFile(t, pidFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+" 12345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, alive := b.Adopt("ad02"); alive {
		t.Error("adopted a process with another start time")
	}
	if err := os.WriteFile(pidFile, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, alive := b.Adopt("ad02"); !alive {
		t.Error("did not adopt with the right start time")
	}
}

// Stop from a restarted daemon adopts the process, escalates to SIGKILL and
// waits for it.
func TestStopAdopted(t *testing.T) {
	a, _, dir := newRuntime(t)
	spec := runner.Spec{ID: "ad03", Command: []string{"sh", "-c", `trap "" TERM; echo ready; sleep 1000`}}
	pid := start(t, a, spec)
	waitLog(t, a, spec.ID, "ready")
	recB := &recorder{}
	b, _ := runner.New(dir, nil, recB.onExit)
	if err := b.Stop(spec.ID, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if code := recB.wait(t, spec.ID); code != -1 {
		t.Errorf("exit code %d, want -1", code)
	}
	noSession(t, pid)
}
