package dataplane

import (
	"fmt"
	"strings"

	"github.com/knit-net/knit/internal/testutil/nfttest"
)

// wantSample is how nft prints the ruleset of sampleConfig (elements in
// the order of this kernel's hash; compared canonical).
var wantSample = nfttest.Canonical(sampleHead + countChainsListing(0) + "}\n")

// sampleHead is the listing of sampleConfig up to the count chains.
const sampleHead = `table inet knit {
	set bridges {
		type ifname
		comment "knit"
		elements = { "kn-back", "kn-db", "kn-front" }
	}

	set internal_bridges {
		type ifname
		comment "knit"
		elements = { "kn-db" }
	}

	set intra_bridge {
		type ifname . ifname
		comment "knit"
		elements = { "kn-back" . "kn-back", "kn-db" . "kn-db", "kn-front" . "kn-front" }
	}

	set masq_v4 {
		type ipv4_addr
		flags interval
		comment "knit"
		elements = { 10.1.0.0/24, 10.3.0.0/24 }
	}

	set masq_v6 {
		type ipv6_addr
		flags interval
		comment "knit"
		elements = { fd00:1::/64 }
	}

	map ports_v4 {
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		comment "knit"
		elements = { 127.0.0.1 . tcp . 9000 : 10.1.0.3 . 9000, 192.0.2.1 . udp . 5353 : 10.3.0.2 . 53 }
	}

	map ports_any_v4 {
		type inet_proto . inet_service : ipv4_addr . inet_service
		comment "knit"
		elements = { tcp . 8080 : 10.1.0.2 . 80 }
	}

	map ports_v6 {
		type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service
		comment "knit"
		elements = { 2001:db8::1 . sctp . 3868 : fd00:1::3 . 3868 }
	}

	map ports_any_v6 {
		type inet_proto . inet_service : ipv6_addr . inet_service
		comment "knit"
		elements = { tcp . 8080 : fd00:1::2 . 80 }
	}

	set svc_vips_v4 {
		type ipv4_addr
		comment "knit"
		elements = { 10.96.0.10, 10.96.0.53, 192.0.2.80 }
	}

	set svc_vips_v6 {
		type ipv6_addr
		comment "knit"
		elements = { fd00:96::10 }
	}

	set svc_ranges_v4 {
		type ipv4_addr
		flags interval
		comment "knit"
		elements = { 10.96.0.0/16 }
	}

	set svc_ranges_v6 {
		type ipv6_addr
		flags interval
		comment "knit"
		elements = { fd00:96::/112 }
	}

	set svc_nodeports {
		type inet_proto . inet_service
		comment "knit"
		elements = { tcp . 30080 }
	}

	map svc_v4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "knit"
		elements = { 10.96.0.10 . tcp . 80 : goto svc_n2, 192.0.2.80 . tcp . 80 : goto svc_n2 }
	}

	map svc_v6 {
		type ipv6_addr . inet_proto . inet_service : verdict
		comment "knit"
		elements = { fd00:96::10 . tcp . 80 : goto svc_n1 }
	}

	map svc_backends_v4 {
		type ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service
		comment "knit"
		elements = { 10.96.0.10 . tcp . 80 . 0x00000000 : 10.1.0.2 . 8080, 10.96.0.10 . tcp . 80 . 0x00000001 : 10.3.0.2 . 8080, 192.0.2.80 . tcp . 80 . 0x00000000 : 10.1.0.2 . 8080, 192.0.2.80 . tcp . 80 . 0x00000001 : 10.3.0.2 . 8080 }
	}

	map svc_backends_v6 {
		type ipv6_addr . inet_proto . inet_service . mark : ipv6_addr . inet_service
		comment "knit"
		elements = { fd00:96::10 . tcp . 80 . 0x00000000 : fd00:1::2 . 8080 }
	}

	map svc_aff_backends_v4 {
		type ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service
		comment "knit"
	}

	map svc_aff_backends_v6 {
		type ipv6_addr . inet_proto . inet_service . mark : ipv6_addr . inet_service
		comment "knit"
	}

	map svc_np_v4 {
		type inet_proto . inet_service : verdict
		comment "knit"
		elements = { tcp . 30080 : goto svc_np_n2 }
	}

	map svc_np_v6 {
		type inet_proto . inet_service : verdict
		comment "knit"
		elements = { tcp . 30080 : goto svc_np_n1 }
	}

	map svc_np_backends_v4 {
		type inet_proto . inet_service . mark : ipv4_addr . inet_service
		comment "knit"
		elements = { tcp . 30080 . 0x00000000 : 10.1.0.2 . 8080, tcp . 30080 . 0x00000001 : 10.3.0.2 . 8080 }
	}

	map svc_np_backends_v6 {
		type inet_proto . inet_service . mark : ipv6_addr . inet_service
		comment "knit"
		elements = { tcp . 30080 . 0x00000000 : fd00:1::2 . 8080 }
	}

	map svc_np_aff_backends_v4 {
		type inet_proto . inet_service . mark : ipv4_addr . inet_service
		comment "knit"
	}

	map svc_np_aff_backends_v6 {
		type inet_proto . inet_service . mark : ipv6_addr . inet_service
		comment "knit"
	}

	set svc_affinity_v4 {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service . mark
		size 65535
		flags dynamic,timeout
		comment "knit"
	}

	set svc_affinity_v6 {
		type ipv6_addr . ipv6_addr . inet_proto . inet_service . mark
		size 65535
		flags dynamic,timeout
		comment "knit"
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		jump guard comment "knit: guard the loopback range"
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services comment "knit: services"
		jump ports comment "knit: published ports"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		jump services comment "knit: services, from the host itself"
		jump ports comment "knit: published ports, from the host itself"
	}

	chain input {
		type filter hook input priority filter; policy accept;
		ct state new jump svc_check comment "knit: refuse what no service port took"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state new jump svc_check comment "knit: refuse what no service port took"
		jump isolate comment "knit: isolate networks"
	}

	chain filter_output {
		type filter hook output priority filter; policy accept;
		ct state new jump svc_check comment "knit: refuse what no service port took"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump hairpin comment "knit: hairpin to published ports"
		jump masq comment "knit: masquerade egress of networks"
	}

	chain isolate {
		iifname . oifname @intra_bridge return comment "knit: traffic within one bridge is never isolated"
		iifname @internal_bridges counter packets 0 bytes 0 drop comment "knit: internal networks have no way out"
		oifname @internal_bridges counter packets 0 bytes 0 drop comment "knit: internal networks have no way in"
		ct status dnat return comment "knit: published ports are reachable from other networks"
		iifname @bridges oifname @bridges counter packets 0 bytes 0 drop comment "knit: no traffic between knit networks"
	}

	chain masq {
		oifname @bridges return comment "knit: traffic into a knit bridge keeps its source"
		ip saddr @masq_v4 counter packets 0 bytes 0 masquerade comment "knit: masquerade IPv4 leaving a network"
		ip6 saddr @masq_v6 counter packets 0 bytes 0 masquerade comment "knit: masquerade IPv6 leaving a network"
	}

	chain guard {
		ip daddr 127.0.0.0/8 iifname != "lo" counter packets 0 bytes 0 drop comment "knit: 127.0.0.0/8 arrives on lo only (CVE-2020-8558)"
	}

	chain ports {
		fib daddr type != local return comment "knit: published ports answer on the host's own addresses only"
		ip6 daddr ::1 return comment "knit: ::1 cannot be DNATed (no route_localnet for IPv6)"
		dnat ip to ip daddr . meta l4proto . th dport map @ports_v4 comment "knit: IPv4 ports published on one host address"
		meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports_any_v4 comment "knit: IPv4 ports published on every host address"
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_v6 comment "knit: IPv6 ports published on one host address"
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports_any_v6 comment "knit: IPv6 ports published on every host address"
	}

	chain hairpin {
		ct status dnat iifname . oifname @intra_bridge counter packets 0 bytes 0 masquerade comment "knit: DNATed traffic routed back into the bridge it came from"
		ct status dnat iif 0 oifname @bridges fib saddr type != local counter packets 0 bytes 0 masquerade comment "knit: DNATed traffic br_netfilter bridged back into its bridge"
		ip saddr 127.0.0.0/8 oifname @bridges counter packets 0 bytes 0 masquerade comment "knit: the host's 127.0.0.1 reaching a published port"
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @svc_v4 comment "knit: service ports on their IPv4 virtual addresses"
		ip6 daddr . meta l4proto . th dport vmap @svc_v6 comment "knit: service ports on their IPv6 virtual addresses"
		ip daddr @svc_vips_v4 fib daddr type != local accept comment "knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)"
		ip daddr @svc_ranges_v4 accept comment "knit: nor is any IPv4 address of the service ranges"
		ip6 daddr @svc_vips_v6 fib daddr type != local accept comment "knit: a virtual address on a port no service port took is not NATed (svc_check refuses it)"
		ip6 daddr @svc_ranges_v6 accept comment "knit: nor is any IPv6 address of the service ranges"
		fib daddr type != local return comment "knit: node ports answer on the host's own addresses only"
		ip6 daddr ::1 return comment "knit: ::1 cannot be DNATed (no route_localnet for IPv6)"
		meta nfproto ipv4 meta l4proto . th dport vmap @svc_np_v4 comment "knit: IPv4 node ports"
		meta nfproto ipv6 meta l4proto . th dport vmap @svc_np_v6 comment "knit: IPv6 node ports"
	}

	chain svc_check {
		ip daddr @svc_ranges_v4 goto svc_reject comment "knit: nothing but a service port answers in the IPv4 service ranges"
		ip6 daddr @svc_ranges_v6 goto svc_reject comment "knit: nothing but a service port answers in the IPv6 service ranges"
		ip daddr @svc_vips_v4 fib daddr type != local goto svc_reject comment "knit: nor on an IPv4 virtual address that is not the host's"
		ip6 daddr @svc_vips_v6 fib daddr type != local goto svc_reject comment "knit: nor on an IPv6 virtual address that is not the host's"
		meta l4proto . th dport @svc_nodeports ct status ! dnat fib daddr type local goto svc_reject comment "knit: a node port no backend took (none of the family) is refused"
	}

	chain svc_reject {
		meta l4proto tcp counter packets 0 bytes 0 reject with tcp reset comment "knit: refuse TCP at once"
		counter packets 0 bytes 0 reject comment "knit: refuse the rest with port unreachable"
	}

`

// countBlockSize is the number of count chains rendered together (see
// package services).
const countBlockSize = 64

// countChainsListing is how nft prints the count chains of the given
// blocks of backend counts (no affinity): svc_n<K>, then svc_np_n<K>.
func countChainsListing(blocks ...int) string {
	var b strings.Builder
	for _, np := range []bool{false, true} {
		for _, blk := range blocks {
			for k := blk*countBlockSize + 1; k <= (blk+1)*countBlockSize; k++ {
				if !np {
					fmt.Fprintf(&b, `	chain svc_n%[1]d {
		dnat ip to ip daddr . meta l4proto . th dport . numgen random mod %[1]d map @svc_backends_v4 comment "knit: a backend at random"
		dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod %[1]d map @svc_backends_v6 comment "knit: a backend at random"
	}

`, k)
					continue
				}
				fmt.Fprintf(&b, `	chain svc_np_n%[1]d {
		meta nfproto ipv4 dnat ip to meta l4proto . th dport . numgen random mod %[1]d map @svc_np_backends_v4 comment "knit: a backend at random"
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport . numgen random mod %[1]d map @svc_np_backends_v6 comment "knit: a backend at random"
	}

`, k)
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
