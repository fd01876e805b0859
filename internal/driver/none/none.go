// Package none is the driver of the "none" network: containers on it get a
// namespace of their own with only loopback, which internal/netns sets up
// when it creates the namespace. The reconciler never calls EnsureEndpoint
// for it; every method succeeds without touching the kernel.
package none

import (
	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
)

var _ driver.Driver = (*Driver)(nil)

// Driver is the none network's driver.
type Driver struct{}

// New returns the none driver.
func New() *Driver { return &Driver{} }

// EnsureNetwork does nothing: there is no host side.
func (*Driver) EnsureNetwork(*v1.Network) error { return nil }

// DeleteNetwork does nothing.
func (*Driver) DeleteNetwork(*v1.Network) error { return nil }

// EnsureEndpoint does nothing: the namespace's loopback is all there is.
func (*Driver) EnsureEndpoint(driver.Endpoint) error { return nil }

// DeleteEndpoint does nothing.
func (*Driver) DeleteEndpoint(driver.Endpoint) error { return nil }
