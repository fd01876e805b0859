#!/usr/bin/env bash
# bench/cni.sh: knit-cni beside the reference CNI chain (bridge + host-local +
# portmap from Debian's containernetworking-plugins), both driven by the peer
# tool cnibench through libcni, at each size and worker count:
#   ADD and DEL p50/p99 and ops/s, and knit's ratios to the reference.
# knitd runs in a throwaway host namespace (kb-cni-<pid>) with temporary
# state, run and socket; cnibench makes its container namespaces (cb-<i>) in
# the root namespace and knit-cni hands their paths to knitd, which creates
# the veths in its own namespace and moves the container ends in by path.
# Results go to results/ (git-ignored):
#   cni-n<N>-w<W>.jsonl   both sides' cnibench reports for one size/workers
#   cni.txt               everything printed, cni-summary.txt the table
# Environment:
#   CNIBENCH_DIR  the cnibench sources (default ../shared/peers/cnibench next to
#                 the repository)
#   SIZES WORKERS sizes and worker counts (default "1 100 500" and "1 4")
#   REPEAT1       repeats of the single-attachment run (default 20)
#   SKIP_REF=1    knit only (the reference takes ~10 minutes at these sizes)
# Needs root.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/cni.sh: run as root (it creates network namespaces)" >&2; exit 1; }
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS=$ROOT/results
BIN=$ROOT/bin
CNIBENCH_DIR=${CNIBENCH_DIR:-$ROOT/../shared/peers/cnibench}
SIZES=${SIZES:-1 100 500}
WORKERS=${WORKERS:-1 4}
REPEAT1=${REPEAT1:-20}
[ -f "$CNIBENCH_DIR/go.mod" ] || { echo "bench/cni.sh: no cnibench at $CNIBENCH_DIR; set CNIBENCH_DIR to its sources" >&2; exit 1; }
mkdir -p "$RESULTS" "$BIN/cni"
exec > >(tee "$RESULTS/cni.txt") 2>&1

echo "== build ($(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout"))"
go build -o "$BIN/knitd" ./cmd/knitd
go build -o "$BIN/knit" ./cmd/knit
# Static and stripped: the plugin is exec'd once per call, and a static
# binary skips the dynamic loader.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/cni/knit" ./cmd/knit-cni
(cd "$CNIBENCH_DIR" && go build -o "$BIN/cnibench" .)

NS=kb-cni-$$
TMP=$(mktemp -d /tmp/knit-cni-bench-XXXXXX)
SOCK=$TMP/knit.sock
KNITD_PID=
had_chains=$(iptables-save -t nat 2>/dev/null | grep -c '^:CNI-HOSTPORT' || true)
had_nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || echo 0)

cleanup() {
	set +e
	if [ -n "$KNITD_PID" ] && kill -0 "$KNITD_PID" 2>/dev/null; then
		# Attachments a failed run left: DEL through knitd, then stop it.
		for c in $("$BIN/knit" --socket "$SOCK" ps -a -q 2>/dev/null); do
			"$BIN/knit" --socket "$SOCK" rm -f "$c" >/dev/null
		done
		kill -TERM "$KNITD_PID"
		for _ in $(seq 100); do kill -0 "$KNITD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$KNITD_PID" 2>/dev/null
	fi
	# knit's bridges, veths and nftables table live in the host namespace
	# and go with it.
	ip netns del "$NS" 2>/dev/null
	# knitd mounts its namespace directory under the run dir.
	umount -l "$TMP/run/netns" 2>/dev/null
	rm -rf "$TMP"
	# The reference plugins leave host-global iptables chains (and
	# iptables-nft's nat table); remove them unless they were there before.
	if [ "$had_chains" = 0 ] && [ -x "$CNIBENCH_DIR/cleanup_host.sh" ]; then
		"$CNIBENCH_DIR/cleanup_host.sh" >/dev/null
	fi
	if [ "$had_nat" = 0 ] && nft list table ip nat >/dev/null 2>&1 &&
		! nft list table ip nat | grep -vE '^\s*(table|chain|type|\}|$)' | grep -q .; then
		nft delete table ip nat
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== knitd in namespace $NS (state in $TMP)"
ip netns add "$NS"
nsenter --net="/run/netns/$NS" "$BIN/knitd" --state-dir "$TMP/state" --run-dir "$TMP/run" --socket "$SOCK" \
	--address-pool base=10.128.0.0/9,size=16 >"$TMP/knitd.log" 2>&1 &
KNITD_PID=$!
for _ in $(seq 300); do "$BIN/knit" --socket "$SOCK" network ls >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/knit" --socket "$SOCK" network create cbknit --subnet 10.98.0.0/16 >/dev/null
CONF=$TMP/knit.conflist
cat >"$CONF" <<EOF
{
  "cniVersion": "1.1.0",
  "name": "cb-knit",
  "plugins": [
    {"type": "knit", "network": "cbknit", "socket": "$SOCK", "capabilities": {"portMappings": true}}
  ]
}
EOF

rm -f "$RESULTS"/cni-n*-w*.jsonl "$RESULTS/cni-summary.txt"
for n in $SIZES; do
	for w in $WORKERS; do
		args=(-n "$n" -workers "$w")
		[ "$n" = 1 ] && args+=(-repeat "$REPEAT1")
		out=$RESULTS/cni-n$n-w$w.jsonl
		rm -f "$out"
		if [ "${SKIP_REF:-0}" != 1 ]; then
			echo "-- reference chain n=$n workers=$w (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
			"$BIN/cnibench" "${args[@]}" -json "$out" -label "ref-n$n-w$w"
			sleep "${SETTLE:-2}"
		fi
		echo "-- knit-cni n=$n workers=$w (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
		"$BIN/cnibench" "${args[@]}" -conflist "$CONF" -bindir "$BIN/cni" -json "$out" -label "knit-n$n-w$w"
		if [ "${SKIP_REF:-0}" != 1 ]; then
			"$BIN/cnibench" -compare "$out"
		fi
	done
done
python3 bench/cni_summary.py "$RESULTS"/cni-n*-w*.jsonl | tee "$RESULTS/cni-summary.txt"
echo "results in $RESULTS"
