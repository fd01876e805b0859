#!/usr/bin/env bash
# bench/dns/run.sh: knit's embedded DNS server (internal/dns) against the peer
# resolvers, on the same names, then a side-by-side table with ratios.
#
#   1. The peers: dnsbench's peers.sh runs dnsmasq and aardvark-dns in its own
#      namespace on N names and writes the name set (-k).
#   2. knit: in namespace knit-dnsbench (lo only; server 10.253.0.1:53, client
#      10.253.0.2, the peers' topology), bench/dns's knit-dnsbench serves the
#      same names (plus FILLER containers on other networks), and dnsbench.sh
#      measures it as the client container for
#        - knit        the local names;
#        - knit-fwd    names it forwards to an upstream inside the namespace
#                      (dnsmasq on 127.0.0.1:5353 answering <name>.fwd.test);
#        - upstream    that upstream queried directly, for reference.
#   3. results/dns/: dns.tsv (every run), peers.txt, knit.txt, summary.txt.
#
# Environment: DNSBENCH_DIR (default ../shared/peers/dnsbench next to the
# repository), N names (1000), FILLER (1000), DUR seconds per run (10), LEVELS
# outstanding queries ("1 100"). Needs root; installs dnsperf, dnsmasq-base
# and aardvark-dns with apt-get when missing. All traffic stays inside the
# namespaces it creates; they are removed on exit.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/dns: run as root (it creates network namespaces)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
ROOT=$PWD
DNSBENCH_DIR=${DNSBENCH_DIR:-$ROOT/../shared/peers/dnsbench}
N=${N:-1000} FILLER=${FILLER:-1000} DUR=${DUR:-10} LEVELS=${LEVELS:-"1 100"}
NS=knit-dnsbench SRV=10.253.0.1 CLI=10.253.0.2 UP=127.0.0.1:5353
RESULTS=$ROOT/results/dns
[ -x "$DNSBENCH_DIR/peers.sh" ] || { echo "bench/dns: no peers.sh in $DNSBENCH_DIR (set DNSBENCH_DIR)" >&2; exit 1; }

missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
[ -x /usr/lib/podman/aardvark-dns ] || command -v aardvark-dns >/dev/null || missing+=(aardvark-dns)
if [ ${#missing[@]} -gt 0 ]; then
	echo "== apt-get install ${missing[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$RESULTS" bin
rm -f "$RESULTS/dns.tsv"
go build -o bin/knit-dnsbench ./bench/dns
tmp=$(mktemp -d)
pids=()
# stop <pid> <comm>: by PID, only if it is still that program
stop() {
	local i
	[ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm")" = "$2" ] || return 0
	kill "$1" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do [ -d "/proc/$1" ] || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
	local p
	for p in "${pids[@]}"; do stop ${p/:/ }; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== peers (dnsmasq, aardvark-dns): $N names, ${DUR}s per run"
"$DNSBENCH_DIR/peers.sh" -N "$N" -l "$DUR" -q "$LEVELS" -k "$tmp/set" -o "$RESULTS/dns.tsv" | tee "$RESULTS/peers.txt"

names=$tmp/set/names.txt
awk '{print $1 ".fwd.test"}' "$names" >"$tmp/fwd.txt"
awk '{print $1, $2 ".fwd.test"}' "$tmp/set/hosts" >"$tmp/fwd.hosts"

ip netns list | grep -qw "^$NS" && { echo "bench/dns: namespace $NS exists (ip netns del $NS)" >&2; exit 1; }
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add $SRV/32 dev lo
ip -n "$NS" addr add $CLI/32 dev lo

# the upstream for forwarded names: dnsmasq from a hosts file, never forwarding
ip netns exec "$NS" dnsmasq -k -C /dev/null --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
	--no-resolv --no-hosts --addn-hosts="$tmp/fwd.hosts" --user=root --pid-file="$tmp/up.pid" --log-facility=/dev/null &
uppid=$!
pids+=("$uppid:dnsmasq")
ip netns exec "$NS" bin/knit-dnsbench -names "$tmp/set/aardvark/db-peers-net" -port 53 -upstream $UP \
	-filler "$FILLER" 2>"$tmp/knit.log" &
kpid=$!
pids+=("$kpid:knit-dnsbench")
for ((i = 0; i < 100; i++)); do
	ip netns exec "$NS" ss -Hlun "sport = :53" | grep -q "$SRV:53" &&
		ip netns exec "$NS" ss -Hlun "sport = :5353" | grep -q "127.0.0.1:5353" && break
	sleep 0.1
done
cat "$tmp/knit.log"

# check: one pass over each name set comes back all NOERROR
check() {
	local r
	r=$(sed 's/$/ A/' "$3" | ip netns exec "$NS" timeout 20 dnsperf -s "$1" -p "$2" -a $CLI -n 1 -q 20 2>&1 |
		awk '/Response codes/ {$1 = ""; $2 = ""; sub(/^ +/, ""); print}')
	case "$r" in
	"NOERROR "*"(100.00%)") ;;
	*) echo "bench/dns: $1:$2 does not answer every name in $(basename "$3") (got: ${r:-no answers})" >&2; exit 1 ;;
	esac
}
check $SRV 53 "$names"
check $SRV 53 "$tmp/fwd.txt"
check 127.0.0.1 5353 "$tmp/fwd.txt"

{
	echo "== knit: $(wc -l <"$names") local names, $FILLER filler containers, ${DUR}s per run"
	"$DNSBENCH_DIR/dnsbench.sh" -s $SRV -n "$NS" -a $CLI -P "$kpid" -l "$DUR" -q "$LEVELS" -L knit -o "$RESULTS/dns.tsv" "$names"
	echo
	echo "== knit forwarding to dnsmasq at $UP"
	"$DNSBENCH_DIR/dnsbench.sh" -s $SRV -n "$NS" -a $CLI -P "$kpid" -l "$DUR" -q "$LEVELS" -L knit-fwd -o "$RESULTS/dns.tsv" "$tmp/fwd.txt"
	echo
	echo "== the upstream directly"
	"$DNSBENCH_DIR/dnsbench.sh" -s 127.0.0.1 -p 5353 -n "$NS" -a 127.0.0.1 -P "$uppid" -l "$DUR" -q "$LEVELS" -L upstream -o "$RESULTS/dns.tsv" "$tmp/fwd.txt"
} | tee "$RESULTS/knit.txt"
grep -h '^knit-dnsbench:' "$tmp/knit.log" >>"$RESULTS/knit.txt" || true

python3 bench/dns/summary.py "$RESULTS/dns.tsv" | tee "$RESULTS/summary.txt"
echo "results in $RESULTS"
