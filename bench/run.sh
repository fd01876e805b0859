#!/usr/bin/env bash
# bench/run.sh: knit's attach benchmark, then the reference CNI chain
# (bridge + host-local + portmap from Debian's containernetworking-plugins)
# measured by the peer tool cnibench in the same run, then a side-by-side
# summary. Results go to results/ (git-ignored):
#   attach.json / attach.txt     knit (bench/attach)
#   cnibench.jsonl / cnibench.txt the reference chain
#   summary.json / summary.txt   side by side, with the ratios
# Environment:
#   CNIBENCH_DIR   the cnibench sources (default ../shared/peers/cnibench next to
#                  the repository); when missing, the reference is skipped
#   SIZES SAMPLES PARALLEL   passed to bench/attach (default 1,100,1000 50 4)
#   ATTACH_FLAGS   more bench/attach flags, such as -anchor or -host-sysctl K=V
# Needs root. Takes several minutes: the reference chain needs ~200 ms per ADD
# and DEL.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it creates network namespaces)" >&2; exit 1; }
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS=$ROOT/results
mkdir -p "$RESULTS"

echo "== build ($(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")," \
	"$(git status --porcelain 2>/dev/null | wc -l) files changed since)" | tee "$RESULTS/tree.txt"
make build
go build -o bin/bench-attach ./bench/attach

echo "== knit attach benchmark (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
# shellcheck disable=SC2086 # ATTACH_FLAGS is a list of flags
bin/bench-attach -knitd bin/knitd -knit bin/knit -sizes "${SIZES:-1,100,1000}" \
	-samples "${SAMPLES:-50}" -parallel "${PARALLEL:-4}" -json "$RESULTS/attach.json" ${ATTACH_FLAGS:-} |
	tee "$RESULTS/attach.txt"

CNIBENCH_DIR=${CNIBENCH_DIR:-$ROOT/../shared/peers/cnibench}
REF=$RESULTS/cnibench.jsonl
rm -f "$REF"
if [ ! -f "$CNIBENCH_DIR/go.mod" ]; then
	echo "== reference CNI chain: SKIPPED: no cnibench at $CNIBENCH_DIR (set CNIBENCH_DIR to its sources)"
	REF=
else
	echo "== reference CNI chain: cnibench from $CNIBENCH_DIR"
	(cd "$CNIBENCH_DIR" && go build -o "$ROOT/bin/cnibench" .)
	# The plugins leave host-global iptables chains (and iptables-nft's nat
	# table); remove them afterwards unless they were there before this run.
	had_chains=$(iptables-save -t nat 2>/dev/null | grep -c '^:CNI-HOSTPORT' || true)
	had_nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || echo 0)
	: >"$RESULTS/cnibench.txt"
	for args in "-n 1 -repeat 20 -label ref-n1" "-n 100 -label ref-n100" "-n 500 -workers 4 -label ref-n500-w4"; do
		echo "-- cnibench $args (load average: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$RESULTS/cnibench.txt"
		# shellcheck disable=SC2086 # args is a list of flags
		bin/cnibench $args -json "$REF" | tee -a "$RESULTS/cnibench.txt"
	done
	if [ "$had_chains" = 0 ] && [ -x "$CNIBENCH_DIR/cleanup_host.sh" ]; then
		"$CNIBENCH_DIR/cleanup_host.sh"
	fi
	# an ip nat table left with its empty base chains only
	if [ "$had_nat" = 0 ] && nft list table ip nat >/dev/null 2>&1 &&
		! nft list table ip nat | grep -vE '^\s*(table|chain|type|\}|$)' | grep -q .; then
		nft delete table ip nat
	fi
fi

python3 bench/summary.py "$RESULTS/attach.json" "$REF" "$RESULTS/summary.json" | tee "$RESULTS/summary.txt"
echo "results in $RESULTS"
