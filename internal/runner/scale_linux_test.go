package runner_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

func TestConcurrentStarts(t *testing.T) {
	r, rec, _ := newRuntime(t)
	ns := nstest.New(t, "rt")
	const n = 100
	before := heapAndThreads()
	pids := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			spec := sleeper(fmt.Sprintf("cc%03d", i))
			if i%2 == 0 {
				spec.NetNSPath = ns.Path
			}
			pids[i], errs[i] = r.Start(spec)
		})
	}
	wg.Wait()
	// Blocking file syscalls may add threads, but not one per container
	// (as a locked thread waiting for its turn to fork would).
	if after := heapAndThreads(); after.threads > before.threads+n/2 {
		t.Errorf("threads grew from %d to %d", before.threads, after.threads)
	}
	seen := map[int]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("start %d: %v", i, err)
		} else if seen[pids[i]] {
			t.Errorf("pid %d returned twice", pids[i])
		}
		seen[pids[i]] = true
	}
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("cc%03d", i)
			if err := r.Stop(id, 5*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] == nil {
			if code := rec.wait(t, fmt.Sprintf("cc%03d", i)); code != 143 {
				t.Errorf("container %d: exit code %d, want 143", i, code)
			}
		}
	}
}

// BenchmarkStart measures Start of a sleeping container in a network
// namespace, with the median and 90th percentile per start.
func BenchmarkStart(b *testing.B) {
	r, _, _ := newRuntime(b)
	ns := nstest.New(b, "rt")
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		spec := sleeper(fmt.Sprintf("lat%04d", i))
		spec.NetNSPath = ns.Path
		t0 := time.Now()
		start(b, r, spec)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10])/1e6, "p90-ms")
}

func TestMemoryPerContainer(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	r, _, _ := newRuntime(t)
	ns := nstest.New(t, "rt")
	before := heapAndThreads()
	goroutines := runtime.NumGoroutine()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%064x", i) // full-length hex IDs, as knit's
		spec := sleeper(ids[i])
		spec.NetNSPath = ns.Path
		if _, err := r.Start(spec); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAndThreads()
	perContainer := (after.heap - before.heap) / uint64(n)
	t.Logf("%d containers: %d bytes of heap each; goroutines %d -> %d; threads %d -> %d",
		n, perContainer, goroutines, runtime.NumGoroutine(), before.threads, after.threads)
	if perContainer > 10<<10 {
		t.Errorf("%d bytes of heap per container, want at most 10 KiB", perContainer)
	}
	if g := runtime.NumGoroutine(); g > goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", goroutines, g)
	}
	if after.threads > before.threads+10 {
		t.Errorf("threads grew from %d to %d", before.threads, after.threads)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r.Stop(id, 5*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

type usage struct{ heap, threads uint64 }

func heapAndThreads() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tasks, _ := os.ReadDir("/proc/self/task")
	return usage{ms.HeapAlloc, uint64(len(tasks))}
}
