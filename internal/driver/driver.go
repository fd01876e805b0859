// Package driver defines how a network kind is programmed into the kernel.
// Each driver (bridge, host, none) lives in its own sub-package and is small
// and declarative: every method is an ensure operation that may be called any
// number of times, treats "already so" as success and "already gone" as
// success on delete.
package driver

import (
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
)

// Endpoint is everything a driver needs to put one container interface in
// place.
type Endpoint struct {
	Network *v1.Network
	Spec    *v1.Endpoint
	// NetNSPath is the container's network namespace file.
	NetNSPath string
	// Gateways lists the default routes the interface carries, at most one per
	// family (the reconciler picks which interface owns the default route).
	Gateways []netip.Addr
}

// Driver programs one kind of network.
type Driver interface {
	// EnsureNetwork makes the network's host side exist as n describes it
	// (for bridge: the bridge link, its MTU, its gateway addresses, up).
	// Objects that exist but are incompatible are recreated, with the reason
	// logged.
	EnsureNetwork(n *v1.Network) error
	// DeleteNetwork removes the network's host side. Gone already is nil.
	DeleteNetwork(n *v1.Network) error
	// EnsureEndpoint makes the interface exist inside the container's
	// namespace with its MAC, addresses, MTU and routes, up, and its host side
	// attached and up.
	EnsureEndpoint(ep Endpoint) error
	// DeleteEndpoint removes the endpoint's host side (and with it the
	// container side). Gone already is nil.
	DeleteEndpoint(ep Endpoint) error
}

// Passive drives networks with no host side of their own: "host" (the
// container shares the host's namespace) and "none" (the container's own
// namespace has only loopback, which internal/netns brings up). Every method
// succeeds without touching the kernel.
type Passive struct{}

var _ Driver = Passive{}

// EnsureNetwork does nothing.
func (Passive) EnsureNetwork(*v1.Network) error { return nil }

// DeleteNetwork does nothing.
func (Passive) DeleteNetwork(*v1.Network) error { return nil }

// EnsureEndpoint does nothing.
func (Passive) EnsureEndpoint(Endpoint) error { return nil }

// DeleteEndpoint does nothing.
func (Passive) DeleteEndpoint(Endpoint) error { return nil }
