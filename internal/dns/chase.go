package dns

import (
	"context"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxChase bounds the CNAME chain followed through the zone (ExternalName
// services naming each other, maybe in a loop).
const maxChase = 8

// cnameTarget returns the target of m's answer when it is a lone CNAME to
// an A or AAAA question (an ExternalName service's), else "".
func cnameTarget(m *dns.Msg, q dns.Question) string {
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA || len(m.Answer) != 1 {
		return ""
	}
	if c, ok := m.Answer[0].(*dns.CNAME); ok {
		return c.Target
	}
	return ""
}

// chase appends to m, the CNAME answer to q, the records of its target as
// the client would get them asking for it: from the zone, from the
// containers it sees, or from its upstreams, as CoreDNS does for
// ExternalName services. Whatever fails leaves the answer as it is, a CNAME
// the client may follow itself: the upstreams get half of Options.Timeout,
// and internal clients never reach them.
func (s *Server) chase(m *dns.Msg, q dns.Question, target string, sn *snapshot, cl *client, tcp bool) {
	sx := s.svcs.Load()
	for range maxChase {
		name := lowerName(target)
		if rel, ok := zoneRel(name, s.zone); ok && sx != nil {
			e := sx.lookup(rel)
			switch {
			case e == nil:
				return
			case e.cname != "":
				m.Answer = append(m.Answer, &dns.CNAME{Hdr: s.header(target, dns.TypeCNAME), Target: e.cname})
				target = e.cname
				continue
			}
			m.Answer = s.appendAddrs(m.Answer, target, q.Qtype, []rrset{e.addrs})
			return
		}
		if len(name) <= maxNameLen {
			var buf [4]rrset
			sets, k := sn.matchName(cl, []byte(name), buf[:0])
			switch k {
			case local:
				m.Answer = s.appendAddrs(m.Answer, target, q.Qtype, sets)
				return
			case nxDomain:
				return
			}
		}
		if !cl.internal {
			s.chaseUpstream(m, q.Qtype, target, cl, tcp)
		}
		return
	}
}

// chaseUpstream asks the client's upstreams for target's records of type
// qtype, over the client's transport, and appends to m those of target and of
// the CNAME chain from it. A truncated answer sets TC on m, so that a UDP
// client asks again over TCP.
func (s *Server) chaseUpstream(m *dns.Msg, qtype uint16, target string, cl *client, tcp bool) {
	ups := cl.upstreams
	if len(ups) == 0 {
		ups = s.upstreams
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(target), qtype)
	q.SetEdns0(ednsSize, false)
	query, err := q.Pack()
	if err != nil {
		s.log.Debug("dns: pack query for an ExternalName target", "name", target, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout/2)
	defer cancel()
	raw, err := s.exchange(ctx, query, ups, tcp)
	if err != nil {
		s.log.Debug("dns: resolve an ExternalName target", "name", target, "err", err)
		return
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil || r.Rcode != dns.RcodeSuccess {
		return
	}
	if r.Truncated {
		m.Truncated = !tcp
		return
	}
	chain := []string{strings.ToLower(dns.Fqdn(target))}
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET || !slices.Contains(chain, strings.ToLower(h.Name)) {
			continue
		}
		if c, ok := rr.(*dns.CNAME); ok {
			chain = append(chain, strings.ToLower(c.Target))
			m.Answer = append(m.Answer, rr)
		} else if h.Rrtype == qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
}
