package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// pct returns the q-quantile of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func ratio(peer, knit time.Duration) string {
	if knit == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", float64(peer)/float64(knit))
}

func (r results) print(w io.Writer, cfg config) {
	n := fmt.Sprintf("%d × %d", cfg.services, cfg.endpoints)
	fmt.Fprintf(w, "services × endpoints: %s; installs: knit %d, peer %d; %d changes of each kind; %d connects per measurement\n\n",
		n, cfg.rounds, cfg.peerRounds, cfg.changes, cfg.connects)
	fmt.Fprintf(w, "| | knit | kube-proxy shape | peer ÷ knit |\n|---|---|---|---|\n")
	row := func(what string, k, p []time.Duration, f func(time.Duration) string) {
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			if q.q == 0.99 && min(len(k), len(p)) < 20 {
				continue
			}
			fmt.Fprintf(w, "| %s, %s | %s | %s | %s |\n", what, q.name, f(pct(k, q.q)), f(pct(p, q.q)), ratio(pct(p, q.q), pct(k, q.q)))
		}
	}
	row("install "+n+" from nothing", r.knit.install, r.kube.install, ms)
	fmt.Fprintf(w, "| full sync of a restarted knitd, table in place, p50 | %s | — | |\n", ms(pct(r.knit.restart, 0.5)))
	row("replace one endpoint at "+n, r.knit.replace, r.kube.replace, ms)
	row("add or remove one endpoint at "+n, r.knit.add, r.kube.add, ms)
	row("connect to a VIP, 10 services", r.knit.connSmall, r.kube.connSmall, us)
	row(fmt.Sprintf("connect to a VIP, %d services", cfg.services), r.knit.connBig, r.kube.connBig, us)
	fmt.Fprintf(w, "\nconnect without a service (to the backend directly): p50 %s, p99 %s\n", us(pct(r.direct, 0.5)), us(pct(r.direct, 0.99)))
	for _, s := range []struct {
		name string
		x    side
	}{{"knit", r.knit}, {"kube-proxy shape", r.kube}} {
		fmt.Fprintf(w, "%s: connect at %d services ÷ at 10 services: p50 %.3f, p99 %.3f\n", s.name, cfg.services,
			float64(pct(s.x.connBig, 0.5))/float64(pct(s.x.connSmall, 0.5)),
			float64(pct(s.x.connBig, 0.99))/float64(pct(s.x.connSmall, 0.99)))
	}
}
