package services

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// ServicePort is one load-balanced frontend: a service's port on its
// virtual addresses and, optionally, on a node port.
//
// A connection to one of VIPs on Port (or to any local address of the
// host on NodePort) is DNATed to one of Backends chosen at random, or, with
// session affinity, to the backend the client used last. A VIP uses only
// the backends of its own family; a VIP, node port or family without
// backends refuses connections at once (TCP reset, otherwise ICMP port
// unreachable) instead of letting them hang or reach a socket of the host.
type ServicePort struct {
	// Name is "namespace/service:portname", for comments, logs and errors
	// only. It must not be empty; Sync recognises an unchanged service
	// port by it, so giving each service port its own name keeps syncs
	// cheap.
	Name string
	// VIPs are the ClusterIPs and LoadBalancer ingress addresses, IPv4
	// and/or IPv6. May be empty for a node port alone.
	VIPs []netip.Addr
	// Protocol is "tcp", "udp" or "sctp".
	Protocol string
	// Port is the service port on the VIPs (1-65535).
	Port uint16
	// NodePort, when not 0, is also answered on every local address of
	// the host (fib daddr type local), like a published port: 127.0.0.1
	// included (the caller sets route_localnet on the bridges), ::1 not
	// (Linux cannot route it to another host).
	NodePort uint16
	// Backends are the ready endpoints: address and target port. Empty
	// means connections are refused at once.
	Backends []netip.AddrPort
	// AffinityTimeout > 0 turns on ClientIP session affinity: a client
	// keeps its backend until it has opened no new connection for this
	// long. Whole seconds, at most 24 hours (Kubernetes' limits).
	AffinityTimeout time.Duration
}

// String names the service port in errors and logs.
func (sp ServicePort) String() string { return fmt.Sprintf("service port %q", sp.Name) }

// maxAffinity is Kubernetes' limit on sessionAffinityConfig.clientIP.
// timeoutSeconds.
const maxAffinity = 24 * time.Hour

// normalizeServicePort validates sp and returns the form the ruleset is
// rendered from: VIPs and backends de-duplicated and sorted (IPv4 before
// IPv6), and the number of IPv4 backends. sp itself is not modified.
func normalizeServicePort(sp ServicePort) (ServicePort, int, error) {
	if err := sp.validate(); err != nil {
		return ServicePort{}, 0, fmt.Errorf("%s: %w", sp, err)
	}
	out := sp
	out.VIPs = slices.Clone(sp.VIPs)
	slices.SortFunc(out.VIPs, netip.Addr.Compare)
	out.VIPs = slices.Compact(out.VIPs)
	out.Backends = slices.Clone(sp.Backends)
	slices.SortFunc(out.Backends, compareAddrPort)
	out.Backends = slices.Compact(out.Backends)
	n4, _ := slices.BinarySearchFunc(out.Backends, netip.AddrPortFrom(netip.IPv6Unspecified(), 0), compareAddrPort)
	return out, n4, nil
}

// compareAddrPort orders IPv4 before IPv6 (netip.Addr.Compare does), then
// by address and port.
func compareAddrPort(a, b netip.AddrPort) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Port(), b.Port())
}

func (sp ServicePort) validate() error {
	if sp.Name == "" {
		return errors.New("name is empty; give it as namespace/service:port")
	}
	if _, ok := exprs.L4Proto[sp.Protocol]; !ok {
		return fmt.Errorf("protocol %q is not tcp, udp or sctp", sp.Protocol)
	}
	if sp.Port == 0 {
		return errors.New("port 0 cannot be served; give a service port from 1 to 65535")
	}
	if len(sp.VIPs) == 0 && sp.NodePort == 0 {
		return errors.New("no virtual address and no node port: nothing would reach it; give a ClusterIP, a load balancer address or a node port")
	}
	for _, a := range sp.VIPs {
		if err := checkServiceAddr(a); err != nil {
			return fmt.Errorf("virtual address %s: %w", a, err)
		}
	}
	for _, b := range sp.Backends {
		if err := checkServiceAddr(b.Addr()); err != nil {
			return fmt.Errorf("backend %s: %w", b, err)
		}
		if b.Port() == 0 {
			return fmt.Errorf("backend %s: port 0; give the endpoint's target port", b)
		}
	}
	switch t := sp.AffinityTimeout; {
	case t < 0 || t > maxAffinity:
		return fmt.Errorf("session affinity timeout %v is out of range; give 1s to %v, or 0 for none", t, maxAffinity)
	case t%time.Second != 0:
		return fmt.Errorf("session affinity timeout %v is not a whole number of seconds", t)
	}
	return nil
}

// checkServiceAddr rejects addresses that cannot be a VIP or a backend.
func checkServiceAddr(a netip.Addr) error {
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return errors.New("address is missing")
	case a.Is4In6():
		return errors.New("address is IPv4-mapped IPv6; give it in IPv4 form")
	case a.Zone() != "":
		return errors.New("address has an IPv6 zone; give it without")
	case a.IsLoopback() || a.IsMulticast():
		return errors.New("loopback and multicast addresses cannot be load balanced")
	}
	return nil
}

// affinitySeconds is the affinity timeout in seconds; 0 for none.
func (sp *ServicePort) affinitySeconds() uint32 { return uint32(sp.AffinityTimeout / time.Second) }
