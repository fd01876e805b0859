#!/usr/bin/env python3
"""bench/cni_summary.py: one table from cnibench's -json reports (bench/cni.sh).

For each size and worker count: ADD and DEL p50/p99 (ms) and ops/s of the
reference chain ("ref-" labels) and of knit-cni ("knit-" labels), and knit's
ratios: p50 speed-up (ref p50 / knit p50) and rate ratio (knit ops/s / ref
ops/s). Then the targets: knit ADD p50 <= 5 ms, and >= 15x the reference's
ADD rate at 500 containers with 4 workers.
"""
import json
import sys


def load(paths):
    runs = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    runs[r["label"]] = r
    return runs


def phase(run, op):
    for p in run.get("phases", []):
        if p["op"] == op:
            return p
    return None


def main():
    runs = load(sys.argv[1:])
    keys = sorted({(r["n"], r["workers"]) for r in runs.values()})
    print(f"{'n':>4} {'w':>2} {'op':4} | {'ref p50':>8} {'ref p99':>8} {'ref ops/s':>9} | "
          f"{'knit p50':>8} {'knit p99':>8} {'knit ops/s':>10} | {'p50 x':>6} {'rate x':>7}")
    failed = []
    for n, w in keys:
        ref, knit = runs.get(f"ref-n{n}-w{w}"), runs.get(f"knit-n{n}-w{w}")
        for op in ("ADD", "DEL"):
            r = phase(ref, op) if ref else None
            k = phase(knit, op) if knit else None
            if k and k["errors"]:
                failed.append(f"knit n={n} w={w} {op}: {k['errors']} errors ({k.get('first_error', '')})")
            cells = []
            for p in (r, k):
                cells.append(f"{p['p50_ms']:8.2f} {p['p99_ms']:8.2f} {p['ops_per_s']:{9 if p is r else 10}.1f}" if p
                             else f"{'-':>8} {'-':>8} {'-':>{9 if p is r else 10}}")
            speed = f"{r['p50_ms'] / k['p50_ms']:6.1f}" if r and k and k["p50_ms"] else f"{'-':>6}"
            rate = f"{k['ops_per_s'] / r['ops_per_s']:7.1f}" if r and k and r["ops_per_s"] else f"{'-':>7}"
            print(f"{n:>4} {w:>2} {op:4} | {cells[0]} | {cells[1]} | {speed} {rate}")
    print()
    add1 = [phase(runs[l], "ADD") for l in runs if l.startswith("knit-n1-")]
    if add1:
        p50 = min(p["p50_ms"] for p in add1 if p)
        print(f"target: knit ADD p50 <= 5 ms (single attachment): {p50:.2f} ms -> {'met' if p50 <= 5 else 'NOT met'}")
    ref, knit = runs.get("ref-n500-w4"), runs.get("knit-n500-w4")
    if ref and knit:
        x = phase(knit, "ADD")["ops_per_s"] / phase(ref, "ADD")["ops_per_s"]
        print(f"target: knit ADD rate >= 15x the reference at n=500, 4 workers: {x:.1f}x -> {'met' if x >= 15 else 'NOT met'}")
    for f in failed:
        print("ERRORS:", f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
