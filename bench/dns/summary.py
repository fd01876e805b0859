#!/usr/bin/env python3
"""bench/dns/summary.py DNS.TSV: the dnsbench rows of bench/dns/run.sh side by
side, per outstanding-query level, with knit's ratios to the peers.

qps ratios above 1 and p99 ratios below 1 favour knit. At q=1 the qps column
is dnsperf's pace, not the server's (see dnsbench's README): only its
latencies mean something, so no qps ratio is given there.
"""
import csv
import sys

ORDER = ["dnsmasq", "aardvark", "knit", "knit-fwd", "upstream"]
NOTES = {
    "dnsmasq": "peer: hosts file, no forwarding",
    "aardvark": "peer: podman's resolver",
    "knit": "knit, local names",
    "knit-fwd": "knit, forwarded to the upstream",
    "upstream": "the upstream (dnsmasq) directly",
}


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by = {(r["label"], r["q"]): r for r in rows}
    levels = sorted({r["q"] for r in rows}, key=int)
    head = f"{'server':<10} {'q':>4} {'qps':>9} {'p50_ms':>7} {'p99_ms':>7} {'srv_cpu':>7}  {'qps/aardvark':>12} {'qps/dnsmasq':>11} {'p99/aardvark':>12}  note"
    print("# knit's embedded DNS vs the peers, same names (server CPU in cores)")
    print(head)
    verdict = []
    for q in levels:
        ref = {k: by.get((k, q)) for k in ("aardvark", "dnsmasq")}
        for label in ORDER:
            r = by.get((label, q))
            if r is None:
                continue
            qps, p99 = num(r["qps"]), num(r["p99_ms"])
            ra = rd = rp = ""
            note = NOTES.get(label, "")
            if label == "knit":
                a, d = ref["aardvark"], ref["dnsmasq"]
                if q != "1":
                    ra = ratio(qps, num(a["qps"]) if a else None)
                    rd = ratio(qps, num(d["qps"]) if d else None)
                rp = ratio(p99, num(a["p99_ms"]) if a else None)
            up = by.get(("upstream", q))
            if label == "knit-fwd" and up and q != "1":
                note += f" ({ratio(qps, num(up['qps']))} of its qps)"
            print(f"{label:<10} {q:>4} {r['qps']:>9} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['server_cores']:>7}  "
                  f"{ra:>12} {rd:>11} {rp:>12}  {note}")
            if label == "knit" and q != "1" and ref["aardvark"]:
                aq = num(ref["aardvark"]["qps"])
                cores = num(r["server_cores"]), num(ref["aardvark"]["server_cores"])
                per_core = ""
                if cores[0] and cores[1]:
                    per_core = f"; per server core {qps / cores[0] / (aq / cores[1]):.2f}x"
                verdict.append(f"q={q}: knit {qps:.0f} qps = {qps / aq:.2f}x aardvark-dns (target >= 2x){per_core}; "
                               f"p99 {r['p99_ms']} ms (target <= 1 ms)")
        print()
    for v in verdict:
        print("# " + v)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
