// Package nft is knit's nftables engine: it owns "table inet knit" in one
// network namespace and writes into it what its features want, one
// netlink transaction per Sync. It knows no feature: published ports,
// services, network policy (the packages below this one) and whatever
// comes next each implement Feature and are handed to New.
//
// Design notes (docs/datapath.md has the hooks, priorities and the whole
// listing):
//
//   - One table, both families, owned entirely by this package. Nothing
//     else writes it, so Sync is declarative: whatever no feature renders
//     is removed. Other tables (podman's, Docker's, the host's) are never
//     touched.
//   - Kube-proxy's shape: features keep their chains static and put what
//     changes (bridges, subnets, port mappings, VIPs, backends, policy
//     groups) in sets and maps. A Feature's Shape is its sets, chains and
//     rules in the base chains; the Table owns the base chains (Hook) and
//     orders the features' rules in them.
//   - Sync never deletes the table. A full sync adds the table (a no-op
//     when present), flushes and refills sets, flushes chains and appends
//     their rules, all in one transaction: a packet sees the old ruleset
//     or the new one, the table's handle survives, and conntrack entries
//     (NAT bindings included) are untouched, so restarting knitd does not
//     interrupt traffic. Learned sets (filled by the packet path) are kept,
//     and chains marked Keep whose rules the table already has are left
//     alone when the table is big.
//   - Partial syncs: while no feature's shape changes, Sync sends only
//     the element changes the features hand it, which they compute from
//     what changed (one more port at 1,000: under 1 ms instead of a full
//     sync's 4 ms). The first sync, any sync after an error, one after a
//     shape change, one a feature asks for and one an hour are full.
//   - Elements go out in batches of at most 512 per message (the library
//     silently truncates larger ones) over a socket with 16 MiB buffers,
//     after the rules: the kernel checks a map's elements against every
//     chain that looks it up, and checking each element as it comes is
//     cheaper than walking the map once per chain.
//   - KeyedSet and IntervalSet keep a feature's desired elements and what
//     was committed, so that a feature changing one container's elements
//     sends just those.
//
// The product never executes nft, iptables or ip; tests use nft only to look.
package nft
