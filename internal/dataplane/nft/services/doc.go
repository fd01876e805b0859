// Package services is the data-plane feature of Kubernetes Services:
// ClusterIPs, load balancer addresses and node ports, load-balanced over
// ready endpoints, with ClientIP session affinity, and refused at once
// when nothing serves them.
//
// Design notes (docs/datapath.md has the listing):
//
//   - Three lookups, whatever the number of services: "daddr . l4proto .
//     dport" in a verdict map goes to a chain shared by every service port
//     with the same number of backends K, whose one rule DNATs through a
//     global map keyed "vip . l4proto . port . numgen random mod K". A
//     chain per service and per endpoint (kube-proxy's nftables mode)
//     measured over 100× slower to install and over 50× slower to change
//     at 10,000 services (docs/benchmarks.md).
//   - Count chains are rendered in blocks of 64, so that an endpoint more
//     or less changes elements, not the shape; they are marked Keep, so a
//     full sync of a big table leaves them alone.
//   - What no service port took on a VIP or in the service ranges is
//     refused in the filter hooks (TCP reset, port unreachable).
//   - Session affinity keeps "client . vip . l4proto . port . slot" in a
//     learned set the packet path fills (a slot, not a backend: it can
//     never point at a removed one); syncs move clients to their backend's
//     new slot (affinity.go).
//   - Service ports are kept from one sync to the next (svcState), so a
//     change renders, validates and sends only the ones that changed
//     (state.go).
package services
