//go:build !linux

package dns

import "syscall"

// freebind does nothing outside Linux: addresses must exist to be bound.
func freebind(network, address string, c syscall.RawConn) error { return nil }
