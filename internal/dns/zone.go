package dns

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// clusterDomain returns the zone of service names for Options.ClusterDomain:
// lowercase, without a trailing dot, DefaultClusterDomain when empty or
// invalid.
func clusterDomain(d string, log *slog.Logger) string {
	z := lowerName(d)
	if z == "" {
		return DefaultClusterDomain
	}
	if !isDomain(z) {
		log.Warn("dns: cluster domain is not a domain name, using the default", "clusterDomain", d, "default", DefaultClusterDomain)
		return DefaultClusterDomain
	}
	return z
}

// isDomain tells whether name, lowercase, is labels of letters, digits, '-'
// and '_' joined by dots: the names the fast path reads.
func isDomain(name string) bool {
	if len(name) > maxNameLen {
		return false
	}
	for l := range strings.SplitSeq(name, ".") {
		if !isLabel(strings.ReplaceAll(l, "_", "-")) {
			return false
		}
	}
	return true
}

// zoneRel returns name (lowercase, no trailing dot) relative to zone, "" for
// zone itself, and whether name is in zone at all.
func zoneRel[T string | []byte](name T, zone string) (T, bool) {
	n, z := len(name), len(zone)
	switch {
	case n == z && string(name) == zone:
		return name[:0], true
	case n > z && name[n-z-1] == '.' && string(name[n-z:]) == zone:
		return name[:n-z-1], true
	}
	return name[:0], false
}

// lookup returns the records of rel, a name relative to the zone; nil when
// it does not exist. Pod names are made up on the spot, as the
// specification's section 2.6 (deprecated, still required) has every
// <a>-<b>-<c>-<d>.<ns>.pod.<zone> resolve to a.b.c.d, for any namespace;
// IPv6 addresses take dashes for colons (fd00--1), as in CoreDNS.
func (sx *svcIndex) lookup(rel string) *svcEntry {
	if e, ok := sx.names[rel]; ok {
		return e
	}
	labels := strings.Split(rel, ".")
	n := len(labels)
	if labels[n-1] != "pod" {
		return nil
	}
	switch {
	case n == 1: // pod.<zone>
		return emptyEntry
	case !isLabel(labels[n-2]) || n > 3:
		return nil
	case n == 2: // <ns>.pod.<zone>
		return emptyEntry
	}
	if a, ok := podAddr(labels[0]); ok {
		return &svcEntry{addrs: packAddrs([]netip.Addr{a})}
	}
	return nil
}

// podAddr parses the dashed address of a pod name.
func podAddr(label string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ".")); err == nil && a.Is4() {
		return a, true
	}
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":")); err == nil && a.Is6() && a.Zone() == "" {
		return a, true
	}
	return netip.Addr{}, false
}

// fastLookup is the zone for answerFast: the addresses of rel for qtype and
// whether rel exists, or false when the answer is not only addresses (a
// CNAME, SRV or TXT record, a pod name), which ServeDNS gives.
func (sx *svcIndex) fastLookup(rel []byte, qtype uint16) (rrset, kind, bool) {
	if string(rel) == "pod" || bytes.HasSuffix(rel, []byte(".pod")) {
		return rrset{}, notLocal, false
	}
	e := sx.names[string(rel)]
	switch {
	case e == nil:
		return rrset{}, nxDomain, true
	case e.cname != "":
		return rrset{}, notLocal, false
	case qtype == dns.TypeA || qtype == dns.TypeAAAA:
		return e.addrs, local, true
	case len(e.srv) > 0 || e.txt != "":
		return rrset{}, notLocal, false
	}
	return rrset{}, local, true // NODATA
}

// answerZone adds to m the records of e, the entry of q's name, for q's type.
// An ExternalName service's CNAME answers every type; resolve then follows
// it (chase.go).
func (s *Server) answerZone(m *dns.Msg, q dns.Question, e *svcEntry) {
	switch {
	case e.cname != "":
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: s.header(q.Name, dns.TypeCNAME), Target: e.cname})
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA:
		m.Answer = s.appendAddrs(m.Answer, q.Name, q.Qtype, []rrset{e.addrs})
	case q.Qtype == dns.TypeSRV:
		n := len(e.srv)
		for i, start := 0, s.rotation(n); i < n; i++ {
			r := &e.srv[(start+i)%n]
			m.Answer = append(m.Answer, &dns.SRV{Hdr: s.header(q.Name, dns.TypeSRV), Priority: 0, Weight: 100, Port: r.port, Target: r.target})
		}
		// the targets' addresses; ClusterIP services' SRV records share one
		for i, r := range e.srv {
			if i == 0 || r.target != e.srv[i-1].target {
				m.Extra = s.appendAddrs(m.Extra, r.target, dns.TypeA, []rrset{r.addrs})
				m.Extra = s.appendAddrs(m.Extra, r.target, dns.TypeAAAA, []rrset{r.addrs})
			}
		}
	case q.Qtype == dns.TypeTXT && e.txt != "":
		m.Answer = append(m.Answer, &dns.TXT{Hdr: s.header(q.Name, dns.TypeTXT), Txt: []string{e.txt}})
	}
}
