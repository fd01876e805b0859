//go:build !linux

package dns

import (
	"errors"
	"net"
	"syscall"
)

// serveUDP is one of the reader loops of a UDP socket, a datagram at a time.
// It returns when the socket is closed.
func (s *Server) serveUDP(l *listener) {
	defer s.wg.Done()
	buf := make([]byte, pktSize)
	out := make([]byte, 0, ednsSize)
	for {
		n, src, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if answer := s.handleUDP(l, buf[:n], src, out[:0]); answer != nil {
			_, _ = l.udp.WriteToUDPAddrPort(answer, src)
		}
	}
}

// freebind does nothing outside Linux: addresses must exist to be bound.
func freebind(network, address string, c syscall.RawConn) error { return nil }
