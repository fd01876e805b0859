package dns

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// indexBuilder builds one svcIndex.
type indexBuilder struct {
	suffix string // "." + zone + "."
	names  map[string]*svcEntry
	ptr    map[netip.Addr]svcPTR
	free   []svcEntry // see newEntry
	log    *slog.Logger
}

// buildIndex returns the index of svcs in zone, with the names every zone
// has: itself, svc.<zone> and dns-version.<zone>.
func buildIndex(svcs []Service, zone string, log *slog.Logger) *svcIndex {
	// sized for the usual: per service, its name, one per named port and a
	// _<proto> parent for them, one per endpoint; an address per service
	// and endpoint
	names, ptrs := 3, 0
	for i := range svcs {
		names += 2 + len(svcs[i].Ports) + len(svcs[i].Endpoints)
		ptrs += len(svcs[i].ClusterIPs) + len(svcs[i].Endpoints)
	}
	b := &indexBuilder{
		suffix: "." + zone + ".",
		names:  make(map[string]*svcEntry, names),
		ptr:    make(map[netip.Addr]svcPTR, ptrs),
		log:    log,
	}
	b.names[""] = emptyEntry
	b.names["svc"] = emptyEntry
	b.names["dns-version"] = &svcEntry{txt: SchemaVersion}
	for i := range svcs {
		b.service(&svcs[i])
	}
	return &svcIndex{names: b.names, ptr: b.ptr}
}

// service enters the names of one service: its namespace, and the records
// of its kind.
func (b *indexBuilder) service(svc *Service) {
	name, ns := lowerName(svc.Name), lowerName(svc.Namespace)
	if ns == "" {
		ns = "default"
	}
	// base is the service's name in the zone: a substring of target, the
	// name in full
	target := name + "." + ns + ".svc" + b.suffix
	base := target[:len(target)-len(b.suffix)]
	if !isLabel(name) || !isLabel(ns) || !b.fits(base) {
		b.log.Warn("dns: service ignored: its name and namespace must be DNS labels", "service", svc.Namespace+"/"+svc.Name)
		return
	}
	b.exist(base[len(name)+1:]) // <ns>.svc: a namespace with services exists
	switch {
	case svc.ExternalName != "":
		b.externalName(base, svc)
	case svc.Headless:
		b.headless(base, svc)
	default:
		b.clusterIP(base, target, svc)
	}
}

// externalName enters an ExternalName service: a CNAME. One whose target is
// not a domain name exists without records.
func (b *indexBuilder) externalName(base string, svc *Service) {
	target := dns.Fqdn(svc.ExternalName)
	if _, ok := dns.IsDomainName(target); !ok || target == "." {
		b.log.Warn("dns: service's externalName is not a domain name: no CNAME", "service", svc.Namespace+"/"+svc.Name, "externalName", svc.ExternalName)
		b.exist(base)
		return
	}
	if e := b.entry(base); e.cname == "" {
		e.cname = target
	}
}

// clusterIP enters a service with a virtual address, named base in the zone
// and target in full: its name, its named ports and the PTR records of its
// addresses. Without an address (not yet allocated), the name exists with no
// records.
func (b *indexBuilder) clusterIP(base, target string, svc *Service) {
	addrs := normAddrs(svc.ClusterIPs)
	rs := packAddrs(addrs)
	e := b.entry(base)
	e.addrs = merge(e.addrs, rs)
	for _, a := range addrs {
		b.setPTR(a, target, ptrClusterIP)
	}
	for _, p := range svc.Ports {
		if key, ok := b.srvName(p, base); ok {
			e := b.entry(key)
			e.srv = append(e.srv, srvRecord{target: target, port: p.Port, addrs: rs})
		}
	}
}

// host is the endpoints of a headless service sharing one hostname label.
type host struct {
	label    string
	explicit bool // the label is a Hostname, not a dashed address
	addrs    []netip.Addr
	ports    []ServicePort
	target   string // fully qualified name; "" when too long
	rs       rrset
}

