package dns

import (
	"net"
	"net/netip"
	"runtime/debug"

	"github.com/miekg/dns"
)

// ServeDNS answers one query; it is the server's dns.Handler. TCP queries
// come here from dns.Server, UDP queries from the server's UDP loop when the
// fast path leaves them. The client is taken from w.RemoteAddr(), and the
// transport from its type (*net.TCPAddr is TCP, anything else UDP).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer s.recoverServfail(w, r)
	if r == nil || r.Response {
		return // never answer an answer: that is how loops start
	}
	src, tcp := peer(w)
	reply, cl := s.resolve(r, src, tcp)
	if reply == nil {
		s.forward(w, r, cl, tcp)
		return
	}
	if err := w.WriteMsg(reply); err != nil {
		s.log.Debug("dns: write answer", "client", src, "err", err)
	}
}

// peer returns the client's address and whether it came over TCP.
func peer(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap().WithZone(""), false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// resolve returns the answer to r when the server gives it itself: local
// names, NXDOMAIN, REFUSED for internal clients, and errors in the query.
// Otherwise it returns nil and the client whose upstreams get the query. It
// blocks only to follow an ExternalName service's CNAME (chase.go).
func (s *Server) resolve(r *dns.Msg, src netip.Addr, tcp bool) (*dns.Msg, *client) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	opt := r.IsEdns0()
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
	}
	if m.Rcode != dns.RcodeSuccess {
		return s.finish(m, opt, tcp), nil
	}
	sn := s.snap.Load()
	cl := sn.client(src)
	q := r.Question[0]
	k := notLocal
	if q.Qclass == dns.ClassINET {
		k = s.answerLocal(m, sn, cl, q)
	}
	switch {
	case k == local:
		m.Authoritative = true
		if target := cnameTarget(m, q); target != "" {
			s.chase(m, q, target, sn, cl, tcp)
		}
	case k == nxDomain:
		m.Authoritative = true
		m.Rcode = dns.RcodeNameError
	case cl.internal:
		m.Rcode = dns.RcodeRefused
	default:
		return nil, cl
	}
	return s.finish(m, opt, tcp), nil
}

// answerLocal adds to m the answers to q from the services and from the
// containers the client sees, and tells what the server knows of the name.
func (s *Server) answerLocal(m *dns.Msg, sn *snapshot, cl *client, q dns.Question) kind {
	name := lowerName(q.Name)
	sx := s.svcs.Load()
	if a, ok := reverseAddr(name); ok {
		// a service's name first: every client sees it, and it is the name
		// a headless endpoint resolves itself by
		target, k := sn.matchPTR(cl, a)
		if t, ok := sx.ptrOf(a); ok {
			target, k = t, local
		}
		if k == local && q.Qtype == dns.TypePTR {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: s.header(q.Name, dns.TypePTR), Ptr: target})
		}
		return k
	}
	if sx != nil {
		if rel, ok := zoneRel(name, s.zone); ok {
			e := sx.lookup(rel)
			if e == nil {
				return nxDomain
			}
			s.answerZone(m, q, e)
			return local
		}
	}
	if len(name) > maxNameLen {
		return notLocal
	}
	var buf [4]rrset
	sets, k := sn.matchName(cl, []byte(name), buf[:0])
	if k == local {
		m.Answer = s.appendAddrs(m.Answer, q.Name, q.Qtype, sets)
	}
	return k
}

// appendAddrs appends to rrs the A (or AAAA, by qtype; other types: none)
// records of the addresses in sets, named name, rotated per call (round
// robin).
func (s *Server) appendAddrs(rrs []dns.RR, name string, qtype uint16, sets []rrset) []dns.RR {
	switch qtype {
	case dns.TypeA:
		n := count(sets, false)
		for i, start := 0, s.rotation(n); i < n; i++ {
			b := nth4(sets, (start+i)%n)
			rrs = append(rrs, &dns.A{Hdr: s.header(name, dns.TypeA), A: net.IP(b[:])})
		}
	case dns.TypeAAAA:
		n := count(sets, true)
		for i, start := 0, s.rotation(n); i < n; i++ {
			b := nth16(sets, (start+i)%n)
			rrs = append(rrs, &dns.AAAA{Hdr: s.header(name, dns.TypeAAAA), AAAA: net.IP(b[:])})
		}
	}
	return rrs
}

func (s *Server) header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
}

// finish adds an OPT record when the query had one and, for UDP, truncates
// the answer to what the client accepts.
func (s *Server) finish(m *dns.Msg, opt *dns.OPT, tcp bool) *dns.Msg {
	if opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	if tcp {
		m.Compress = true
	} else {
		m.Truncate(udpSize(opt))
	}
	return m
}

// udpSize is the largest UDP answer a client with this OPT record (nil: none)
// takes from the server.
func udpSize(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return min(max(int(opt.UDPSize()), dns.MinMsgSize), ednsSize)
}

// rotation returns where a round-robin answer of n records starts.
func (s *Server) rotation(n int) int {
	if n < 2 {
		return 0
	}
	return int(s.rr.Add(1) % uint32(n))
}

// count is the number of IPv4 (or IPv6) addresses in sets.
func count(sets []rrset, v6 bool) int {
	n := 0
	for _, rs := range sets {
		n += rs.count(v6)
	}
	return n
}

// nth4 is the i-th IPv4 address of sets, counted across them.
func nth4(sets []rrset, i int) [4]byte {
	for _, rs := range sets {
		if v4 := rs.v4(); 4*i < len(v4) {
			return [4]byte(v4[4*i:])
		}
		i -= int(rs.n4)
	}
	panic("dns: address index out of range")
}

// nth16 is the i-th IPv6 address of sets, counted across them.
func nth16(sets []rrset, i int) [16]byte {
	for _, rs := range sets {
		if v6 := rs.v6(); 16*i < len(v6) {
			return [16]byte(v6[16*i:])
		}
		i -= len(rs.v6()) / 16
	}
	panic("dns: address index out of range")
}

// recoverServfail, deferred by ServeDNS, turns a panic into a log line and a
// SERVFAIL answer.
func (s *Server) recoverServfail(w dns.ResponseWriter, r *dns.Msg) {
	v := recover()
	if v == nil {
		return
	}
	s.log.Error("dns: panic answering a query", "panic", v, "stack", string(debug.Stack()))
	if r != nil {
		defer func() { _ = recover() }() // the writer may be what panicked
		s.writeRcode(w, r, dns.RcodeServerFailure)
	}
}

// writeRcode answers r with just an rcode (and an OPT record when r had one).
func (s *Server) writeRcode(w dns.ResponseWriter, r *dns.Msg, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	_ = w.WriteMsg(m)
}
