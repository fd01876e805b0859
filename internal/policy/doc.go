// Package policy compiles Kubernetes NetworkPolicies (networking.k8s.io/v1)
// into the form knit's nftables data plane enforces, and explains verdicts
// from that same form. It is pure: no kernel, no store.
//
// # Semantics
//
// Exactly the upstream API, as Calico and Cilium implement it:
//
//   - A policy applies to the pods of its own namespace that spec.podSelector
//     matches (all of them when empty). Its effective policyTypes are the
//     given ones, or Ingress plus Egress when spec.egress is non-empty.
//   - A pod is isolated for ingress (egress) when at least one policy with
//     that type selects it; the two directions are independent. A new
//     connection is allowed in an isolated direction iff at least one rule of
//     one of those policies allows it (the union). An isolated direction
//     without rules allows nothing.
//   - A rule with no from/to matches every peer; with no ports, every
//     protocol and port. A peer is podSelector (pods of the policy's
//     namespace), namespaceSelector (all pods of the matching namespaces),
//     both in one peer (AND), or ipBlock (cidr minus except). Separate peers
//     and separate ports are ORed.
//   - Ports: protocol TCP (default), UDP or SCTP; a number, a number range
//     (port..endPort) or a container port name. A name is resolved against
//     the destination pod: for ingress the selected pod, for egress the peer
//     pod. It matches the container port with that name and the rule's
//     protocol; a destination that is not a pod has no named ports.
//   - A connection needs both ends: egress allowed at the source pod when it
//     is egress-isolated, and ingress allowed at the destination pod when it
//     is ingress-isolated. Addresses that belong to no known pod are never
//     isolated themselves. Traffic of a pod to itself never leaves its
//     network namespace, so no policy applies to it (upstream's
//     "loopback follows no policy").
//
// Choices where upstream leaves room:
//
//   - ipBlock matches pod addresses too (as Calico does; Cilium does not).
//     Consistently, an egress rule with an ipBlock peer and a named port
//     matches the pods inside the block that have that named port.
//   - Invalid pieces that API validation should have rejected fail closed:
//     a peer with ipBlock and a selector, an empty peer, an ipBlock whose
//     cidr or one of whose excepts does not parse, an unknown protocol, a
//     port outside 1-65535, endPort below port, with a named port or
//     without a port: each matches nothing (the rule's other peers and
//     ports still count).
//     An except that is not inside the cidr removes only what it covers.
//     A cidr with host bits set means its network.
//   - Pods given with the same address (containers sharing a network
//     namespace) are one endpoint to the kernel: the address is isolated by
//     the union of the policies selecting any of them, named ports resolve
//     against all of their container ports, and the address is a peer of
//     any selector that matches one of them.
//
// # Compiled form
//
// Pods with the same set of isolating policies (and, for ingress, the same
// resolution of the named ports those policies use) form a group. The data
// plane looks the packet's pod address up in IngressGroup / EgressGroup (a
// map: address → group) and then the one key group . peer . protocol .
// port in an interval (pipapo) set of Allow elements: two lookups per new
// connection and direction, however many policies there are (pipapo's
// own cost grows with the number of elements in the set). Only new
// connections are checked; replies ride on conntrack.
//
// Allow elements of one group are disjoint, because the kernel's pipapo
// sets reject an element whose start or end lies in an existing one
// (nft_pipapo_insert returns ENOTEMPTY). Proto 0 means any protocol with
// ports 0-65535; the data plane writes it as the range 0-255. For protocols
// without ports (ICMP) the data plane should look up port 0: only
// any-protocol elements match them, as in Kubernetes.
//
// Group IDs are a hash of the group's identity (direction, policy keys,
// named port resolution) with collisions resolved in key order, so
// compiling equal input gives identical output and a change to one policy
// leaves the IDs (and elements) of unrelated groups alone. A Compiler
// keeps the previous compilation and redoes only what a change touches.
//
// Trace answers from the group maps and elements only, as the kernel
// would; which rules allowed a connection comes from the per-rule
// allowances the elements were built from, kept for explanation.
package policy
