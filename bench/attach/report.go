package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// latency summarizes call durations in milliseconds (nearest-rank
// percentiles: with 50 samples p99 is the maximum).
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// phase is a batch of calls made by parallel clients.
type phase struct {
	latency
	WallMS float64 `json:"wall_ms"`
	PerS   float64 `json:"ops_per_s"`
}

type sizeResult struct {
	Containers      int       `json:"containers"`
	Growth          phase     `json:"growth"` // the runs that brought the count to Containers
	Attach          latency   `json:"attach"`
	AttachMS        []float64 `json:"attach_samples_ms"` // in the order taken
	Detach          latency   `json:"detach"`            // the disconnect after each sample
	Verified        string    `json:"verified"`          // what the kernel showed after the first attach
	RSSKiB          int64     `json:"rss_kib"`           // knitd's VmRSS after growth
	Mem             memory    `json:"mem"`               // the same, with its parts
	MemAfterAttach  memory    `json:"mem_after_attach"`
	KiBPerContainer float64   `json:"kib_per_container"` // (RSS - RSS at start) / Containers
	// AnonKiBPerContainer counts only anonymous memory (heap, stacks).
	AnonKiBPerContainer float64 `json:"anon_kib_per_container"`
}

type rateResult struct {
	Containers int `json:"containers"`
	Clients    int `json:"clients"`
	phase
}

type target struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
	Limit string  `json:"limit"`
	Met   bool    `json:"met"`
}

type result struct {
	Time        string       `json:"time"`
	Knitd       string       `json:"knitd"`
	KnitdPID    int          `json:"knitd_pid"`
	Parallel    int          `json:"parallel"`
	Samples     int          `json:"samples"`
	HostSysctls []string     `json:"host_sysctls,omitempty"`
	Anchor      bool         `json:"anchor,omitempty"` // kb-anchor stayed on bench-b
	RSSStartKiB int64        `json:"rss_start_kib"`
	MemStart    memory       `json:"mem_start"`
	Sizes       []sizeResult `json:"sizes"`
	Rate        *rateResult  `json:"rate,omitempty"`
	CLI         *latency     `json:"cli_connect,omitempty"` // knit network connect, process start included
	Targets     []target     `json:"targets"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) float64 { return ms(s[max(int(math.Ceil(p*float64(len(s))))-1, 0)]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return latency{N: len(s), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum) / float64(len(s))}
}

func newPhase(ds []time.Duration, wall time.Duration) phase {
	p := phase{latency: summarize(ds), WallMS: ms(wall)}
	if wall > 0 {
		p.PerS = float64(len(ds)) / wall.Seconds()
	}
	return p
}

// targets checks knit's goals at the largest size measured.
func (r *result) targets() []target {
	if len(r.Sizes) == 0 {
		return nil
	}
	top := r.Sizes[len(r.Sizes)-1]
	at := fmt.Sprintf(" at %d containers", top.Containers)
	ts := []target{
		{What: "attach p50 ms" + at, Value: top.Attach.P50, Limit: "<= 5", Met: top.Attach.P50 <= 5},
		{What: "attach p99 ms" + at, Value: top.Attach.P99, Limit: "<= 20", Met: top.Attach.P99 <= 20},
		{What: "knitd KiB per container" + at, Value: top.KiBPerContainer, Limit: "<= 10", Met: top.KiBPerContainer <= 10},
	}
	if r.Rate != nil {
		ts = append(ts, target{What: fmt.Sprintf("attaches/s with %d clients", r.Rate.Clients), Value: r.Rate.PerS, Limit: ">= 200", Met: r.Rate.PerS >= 200})
	}
	return ts
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "\nknit attach benchmark: %s (pid %d), %d API clients, %d attach samples per size\n", r.Knitd, r.KnitdPID, r.Parallel, r.Samples)
	if len(r.HostSysctls) > 0 {
		fmt.Fprintf(w, "host namespace sysctls set before knitd started: %s\n", strings.Join(r.HostSysctls, " "))
	}
	if r.Anchor {
		fmt.Fprintln(w, "with kb-anchor on bench-b throughout: its bridge keeps carrier between samples")
	}
	fmt.Fprintf(w, "knitd memory at start: RSS %d KiB (anon %d, file %d)\n\n", r.MemStart.RSS, r.MemStart.Anon, r.MemStart.File)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "containers\truns\truns/s\trun p50\trun p99\tattach p50\tp90\tp99\tmax\tmean\tdetach p50\tdetach p99\t")
	for _, s := range r.Sizes {
		g, a := s.Growth, s.Attach
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			s.Containers, g.N, g.PerS, g.P50, g.P99, a.P50, a.P90, a.P99, a.Max, a.Mean, s.Detach.P50, s.Detach.P99)
	}
	tw.Flush()
	fmt.Fprintln(w, "(ms; runs: the containers created to reach the size, by the API clients in parallel)")
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "containers\tRSS KiB\tanon\tfile\tKiB/ctr\tanon KiB/ctr\tRSS after attaches\t")
	for _, s := range r.Sizes {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%.1f\t%d\t\n", s.Containers, s.Mem.RSS, s.Mem.Anon, s.Mem.File,
			s.KiBPerContainer, s.AnonKiBPerContainer, s.MemAfterAttach.RSS)
	}
	tw.Flush()
	fmt.Fprintln(w, "(knitd memory after growth; KiB/ctr = (RSS - RSS at start) / containers, anon the same for anonymous memory)")
	for _, s := range r.Sizes {
		fmt.Fprintf(w, "checked after the first attach at %d: %s\n", s.Containers, s.Verified)
	}
	if r.Rate != nil {
		fmt.Fprintf(w, "\nattach rate at %d containers: %d connects by %d clients in %.0f ms = %.1f attaches/s (per call p50 %.2f, p99 %.2f, max %.2f ms)\n",
			r.Rate.Containers, r.Rate.N, r.Rate.Clients, r.Rate.WallMS, r.Rate.PerS, r.Rate.P50, r.Rate.P99, r.Rate.Max)
	}
	if r.CLI != nil {
		fmt.Fprintf(w, "knit network connect through the CLI (process start included), %d samples: p50 %.2f ms, max %.2f ms\n", r.CLI.N, r.CLI.P50, r.CLI.Max)
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range r.targets() {
		verdict := "MISSED"
		if t.Met {
			verdict = "met"
		}
		fmt.Fprintf(w, "  %-45s %10.2f  (target %s)  %s\n", t.What, t.Value, t.Limit, verdict)
	}
}

func (r *result) writeJSON(path string) error {
	r.Targets = r.targets()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
