#!/usr/bin/env bash
# knit demo: the seeds' scenario on one machine, in throwaway namespaces.
#
# A "host" network namespace runs knitd on its embedded store (bbolt); an
# "outside" namespace stands for the world beyond the host. Networks
# frontend and backend (internal); containers web (both), app and db
# (backend). The demo prints who reaches whom and who reaches the outside,
# then removes everything it made.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
cd "$(dirname "$0")/.."
BIN=$PWD/bin
HOST=knit-demo-host OUT=knit-demo-out
TMP=$(mktemp -d /tmp/knit-demo.XXXXXX)
SOCK=$TMP/knit.sock
knit() { "$BIN/knit" --socket "$SOCK" "$@"; }

cleanup() {
  set +e
  if [ -S "$SOCK" ]; then
    knit delete service backend-service >/dev/null 2>&1
    for c in $(knit ps -a -q 2>/dev/null); do knit rm -f "$c" >/dev/null; done
    for n in backend frontend; do knit network rm "$n" >/dev/null 2>&1; done
  fi
  [ -n "${KNITD:-}" ] && kill "$KNITD" 2>/dev/null && wait "$KNITD" 2>/dev/null
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null
  ip netns del "$HOST" 2>/dev/null; ip netns del "$OUT" 2>/dev/null
  umount -l "$TMP/run/netns" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "== a host (netns $HOST) with an uplink to the outside (netns $OUT, 198.51.100.2)"
ip netns add "$HOST"; ip netns add "$OUT"
ip link add kd-up netns "$HOST" type veth peer name kd-down netns "$OUT"
ip -n "$HOST" addr add 198.51.100.1/24 dev kd-up; ip -n "$HOST" link set kd-up up; ip -n "$HOST" link set lo up
ip -n "$OUT" addr add 198.51.100.2/24 dev kd-down; ip -n "$OUT" link set kd-down up; ip -n "$OUT" link set lo up
ip -n "$HOST" route add default via 198.51.100.2
ip netns exec "$OUT" "$BIN/probe" serve 9000 >/dev/null & SERVER=$!

echo "== knitd on its embedded store ($TMP/state/knit.db)"
nsenter --net=/run/netns/$HOST "$BIN/knitd" --state-dir "$TMP/state" --run-dir "$TMP/run" --socket "$SOCK" 2>"$TMP/knitd.log" & KNITD=$!
for _ in $(seq 100); do knit network ls >/dev/null 2>&1 && break; sleep 0.05; done

echo "== networks"
knit network create frontend >/dev/null
knit network create backend --internal >/dev/null
knit network ls

echo "== containers"
knit run -d --name web --hostname web --network frontend --network backend -- "$BIN/probe" serve 8080 >/dev/null
knit run -d --name app --hostname app --network backend -- "$BIN/probe" serve 8080 >/dev/null
knit run -d --name db --hostname db --network backend -- "$BIN/probe" serve 8080 >/dev/null
sleep 0.2
knit ps

addr() { knit inspect "$1" | python3 -c "import json,sys; c=json.load(sys.stdin)[0]; print(' '.join(e['network']+'='+a.split('/')[0] for e in c.get('endpoints',[]) for a in e.get('addresses',[]) if '.' in a))"; }
echo
echo "== who reaches whom (TCP 8080)"
for from in web app db; do
  for to in web app db; do
    [ "$from" = "$to" ] && continue
    for na in $(addr "$to"); do
      net=${na%%=*} ip=${na#*=}
      if knit exec "$from" -- "$BIN/probe" dial "$ip:8080" >/dev/null 2>&1; then r="reaches"; else r="blocked"; fi
      printf '  %-4s -> %-4s via %-9s %-12s %s\n' "$from" "$to" "$net" "$ip" "$r"
    done
  done
done
echo
echo "== by name, through knit's DNS (each container asks its network's gateway)"
for pair in "app db" "web app" "db web"; do
  set -- $pair
  if out=$(knit exec "$1" -- "$BIN/probe" dial "$2:8080" 2>/dev/null); then
    printf '  %-4s -> %-4s:8080 answered by %s\n' "$1" "$2" "$(echo "$out" | awk '{print $1}')"
  else
    printf '  %-4s -> %-4s:8080 failed\n' "$1" "$2"
  fi
done
echo
echo "== who reaches the outside (198.51.100.2:9000)"
for from in web app db; do
  if out=$(knit exec "$from" -- "$BIN/probe" dial 198.51.100.2:9000 2>/dev/null); then
    printf '  %-4s reaches the outside, seen as %s (masquerade)\n' "$from" "$(echo "$out" | awk '{print $2}')"
  else
    printf '  %-4s cannot reach the outside (backend is internal)\n' "$from"
  fi
done
echo
echo "== a Kubernetes Service (the seeds' backend-service, applied verbatim)"
knit run -d --name api1 --hostname api1 --network frontend --label app=backend -- "$BIN/probe" serve 8080 >/dev/null
knit run -d --name api2 --hostname api2 --network frontend --label app=backend -- "$BIN/probe" serve 8080 >/dev/null
sleep 0.2
knit apply -f test/e2e/testdata/seed-backend-service.yaml
knit get services
printf '  web -> backend-service:80, six connections answered by:'
for _ in 1 2 3 4 5 6; do
  printf ' %s' "$(knit exec web -- "$BIN/probe" dial backend-service:80 2>/dev/null | awk '{print $1}')"
done
echo
printf '  backend-service.default.svc.cluster.local is %s\n' "$(knit exec web -- "$BIN/probe" lookup backend-service.default.svc.cluster.local)"
echo
echo "== cleaning up"
