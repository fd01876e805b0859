package dns

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// freebind lets a socket bind an address that is not (yet) on an interface:
// IP_FREEBIND for IPv4 sockets, IPV6_FREEBIND for IPv6 ones.
func freebind(network, address string, c syscall.RawConn) error {
	level, opt := unix.SOL_IP, unix.IP_FREEBIND
	if strings.HasSuffix(network, "6") {
		level, opt = unix.SOL_IPV6, unix.IPV6_FREEBIND
	}
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return fmt.Errorf("dns: set freebind on %s %s: %w", network, address, err)
	}
	if serr != nil {
		return fmt.Errorf("dns: set freebind on %s %s: %w", network, address, serr)
	}
	return nil
}
