package dns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// listener is the server on one address: a UDP socket read by the server's own
// loop and a TCP listener served by dns.Server.
type listener struct {
	addr    netip.AddrPort
	udp     *net.UDPConn
	tcp     *dns.Server
	tcpDone chan struct{} // closed when the TCP serve loop has returned
}

// tcpTimeout bounds a TCP client's reads and writes (dns.Server's
// ReadTimeout, WriteTimeout); connections idle for 8 s are closed.
const tcpTimeout = 2 * time.Second

// SetListenAddrs makes the server listen on exactly these addresses, UDP and
// TCP, at Options.Port: it binds the new ones before it returns and closes
// those no longer wanted (add before delete). Calling it again with the same
// addresses changes nothing. An address that cannot be bound is reported in
// the joined error, the others are served all the same, and the next call
// tries it again.
//
// Sockets are bound with IP_FREEBIND (IPV6_FREEBIND), so an address that is
// not yet on an interface, such as an IPv6 gateway still in duplicate address
// detection, can be bound and is served once it appears.
func (s *Server) SetListenAddrs(addrs []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dns: set listen addresses: server closed")
	}
	return s.setListenAddrsLocked(addrs)
}

func (s *Server) setListenAddrsLocked(addrs []netip.Addr) error {
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a = a.Unmap(); a.IsValid() {
			want[a] = true
		}
	}
	var errs []error
	for _, a := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if s.listeners[a] != nil {
			continue
		}
		l, err := s.listen(netip.AddrPortFrom(a, s.port))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.listeners[a] = l
	}
	for a, l := range s.listeners {
		if !want[a] {
			l.close()
			delete(s.listeners, a)
		}
	}
	self := map[netip.AddrPort]bool{}
	for a := range s.listeners {
		self[netip.AddrPortFrom(a, s.port)] = true
	}
	s.self.Store(&self)
	return errors.Join(errs...)
}

// listen binds UDP and TCP on ap and starts serving both.
func (s *Server) listen(ap netip.AddrPort) (*listener, error) {
	lc := net.ListenConfig{Control: freebind}
	pc, err := lc.ListenPacket(context.Background(), "udp", ap.String())
	if err != nil {
		return nil, fmt.Errorf("dns: listen on %s/udp: %w", ap, err)
	}
	ln, err := lc.Listen(context.Background(), "tcp", ap.String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: listen on %s/tcp: %w", ap, err)
	}
	l := &listener{addr: ap, udp: pc.(*net.UDPConn), tcpDone: make(chan struct{})}
	started := make(chan struct{})
	l.tcp = &dns.Server{
		Listener:          ln,
		Handler:           s,
		ReadTimeout:       tcpTimeout,
		WriteTimeout:      tcpTimeout,
		NotifyStartedFunc: func() { close(started) },
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(l.tcpDone)
		if err := l.tcp.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("dns: tcp server stopped", "addr", ap, "err", err)
		}
	}()
	select {
	case <-started:
	case <-l.tcpDone:
		ln.Close()
		pc.Close()
		return nil, fmt.Errorf("dns: serve %s/tcp: server did not start", ap)
	}
	for range s.readers {
		s.wg.Add(1)
		go s.serveUDP(l)
	}
	s.log.Debug("dns: listening", "addr", ap)
	return l, nil
}

// close closes both sockets. UDP readers return at once; TCP connections
// still forwarding a query finish in the background (Server.Close cancels
// them and waits).
func (l *listener) close() {
	l.udp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // close the listener and unblock idle connections, without waiting
	_ = l.tcp.ShutdownContext(ctx)
}
