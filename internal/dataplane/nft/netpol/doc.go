// Package netpol is the data-plane feature of Kubernetes NetworkPolicy:
// it enforces what package policy compiled, counts and logs what it
// denies (DropCounts, NewDropReader), with a fixed set of rules whatever
// the number of policies.
//
// Design notes (docs/datapath.md, "Network policy", has the listing):
//
//   - Per new connection and direction, a hash lookup of the isolated
//     pod's address (pol_eg_v4 for the source, pol_in_v4 for the
//     destination, and the v6 maps) gives its group's key, then "key .
//     peer . protocol . port" is looked up in an interval (pipapo) set of
//     allowed ranges. Established and related packets return first;
//     replies ride on conntrack.
//   - A policy change changes elements only: the chains are rendered when
//     there is a policy, whatever it holds, so only none to some (and
//     back) is a change of shape. Partial syncs compare the last applied
//     Compiled with the new one group by group and send only what
//     changed, without deleting allow elements (see polState).
//   - Full syncs do not flush the pipapo sets: the kernel takes seconds to
//     flush one of 16,000 elements (it walks the set for each), against
//     0.1 s to delete the set and fill a new one. The engine recreates
//     interval sets with concatenated keys.
//   - Denied packets get their group as packet mark (pol_groups maps a key
//     to its group), are counted per group in pol_drops, a set the packet
//     path fills ("update @pol_drops { meta mark }": an element with a
//     counter per group ever denied), logged to NFLOG group PolicyLogGroup
//     at a bounded rate with the direction in the prefix and the group in
//     the mark, and dropped. Full syncs flush pol_drops: its counts start
//     again from zero then.
package netpol
