package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg takes and one sendmmsg sends.
// Under load, queries queue up on the socket, and a batch costs two system
// calls instead of two per query; with one query waiting it is one of each,
// as before.
const batchSize = 32

// serveUDP is one of the reader loops of a UDP socket: it reads queries in
// batches (recvmmsg), answers what the fast path can, and sends those answers
// in one batch (sendmmsg). It returns when the socket is closed.
func (s *Server) serveUDP(l *listener) {
	defer s.wg.Done()
	rc, err := l.udp.SyscallConn()
	if err != nil {
		s.log.Error("dns: udp socket", "addr", l.addr, "err", err)
		return
	}
	b := newBatch()
	for {
		n, err := b.recv(rc)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("dns: read queries", "addr", l.addr, "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a lasting error
			continue
		}
		k := 0
		for i := range n {
			h := &b.in[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				continue // longer than any real query
			}
			src, ok := sockaddrAddrPort(&b.names[i])
			if !ok {
				continue
			}
			answer := s.handleUDP(l, b.bufs[i][:h.Len], src, b.outBufs[k][:0])
			if answer == nil {
				continue
			}
			b.outIovs[k].Base = &answer[0]
			b.outIovs[k].SetLen(len(answer))
			b.out[k].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			b.out[k].Hdr.Namelen = h.Hdr.Namelen
			k++
		}
		if err := b.send(rc, k); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// batch holds the buffers of one reader loop, allocated once, and the
// functions given to the socket (made once too, so a batch allocates nothing).
type batch struct {
	recvFn, sendFn func(fd uintptr) bool
	n              uintptr       // messages the last call took
	errno          syscall.Errno // and its error
	sent, k        int           // sendFn sends out[sent:k]

	in      [batchSize]unix.Mmsghdr
	iovs    [batchSize]unix.Iovec
	names   [batchSize]unix.RawSockaddrInet6 // large enough for IPv4 too
	bufs    [batchSize][]byte
	out     [batchSize]unix.Mmsghdr
	outIovs [batchSize]unix.Iovec
	outBufs [batchSize][]byte
}

func newBatch() *batch {
	b := &batch{}
	in := make([]byte, batchSize*pktSize)
	out := make([]byte, batchSize*ednsSize)
	for i := range batchSize {
		b.bufs[i] = in[i*pktSize : (i+1)*pktSize : (i+1)*pktSize]
		b.outBufs[i] = out[i*ednsSize : (i+1)*ednsSize : (i+1)*ednsSize]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(pktSize)
		b.in[i].Hdr.Iov = &b.iovs[i]
		b.in[i].Hdr.SetIovlen(1)
		b.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.out[i].Hdr.Iov = &b.outIovs[i]
		b.out[i].Hdr.SetIovlen(1)
	}
	b.recvFn = func(fd uintptr) bool {
		b.n, _, b.errno = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
		return b.errno != unix.EAGAIN // false: wait until readable
	}
	b.sendFn = func(fd uintptr) bool {
		b.n, _, b.errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.sent])), uintptr(b.k-b.sent), unix.MSG_DONTWAIT, 0, 0)
		return b.errno != unix.EAGAIN // false: wait until writable
	}
	return b
}

// recv waits for at least one datagram and reads as many as are queued, up to
// batchSize. An error means the socket is closed.
func (b *batch) recv(rc syscall.RawConn) (int, error) {
	for i := range b.in {
		b.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.in[i].Hdr.Flags = 0
		b.in[i].Len = 0
	}
	for {
		err := rc.Read(b.recvFn)
		switch {
		case err != nil:
			return 0, err
		case b.errno == 0:
			return int(b.n), nil
		case b.errno == unix.EINTR || b.errno == unix.ECONNREFUSED || b.errno == unix.EHOSTUNREACH || b.errno == unix.ENETUNREACH:
			continue // an interruption, or an ICMP error for an earlier answer
		default:
			return 0, b.errno
		}
	}
}

// send sends the first k prepared answers. A datagram the kernel refuses
// is skipped (the client will retry); an error means the socket is closed.
func (b *batch) send(rc syscall.RawConn, k int) error {
	for b.sent, b.k = 0, k; b.sent < b.k; {
		err := rc.Write(b.sendFn)
		switch {
		case err != nil:
			return err
		case b.errno == unix.EINTR:
		case b.errno != 0:
			b.sent++ // this datagram failed; sendmmsg reports it when it comes first
		default:
			b.sent += int(b.n)
		}
	}
	return nil
}

// sockaddrAddrPort decodes the sender's address recvmmsg wrote.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := func(p uint16) uint16 { b := (*[2]byte)(unsafe.Pointer(&p)); return uint16(b[0])<<8 | uint16(b[1]) }
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port)), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

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
