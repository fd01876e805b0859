package nfttest

import "net/netip"

// Prefixes, Addrs and AddrPorts parse literals of tests; a bad one panics.
func Prefixes(s ...string) []netip.Prefix { return parse(netip.MustParsePrefix, s) }

// Addrs parses addresses.
func Addrs(s ...string) []netip.Addr { return parse(netip.MustParseAddr, s) }

// AddrPorts parses address:port pairs.
func AddrPorts(s ...string) []netip.AddrPort { return parse(netip.MustParseAddrPort, s) }

func parse[T any](fn func(string) T, s []string) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[i] = fn(x)
	}
	return out
}
