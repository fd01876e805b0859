package nft

// wantSample is how nft prints the ruleset of sampleConfig (elements in
// the order of this kernel's hash; compared canonical).
var wantSample = canonical(`table inet knit {
	set bridges {
		type ifname
		comment "knit"
		elements = { "kn-db",
			     "kn-back",
			     "kn-front" }
	}

	set internal_bridges {
		type ifname
		comment "knit"
		elements = { "kn-db" }
	}

	set intra_bridge {
		type ifname . ifname
		comment "knit"
		elements = { "kn-db" . "kn-db",
			     "kn-back" . "kn-back",
			     "kn-front" . "kn-front" }
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
		elements = { 127.0.0.1 . tcp . 9000 : 10.1.0.3 . 9000,
			     192.0.2.1 . udp . 5353 : 10.3.0.2 . 53 }
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

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		jump guard comment "knit: guard the loopback range"
	}

	chain guard {
		ip daddr 127.0.0.0/8 iifname != "lo" counter packets 0 bytes 0 drop comment "knit: 127.0.0.0/8 arrives on lo only (CVE-2020-8558)"
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump ports comment "knit: published ports"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		jump ports comment "knit: published ports, from the host itself"
	}

	chain ports {
		fib daddr type != local return comment "knit: published ports answer on the host's own addresses only"
		ip6 daddr ::1 return comment "knit: ::1 cannot be DNATed (no route_localnet for IPv6)"
		dnat ip to ip daddr . meta l4proto . th dport map @ports_v4 comment "knit: IPv4 ports published on one host address"
		meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports_any_v4 comment "knit: IPv4 ports published on every host address"
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_v6 comment "knit: IPv6 ports published on one host address"
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports_any_v6 comment "knit: IPv6 ports published on every host address"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		jump isolate comment "knit: isolate networks"
	}

	chain isolate {
		iifname . oifname @intra_bridge return comment "knit: traffic within one bridge is never isolated"
		iifname @internal_bridges counter packets 0 bytes 0 drop comment "knit: internal networks have no way out"
		oifname @internal_bridges counter packets 0 bytes 0 drop comment "knit: internal networks have no way in"
		ct status dnat return comment "knit: published ports are reachable from other networks"
		iifname @bridges oifname @bridges counter packets 0 bytes 0 drop comment "knit: no traffic between knit networks"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump hairpin comment "knit: hairpin to published ports"
		jump masq comment "knit: masquerade egress of networks"
	}

	chain hairpin {
		ct status dnat iifname . oifname @intra_bridge counter packets 0 bytes 0 masquerade comment "knit: DNATed traffic routed back into the bridge it came from"
		ct status dnat iif 0 oifname @bridges fib saddr type != local counter packets 0 bytes 0 masquerade comment "knit: DNATed traffic br_netfilter bridged back into its bridge"
	}

	chain masq {
		ip saddr 127.0.0.0/8 oifname @bridges counter packets 0 bytes 0 masquerade comment "knit: the host's 127.0.0.1 reaching a published port"
		oifname @bridges return comment "knit: traffic into a knit bridge keeps its source"
		ip saddr @masq_v4 counter packets 0 bytes 0 masquerade comment "knit: masquerade IPv4 leaving a network"
		ip6 saddr @masq_v6 counter packets 0 bytes 0 masquerade comment "knit: masquerade IPv6 leaving a network"
	}
}
`)
