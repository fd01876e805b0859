package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
)

// containerCmd is what every benchmark container runs.
var containerCmd = []string{"sleep", "3600"}

const (
	netA = "bench-a" // where the containers live
	netB = "bench-b" // what they are connected to and disconnected from
)

// bench drives one run against a started knitd.
type bench struct {
	cfg    config
	h      *host
	c      *client.Client
	ctrs   []v1.Container // running, in creation order
	cursor int            // next container for a latency sample
}

func (b *bench) run(ctx context.Context) (*result, error) {
	res := &result{Time: time.Now().UTC().Format(time.RFC3339), Knitd: b.cfg.knitd, KnitdPID: b.h.pid,
		Parallel: b.cfg.parallel, Samples: b.cfg.samples, HostSysctls: b.cfg.sysctls, Anchor: b.cfg.anchor}
	var err error
	if res.MemStart, err = readMemory(b.h.pid); err != nil {
		return res, err
	}
	res.RSSStartKiB = res.MemStart.RSS
	for _, n := range []string{netA, netB} {
		if err := b.c.Do(ctx, http.MethodPost, "/v1/networks", &v1.NetworkCreate{Name: n}, nil); err != nil {
			return res, fmt.Errorf("create network %s: %w", n, err)
		}
	}
	if b.cfg.anchor {
		req := v1.ContainerCreate{Name: "kb-anchor", Command: containerCmd, Networks: []string{netB}}
		var c v1.Container
		if err := b.c.Do(ctx, http.MethodPost, "/v1/containers", &req, &c); err != nil {
			return res, fmt.Errorf("run kb-anchor: %w", err)
		}
		b.h.notePID(c.Status.Pid)
	}
	for _, size := range b.cfg.sizes {
		sr, err := b.measureSize(ctx, size, res.MemStart)
		if err != nil {
			return res, err
		}
		res.Sizes = append(res.Sizes, sr)
		fmt.Fprintf(os.Stderr, "attach: %d containers: attach p50 %.2f ms p99 %.2f ms, RSS %d KiB\n",
			size, sr.Attach.P50, sr.Attach.P99, sr.RSSKiB)
	}
	if res.Rate, err = b.attachRate(ctx); err != nil {
		return res, err
	}
	res.CLI, err = b.cliConnects(ctx)
	return res, err
}

// measureSize grows to size containers, reads knitd's memory and times the
// attach samples.
func (b *bench) measureSize(ctx context.Context, size int, start memory) (sizeResult, error) {
	sr := sizeResult{Containers: size}
	var err error
	if sr.Growth, err = b.grow(ctx, size); err != nil {
		return sr, err
	}
	if sr.Mem, err = readMemory(b.h.pid); err != nil {
		return sr, err
	}
	sr.RSSKiB = sr.Mem.RSS
	sr.KiBPerContainer = float64(sr.Mem.RSS-start.RSS) / float64(size)
	sr.AnonKiBPerContainer = float64(sr.Mem.Anon-start.Anon) / float64(size)
	raw, detach, verified, err := b.attachLatency(ctx)
	if err != nil {
		return sr, err
	}
	sr.Attach, sr.Detach, sr.Verified = summarize(raw), summarize(detach), verified
	for _, d := range raw {
		sr.AttachMS = append(sr.AttachMS, math.Round(ms(d)*1000)/1000)
	}
	sr.MemAfterAttach, err = readMemory(b.h.pid)
	return sr, err
}

// grow creates containers on bench-a with -parallel clients until target
// are running, timing every create.
func (b *bench) grow(ctx context.Context, target int) (phase, error) {
	first := len(b.ctrs)
	n := target - first
	created := make([]v1.Container, n)
	lat := make([]time.Duration, n)
	wall, err := parallel(ctx, n, b.cfg.parallel, func(ctx context.Context, i int) error {
		req := v1.ContainerCreate{Name: fmt.Sprintf("kb-%d", first+i), Command: containerCmd, Networks: []string{netA}}
		t0 := time.Now()
		err := b.c.Do(ctx, http.MethodPost, "/v1/containers", &req, &created[i])
		lat[i] = time.Since(t0)
		if err != nil {
			return fmt.Errorf("run %s: %w", req.Name, err)
		}
		b.h.notePID(created[i].Status.Pid)
		return nil
	})
	for _, c := range created {
		if c.ID != "" {
			b.ctrs = append(b.ctrs, c)
		}
	}
	if err != nil {
		return phase{}, fmt.Errorf("grow to %d containers: %w", target, err)
	}
	return newPhase(lat, wall), nil
}

