#!/usr/bin/env python3
"""Side-by-side summary of knit's attach benchmark and the reference CNI chain.

usage: summary.py ATTACH_JSON [CNIBENCH_JSONL [SUMMARY_JSON]]

ATTACH_JSON is bench/attach's -json file (knit's detach is the disconnect
after each attach sample, timed apart from it). CNIBENCH_JSONL holds cnibench's
reports labelled ref-n1 (-n 1 -repeat 20), ref-n100 (-n 100) and ref-n500-w4
(-n 500 -workers 4); without it only knit's numbers are shown. Latency ratios
are reference / knit (above 1: knit is faster), rate ratios knit / reference
(above 1: knit is faster). SUMMARY_JSON, if given, receives the rows.
"""
import json
import sys


def load_ref(path):
    refs = {}
    if not path:
        return refs
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                refs[r.get("label", "")] = r  # the last run of a label wins
    return refs


def phase(report, op):
    for p in report.get("phases", []):
        if p["op"] == op:
            return p
    return None


def ratio(a, b):
    return a / b if a and b else None


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        knit = json.load(f)
    refs = load_ref(argv[2] if len(argv) > 2 else None)
    sizes = {s["containers"]: s for s in knit["sizes"]}
    largest = knit["sizes"][-1]["containers"]
    rate = knit.get("rate")

    rows, seen = [], set()
    pairs = [
        (1, "ref-n1", "1 container     vs {} -n 1 -repeat 20"),
        (100, "ref-n100", "100 containers  vs {} -n 100"),
        (largest, "ref-n100", f"{largest} containers vs {{}} -n 100 (largest 1-worker run)"),
    ]
    for size, label, what in pairs:
        s = sizes.get(size)
        if s is None or size in seen:
            continue
        seen.add(size)
        for knit_op, key, ref_op in (("attach", "attach", "ADD"), ("detach", "detach", "DEL")):
            ref = phase(refs[label], ref_op) if label in refs else None
            k = s.get(key)
            if not k:
                continue
            rows.append(dict(what=f"{knit_op}, sequential: " + what.format(ref_op), knit_p50=k["p50_ms"], knit_p99=k["p99_ms"],
                             ref=label, ref_p50=ref and ref["p50_ms"], ref_p99=ref and ref["p99_ms"]))
    w4 = refs.get("ref-n500-w4")
    add4 = phase(w4, "ADD") if w4 else None
    if rate:
        rows.append(dict(what=f"attach, {rate['clients']} clients at {rate['containers']} vs ADD -n 500 -workers 4 (per call)",
                         knit_p50=rate["p50_ms"], knit_p99=rate["p99_ms"], ref="ref-n500-w4",
                         ref_p50=add4 and add4["p50_ms"], ref_p99=add4 and add4["p99_ms"]))
    for r in rows:
        r["ref_over_knit_p50"] = ratio(r["ref_p50"], r["knit_p50"])
        r["ref_over_knit_p99"] = ratio(r["ref_p99"], r["knit_p99"])

    print("\n=== knit attach vs reference CNI chain (bridge + host-local + portmap), times in ms ===")
    if knit.get("anchor") or knit.get("host_sysctls"):
        print(f"(knit run with anchor={bool(knit.get('anchor'))} host sysctls={knit.get('host_sysctls') or []})")
    print(f"{'comparison':<72} {'knit p50':>9} {'knit p99':>9} {'ref p50':>9} {'ref p99':>9} {'ref/knit p50':>13} {'ref/knit p99':>13}")
    for r in rows:
        print(f"{r['what']:<72} {fmt(r['knit_p50']):>9} {fmt(r['knit_p99']):>9} {fmt(r['ref_p50']):>9} {fmt(r['ref_p99']):>9}"
              f" {fmt(r['ref_over_knit_p50'], 1):>13} {fmt(r['ref_over_knit_p99'], 1):>13}")

    out = dict(latency=rows)
    if rate:
        ref_ops = add4 and add4["ops_per_s"]
        out["rate"] = dict(knit_attaches_per_s=rate["ops_per_s"], clients=rate["clients"], containers=rate["containers"],
                           ref_add_ops_per_s=ref_ops, knit_over_ref=ratio(rate["ops_per_s"], ref_ops))
        print(f"\nrate: knit {fmt(rate['ops_per_s'], 1)} attaches/s ({rate['clients']} clients, {rate['containers']} containers)"
              f" vs reference {fmt(ref_ops, 1)} ADD/s (-n 500 -workers 4): knit/ref = {fmt(out['rate']['knit_over_ref'], 1)}")
    d = phase(w4, "DEL") if w4 else None
    if d:
        print(f"reference DEL -n 500 -workers 4: p50 {fmt(d['p50_ms'])} ms, p99 {fmt(d['p99_ms'])} ms, {fmt(d['ops_per_s'], 1)}/s")
    if not refs:
        print("\n(no reference runs: ratios left out)")
    top = knit["sizes"][-1]
    print(f"knitd memory: {fmt(top['kib_per_container'], 1)} KiB per container at {top['containers']}"
          f" (RSS {knit['rss_start_kib']} -> {top['rss_kib']} KiB)")
    print("targets: " + "; ".join(f"{t['what']} {fmt(t['value'])} ({t['limit']}) {'met' if t['met'] else 'MISSED'}"
                                  for t in knit.get("targets", [])))
    if len(argv) > 3:
        with open(argv[3], "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
