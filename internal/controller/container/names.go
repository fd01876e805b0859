package container

import (
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dns"
)

// Names is the part of knit's DNS server the controller feeds.
type Names interface {
	SetContainer(dns.Container)
	DeleteContainer(id string)
}

// dnsRecord is what DNS needs to know of a running bridge container.
func dnsRecord(ctr *v1.Container, nets map[string]*v1.Network) dns.Container {
	rec := dns.Container{ID: ctr.ID, Name: ctr.Name, Hostname: ctr.Hostname, Internal: true}
	for _, ep := range ctr.Endpoints {
		e := dns.Endpoint{NetworkID: ep.NetworkID, Aliases: ep.Aliases}
		for _, a := range ep.Addresses {
			e.Addrs = append(e.Addrs, a.Addr())
		}
		rec.Endpoints = append(rec.Endpoints, e)
		if n := nets[ep.Network]; n != nil && !n.Internal {
			rec.Internal = false
		}
	}
	for _, s := range ctr.DNS.Servers {
		rec.Upstreams = append(rec.Upstreams, netip.AddrPortFrom(s, 53))
	}
	return rec
}