// attachLatency times -samples connects to bench-b, one at a time, cycling
// through the running containers; each is disconnected again (timed apart,
// not part of the attach figures). The first is checked in the kernel right
// after the call returns.
func (b *bench) attachLatency(ctx context.Context) (lat, detach []time.Duration, verified string, err error) {
	lat = make([]time.Duration, 0, b.cfg.samples)
	for i := range b.cfg.samples {
		ctr := b.ctrs[b.cursor%len(b.ctrs)]
		b.cursor++
		t0 := time.Now()
		got, err := b.endpoint(ctx, ctr.Name, true)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return nil, nil, "", err
		}
		if i == 0 {
			if verified, err = verifyEndpoint(b.h.netnsPath(got.ID), got, netB); err != nil {
				return nil, nil, "", fmt.Errorf("connect %s returned before the kernel matched: %w", ctr.Name, err)
			}
		}
		t0 = time.Now()
		_, err = b.endpoint(ctx, ctr.Name, false)
		detach = append(detach, time.Since(t0))
		if err != nil {
			return nil, nil, "", err
		}
	}
	return lat, detach, verified, nil
}

// attachRate connects distinct containers to bench-b with -parallel clients
// and reports the wall-clock rate; then it disconnects them (untimed).
func (b *bench) attachRate(ctx context.Context) (*rateResult, error) {
	total := min(b.cfg.rateOps, len(b.ctrs))
	if total == 0 {
		return nil, nil
	}
	lat := make([]time.Duration, total)
	wall, err := parallel(ctx, total, b.cfg.parallel, func(ctx context.Context, i int) error {
		t0 := time.Now()
		_, err := b.endpoint(ctx, b.ctrs[i].Name, true)
		lat[i] = time.Since(t0)
		return err
	})
	_, derr := parallel(ctx, total, b.cfg.parallel, func(ctx context.Context, i int) error {
		_, err := b.disconnectForce(ctx, b.ctrs[i].Name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach rate: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("attach rate: disconnect: %w", derr)
	}
	return &rateResult{Containers: len(b.ctrs), Clients: b.cfg.parallel, phase: newPhase(lat, wall)}, nil
}

// cliConnects times `knit network connect` (process start included) at the
// largest size, for comparison with the API call.
func (b *bench) cliConnects(ctx context.Context) (*latency, error) {
	if b.cfg.cliSamples == 0 {
		return nil, nil
	}
	lat := make([]time.Duration, 0, b.cfg.cliSamples)
	for range b.cfg.cliSamples {
		ctr := b.ctrs[b.cursor%len(b.ctrs)]
		b.cursor++
		cmd := exec.CommandContext(ctx, b.cfg.knit, "--socket", b.h.socket, "network", "connect", netB, ctr.Name)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		lat = append(lat, time.Since(t0))
		if err != nil {
			return nil, fmt.Errorf("knit network connect %s %s: %w: %s", netB, ctr.Name, err, out)
		}
		if _, err := b.endpoint(ctx, ctr.Name, false); err != nil {
			return nil, err
		}
	}
	l := summarize(lat)
	return &l, nil
}

// endpoint connects (or disconnects) a container to bench-b.
func (b *bench) endpoint(ctx context.Context, name string, connect bool) (*v1.Container, error) {
	verb := "disconnect"
	if connect {
		verb = "connect"
	}
	var c v1.Container
	if err := b.c.Do(ctx, http.MethodPost, "/v1/networks/"+netB+"/"+verb, &v1.Connect{Container: name}, &c); err != nil {
		return nil, fmt.Errorf("%s %s to %s: %w", verb, name, netB, err)
	}
	return &c, nil
}

// disconnectForce disconnects a container that may not be connected.
func (b *bench) disconnectForce(ctx context.Context, name string) (*v1.Container, error) {
	var c v1.Container
	if err := b.c.Do(ctx, http.MethodPost, "/v1/networks/"+netB+"/disconnect", &v1.Connect{Container: name, Force: true}, &c); err != nil {
		return nil, fmt.Errorf("disconnect %s from %s: %w", name, netB, err)
	}
	return &c, nil
}

// removeAll removes every container through the API (rm -f), in parallel.
func removeAll(h *host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := client.New(h.socket)
	var cs []v1.Container
	if err := c.Do(ctx, http.MethodGet, "/v1/containers", nil, &cs); err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, ctr := range cs {
		h.notePID(ctr.Status.Pid)
	}
	if len(cs) > 0 {
		fmt.Fprintf(os.Stderr, "attach: removing %d containers\n", len(cs))
	}
	_, err := parallel(ctx, len(cs), max(h.cfg.parallel, 1), func(ctx context.Context, i int) error {
		if err := c.Do(ctx, http.MethodDelete, "/v1/containers/"+client.Esc(cs[i].Name)+"?force=true", nil, nil); err != nil {
			return fmt.Errorf("rm -f %s: %w", cs[i].Name, err)
		}
		return nil
	})
	return err
}

// parallel calls fn for 0..n-1 on `workers` goroutines, stops handing out
// work at the first error, and returns the wall time and that error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	t0 := time.Now()
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(t0)
	if first == nil && ctx.Err() != nil {
		first = context.Cause(ctx)
	}
	return wall, first
}
