package dns

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
)

// SchemaVersion is the version of the Kubernetes DNS-Based Service Discovery
// specification the server implements, the TXT record of dns-version.<zone>.
const SchemaVersion = "1.1.0"

// Service is one Kubernetes Service as DNS sees it.
type Service struct {
	// Name and Namespace are DNS labels; an empty Namespace is "default".
	Name, Namespace string
	// ClusterIPs are the service's virtual addresses, IPv4 and/or IPv6; empty
	// for headless and ExternalName services.
	ClusterIPs []netip.Addr
	// Headless is true for clusterIP: None.
	Headless bool
	// ExternalName, when set, makes the service an alias (type ExternalName),
	// answered as a CNAME to it; ClusterIPs, Headless and Endpoints are then
	// ignored.
	ExternalName string
	// Ports are the service's ports; the named ones have SRV records.
	Ports []ServicePort
	// Endpoints are the service's ready endpoints (all of them when it
	// publishes not-ready addresses). Only a headless service's are used: for
	// its A/AAAA, SRV and PTR records.
	Endpoints []ServiceEndpoint
}

// ServicePort is one port of a service, or the target port of one on an
// endpoint.
type ServicePort struct {
	// Name is the port's name ("" for an unnamed port, which has no SRV
	// record); an endpoint's port has the name of the service port it serves.
	Name string
	// Protocol is "tcp", "udp" or "sctp", in any case; "" means tcp.
	Protocol string
	Port     uint16
}

// ServiceEndpoint is one ready endpoint of a service.
type ServiceEndpoint struct {
	// Hostname is the endpoint's label in <hostname>.<svc>.<ns>.svc.<zone>;
	// empty (or not a valid label), the endpoint's first address in dashed
	// form stands for it: 10-1-2-3, or fd00--1 for fd00::1.
	Hostname string
	Addrs    []netip.Addr
	// Ports are the endpoint's target ports, named as the service ports they
	// serve. The endpoint serves only these: a named service port it does not
	// list has no SRV record pointing at it.
	Ports []ServicePort
}

// svcIndex is the immutable index of the services, published whole through
// Server.svcs by SetServices.
type svcIndex struct {
	// names maps every name that exists in the zone, relative to it and
	// lowercase ("web.default.svc"; "" is the zone itself), to its records.
	// Empty non-terminals (a namespace, "_tcp.web.default.svc") map to
	// emptyEntry. Pod names (<a>-<b>-<c>-<d>.<ns>.pod) are not in it: see
	// lookup.
	names map[string]*svcEntry
	// ptr maps cluster IPs and headless endpoint addresses to their name.
	ptr map[netip.Addr]svcPTR
}

// svcEntry is the records of one name in the zone.
type svcEntry struct {
	addrs rrset       // A and AAAA
	srv   []srvRecord // SRV
	cname string      // an ExternalName service's target, fully qualified
	txt   string      // dns-version's
}

// emptyEntry is the entry of the names that exist without records; it is
// shared, so never written.
var emptyEntry = &svcEntry{}

// srvRecord is one SRV record: its target, fully qualified, the port, and the
// target's addresses for the additional section.
type srvRecord struct {
	target string
	port   uint16
	addrs  rrset
}

// svcPTR is the PTR target of an address, with its rank: when several names
// claim one address, the lowest rank wins, then the first target in order.
type svcPTR struct {
	target string
	rank   uint8 // ptrClusterIP, ptrHostname or ptrDashed
}

const (
	ptrClusterIP = iota
	ptrHostname  // a headless endpoint with a Hostname of its own
	ptrDashed    // a headless endpoint known by its dashed address
)

// SetServices replaces every service the server knows by svcs; the next query
// sees only these. The first call starts serving the zone: until then, names
// under it are not the server's (knit without Kubernetes forwards them like
// any other name).
//
// The index is built anew, off to the side, and published with one atomic
// store, so queries never wait for it: 10,000 services take a few tens of
// milliseconds (BenchmarkSetServices). A call with the same services as the
// last one costs only a hash of them (about 2 ms for 10,000) and
// changes nothing. Invalid entries (a name that is not a DNS label, an
// ExternalName that is not a domain name) are logged and left out.
func (s *Server) SetServices(svcs []Service) {
	s.svcMu.Lock()
	defer s.svcMu.Unlock()
	sum := digest(s.svcSeed, svcs, &s.svcBuf)
	if s.svcs.Load() != nil && sum == s.svcSum {
		return
	}
	s.svcs.Store(buildIndex(svcs, s.zone, s.log))
	s.svcSum = sum
}

// digest is a hash of svcs, seeded per server so that no input is known to
// collide with another: SetServices skips a rebuild when it matches the
// last call's. The services are serialized into buf (reused from call to
// call), then hashed in one go.
func digest(seed maphash.Seed, svcs []Service, buf *[]byte) uint64 {
	b := (*buf)[:0]
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	addrs := func(b []byte, as []netip.Addr) []byte {
		b = binary.AppendUvarint(b, uint64(len(as)))
		for _, a := range as {
			a16 := a.As16()
			b = str(append(append(b, a16[:]...), byte(a.BitLen())), a.Zone())
		}
		return b
	}
	ports := func(b []byte, ps []ServicePort) []byte {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range ps {
			b = binary.BigEndian.AppendUint16(str(str(b, p.Name), p.Protocol), p.Port)
		}
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(svcs)))
	for i := range svcs {
		svc := &svcs[i]
		b = addrs(str(str(b, svc.Name), svc.Namespace), svc.ClusterIPs)
		if svc.Headless {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = ports(str(b, svc.ExternalName), svc.Ports)
		b = binary.AppendUvarint(b, uint64(len(svc.Endpoints)))
		for _, ep := range svc.Endpoints {
			b = ports(addrs(str(b, ep.Hostname), ep.Addrs), ep.Ports)
		}
	}
	*buf = b
	return maphash.Bytes(seed, b)
}

// ptrOf returns the PTR target of a service address; sx may be nil.
func (sx *svcIndex) ptrOf(a netip.Addr) (string, bool) {
	if sx == nil {
		return "", false
	}
	p, ok := sx.ptr[a]
	return p.target, ok
}
