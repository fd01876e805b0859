#!/usr/bin/env bash
# scripts/test-deps.sh: installs what knit's tests need on Debian, once:
# a machine that has it all is left alone (no apt-get at all), so
# `make test` can call it every time. Go modules come through
# `go mod download`.
#
# The tools, and why:
#   ip (iproute2)                    tests build topologies and look at links
#   nft (nftables), iptables         tests look at tables; another table beside knit's
#   nsenter (util-linux)             knit exec; tests enter a "host" namespace
#   busybox (busybox-static)         shell tools inside test containers
#   conntrack                        tests look at conntrack entries
#   make                             the README's commands
#   podman, runc, conmon             the real CNI runtime knit-cni is tested with
#   containerd (ctr)                 the other one
#   /usr/lib/cni/bridge (containernetworking-plugins)   podman's CNI setup
set -euo pipefail

# command → Debian package
need=(
	"ip iproute2"
	"nft nftables"
	"iptables iptables"
	"nsenter util-linux"
	"busybox busybox-static"
	"conntrack conntrack"
	"make make"
	"podman podman"
	"runc runc"
	"conmon conmon"
	"ctr containerd"
	"/usr/lib/cni/bridge containernetworking-plugins"
)

missing=()
for pair in "${need[@]}"; do
	cmd=${pair% *} pkg=${pair#* }
	if [[ $cmd == /* ]]; then
		[ -e "$cmd" ] && continue
	elif command -v "$cmd" >/dev/null 2>&1; then
		continue
	fi
	missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "test-deps: missing ${missing[*]}; install them (as root: apt-get install -y ${missing[*]})" >&2
		exit 1
	fi
	echo "test-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
