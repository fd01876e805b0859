// Package host is the driver of the "host" network: containers on it share
// knitd's own network namespace, so there is nothing to program. Every method
// succeeds without touching the kernel.
package host

import (
	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
)

var _ driver.Driver = (*Driver)(nil)

// Driver is the host network's driver.
type Driver struct{}

// New returns the host driver.
func New() *Driver { return &Driver{} }

// EnsureNetwork does nothing: the host's namespace always exists.
func (*Driver) EnsureNetwork(*v1.Network) error { return nil }

// DeleteNetwork does nothing.
func (*Driver) DeleteNetwork(*v1.Network) error { return nil }

// EnsureEndpoint does nothing: a host-network container has no interface of
// its own.
func (*Driver) EnsureEndpoint(driver.Endpoint) error { return nil }

// DeleteEndpoint does nothing.
func (*Driver) DeleteEndpoint(driver.Endpoint) error { return nil }
