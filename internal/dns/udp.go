package dns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime/debug"

	"github.com/miekg/dns"
)

// pktSize is the longest UDP query read. Real queries are a few dozen bytes;
// longer datagrams are dropped.
const pktSize = 2048

// handleUDP takes one datagram from a UDP reader loop (sock_linux.go,
// sock_other.go). It returns the answer when the fast path has one, appended
// to out, for the loop to send; otherwise it answers itself, at once for a
// malformed query, or from a goroutine running ServeDNS. A panic is logged and
// the query dropped (the client retries); the loop goes on.
func (s *Server) handleUDP(l *listener, pkt []byte, src netip.AddrPort, out []byte) (answer []byte) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("dns: panic reading a query", "client", src, "panic", v, "stack", string(debug.Stack()))
			answer = nil
		}
	}()
	src = netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
	if answer, ok := s.answerFast(pkt, src.Addr(), out); ok {
		return answer
	}
	w := &udpWriter{l: l, src: src}
	if len(pkt) < 12 {
		return nil // not even a header: nothing to answer
	}
	hdr := dns.Header{
		Id:      binary.BigEndian.Uint16(pkt),
		Bits:    binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]),
		Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]),
		Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	// the same screening dns.Server applies to TCP queries
	switch dns.DefaultMsgAcceptFunc(hdr) {
	case dns.MsgIgnore:
		return nil
	case dns.MsgReject:
		w.writeHeader(hdr, dns.RcodeFormatError)
		return nil
	case dns.MsgRejectNotImplemented:
		w.writeHeader(hdr, dns.RcodeNotImplemented)
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(pkt); err != nil {
		w.writeHeader(hdr, dns.RcodeFormatError)
		return nil
	}
	select {
	case s.inflight <- struct{}{}:
	default:
		s.log.Debug("dns: too many queries in flight, dropping one", "client", src)
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.inflight }()
		s.ServeDNS(w, m)
	}()
	return nil
}

// udpWriter is the dns.ResponseWriter for a UDP query read by serveUDP.
type udpWriter struct {
	l   *listener
	src netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return net.UDPAddrFromAddrPort(w.l.addr) }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.src) }

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) { return w.l.udp.WriteToUDPAddrPort(b, w.src) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}

// writeHeader answers a query that could not be unpacked with a bare header:
// its ID and opcode, QR, and rcode.
func (w *udpWriter) writeHeader(h dns.Header, rcode int) {
	var b [12]byte
	binary.BigEndian.PutUint16(b[0:], h.Id)
	binary.BigEndian.PutUint16(b[2:], 0x8000|h.Bits&0x7800|uint16(rcode))
	_, _ = w.Write(b[:])
}