// headless enters a headless service: its name for all endpoint addresses,
// one name per endpoint, SRV records per named port and endpoint, and PTR
// records. Without a ready endpoint, nothing: the name does not exist
// (specification 2.4.1).
func (b *indexBuilder) headless(base string, svc *Service) {
	var hosts []*host
	byLabel := map[string]*host{}
	for _, ep := range svc.Endpoints {
		addrs := normAddrs(ep.Addrs)
		if len(addrs) == 0 {
			continue
		}
		label, explicit := lowerName(ep.Hostname), true
		if !isLabel(label) {
			label, explicit = dashed(addrs[0]), false
		}
		h := byLabel[label]
		if h == nil {
			h = &host{label: label, explicit: explicit}
			byLabel[label] = h
			hosts = append(hosts, h)
		}
		for _, a := range addrs {
			if !slices.Contains(h.addrs, a) {
				h.addrs = append(h.addrs, a)
			}
		}
		h.ports = append(h.ports, ep.Ports...)
	}
	if len(hosts) == 0 {
		return
	}
	var all []netip.Addr
	for _, h := range hosts {
		all = append(all, h.addrs...)
		target := h.label + "." + base + b.suffix
		rel := target[:len(target)-len(b.suffix)]
		if !b.fits(rel) {
			continue
		}
		h.target, h.rs = target, packAddrs(h.addrs)
		e := b.entry(rel)
		e.addrs = merge(e.addrs, h.rs)
		rank := uint8(ptrDashed)
		if h.explicit {
			rank = ptrHostname
		}
		for _, a := range h.addrs {
			b.setPTR(a, h.target, rank)
		}
	}
	slices.SortFunc(all, netip.Addr.Compare)
	e := b.entry(base)
	e.addrs = merge(e.addrs, packAddrs(slices.Compact(all)))
	for _, p := range svc.Ports {
		key, ok := b.srvName(p, base)
		if !ok {
			continue
		}
		var recs []srvRecord
		for _, h := range hosts {
			for _, hp := range h.ports {
				if h.target == "" || !samePort(hp, p) {
					continue
				}
				r := srvRecord{target: h.target, port: hp.Port, addrs: h.rs}
				if !slices.ContainsFunc(recs, func(o srvRecord) bool { return o.target == r.target && o.port == r.port }) {
					recs = append(recs, r)
				}
			}
		}
		if len(recs) > 0 {
			e := b.entry(key)
			e.srv = append(e.srv, recs...)
		}
	}
}

// entry returns the entry of rel to write to, making it (and its
// ancestors, as empty non-terminals) when new.
func (b *indexBuilder) entry(rel string) *svcEntry {
	e, ok := b.names[rel]
	if ok && e != emptyEntry {
		return e
	}
	if !ok {
		_, parent, _ := strings.Cut(rel, ".")
		b.exist(parent)
	}
	e = b.newEntry()
	b.names[rel] = e
	return e
}

// newEntry returns a new entry from the builder's current block of them:
// entries are allocated 256 at a time, not one by one.
func (b *indexBuilder) newEntry() *svcEntry {
	if len(b.free) == 0 {
		b.free = make([]svcEntry, 256)
	}
	e := &b.free[0]
	b.free = b.free[1:]
	return e
}

// exist makes rel and its ancestors exist, without records of their own.
func (b *indexBuilder) exist(rel string) {
	for rel != "" {
		if _, ok := b.names[rel]; ok {
			return // and so do its ancestors
		}
		b.names[rel] = emptyEntry
		_, rel, _ = strings.Cut(rel, ".")
	}
}

// fits tells whether rel in the zone is at most 253 characters long.
func (b *indexBuilder) fits(rel string) bool { return len(rel)+len(b.suffix)-1 <= maxNameLen }

func (b *indexBuilder) setPTR(a netip.Addr, target string, rank uint8) {
	if cur, ok := b.ptr[a]; !ok || rank < cur.rank || rank == cur.rank && target < cur.target {
		b.ptr[a] = svcPTR{target: target, rank: rank}
	}
}

// srvName is the name of the SRV records of port p of the service named
// base: _<port>._<proto>.<base>. An unnamed port has none.
func (b *indexBuilder) srvName(p ServicePort, base string) (string, bool) {
	name, proto := lowerName(p.Name), protocol(p)
	if !isLabel(name) || !isLabel(proto) {
		return "", false
	}
	key := "_" + name + "._" + proto + "." + base
	return key, b.fits(key)
}

func protocol(p ServicePort) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return lowerName(p.Protocol)
}

// samePort tells whether an endpoint's port serves the service port p.
func samePort(ep, p ServicePort) bool {
	return strings.EqualFold(ep.Name, p.Name) && protocol(ep) == protocol(p)
}

// isLabel tells whether s, lowercase, is a DNS label as Kubernetes names are:
// 1 to 63 letters, digits and '-'.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// dashed is an address as a label: 10-1-2-3, fd00--1.
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}

// normAddrs returns the valid addresses of addrs, unmapped, each once.
func normAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap().WithZone(""); a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// merge returns the addresses of both, each once. Names are rarely entered
// twice (a hostname two endpoints share, a service given twice), so the
// common case is rs empty, and add is returned as it is.
func merge(rs, add rrset) rrset {
	if len(rs.addrs) == 0 {
		return add
	}
	return packAddrs(normAddrs(append(rs.list(), add.list()...)))
}

// list returns the addresses of rs, IPv4 first.
func (rs *rrset) list() []netip.Addr {
	var out []netip.Addr
	for i := 0; i < len(rs.v4()); i += 4 {
		out = append(out, netip.AddrFrom4([4]byte(rs.v4()[i:])))
	}
	for i := 0; i < len(rs.v6()); i += 16 {
		out = append(out, netip.AddrFrom16([16]byte(rs.v6()[i:])))
	}
	return out
}
