// Package ports is the data-plane feature of published ports: DNAT maps
// from the host's addresses to containers, hairpin, the host's own
// 127.0.0.1, and the CVE-2020-8558 guard.
//
// Design notes (docs/datapath.md has the listing):
//
//   - Published ports are DNAT maps keyed by "daddr . l4proto . dport"
//     (bound to one host address) and "l4proto . dport" (every address),
//     looked up for destinations that are local addresses of the host, in
//     prerouting and in output. Rules never grow with the number of ports.
//   - Each owner (a container) sets its own mappings; a change sends only
//     that owner's elements.
//   - Hairpin, 127.0.0.1 and the loopback guard each take one rule.
package ports

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/conntrack"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// Port is one published port, ranges already expanded by the caller.
//
// A wildcard mapping (HostIP invalid, or the unspecified address of
// ContainerIP's family) answers on every local address of the host of
// ContainerIP's family; a dual-stack container publishes one Port per
// family. A mapping bound to a host address beats a wildcard on the same
// protocol and port. IPv6 ::1 cannot be published: Linux has no
// route_localnet for IPv6, so wildcard IPv6 mappings answer on the host's
// global addresses only.
type Port struct {
	Proto         string     // "tcp", "udp" or "sctp"
	HostIP        netip.Addr // invalid (zero) = every local address of the host
	HostPort      uint16
	ContainerIP   netip.Addr // same family as HostIP when HostIP is set
	ContainerPort uint16
}

// String names the mapping in errors and logs: "tcp 192.0.2.1:8080 ->
// 10.1.0.2:80", with "*" for a missing host address.
func (p Port) String() string {
	host := netip.AddrPortFrom(p.HostIP, p.HostPort).String()
	switch {
	case p.HostIP.IsValid():
	case p.ContainerIP.Is6():
		host = fmt.Sprintf("[*]:%d", p.HostPort)
	default:
		host = fmt.Sprintf("*:%d", p.HostPort)
	}
	return fmt.Sprintf("%s %s -> %s", p.Proto, host, netip.AddrPortFrom(p.ContainerIP, p.ContainerPort))
}

func (p Port) wildcard() bool { return !p.HostIP.IsValid() || p.HostIP.IsUnspecified() }

// portKey identifies what a mapping claims on the host: a wildcard claims
// the port on every address of its family. (Fixed-size fields: 10,000 of
// them are hashed on every sync.)
type portKey struct {
	host  [16]byte // zero for a wildcard
	port  uint16
	proto byte
	v6    bool
}

// Normalize validates the mappings and returns a copy with wildcard
// host addresses made zero. The first invalid mapping is named in the
// error. The order is kept: mappings are elements of hash maps, whose
// content does not depend on it.
func Normalize(in []Port) ([]Port, error) {
	out := make([]Port, 0, len(in))
	seen := make(map[portKey]Port, len(in))
	for _, p := range in {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("published port %s: %w", p, err)
		}
		given := p
		p = p.normal()
		k := p.key()
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("published port %s: host port already published by %s; a host address, protocol and port go to one container", given, prev)
		}
		seen[k] = given
		out = append(out, p)
	}
	return out, nil
}

// normal is p with a wildcard host address made zero.
func (p Port) normal() Port {
	if p.wildcard() {
		p.HostIP = netip.Addr{}
	}
	return p
}

// key is what a normal mapping claims.
func (p Port) key() portKey {
	return portKey{host: p.HostIP.As16(), port: p.HostPort, proto: exprs.L4Proto[p.Proto], v6: p.ContainerIP.Is6()}
}

func (p Port) validate() error {
	if _, ok := exprs.L4Proto[p.Proto]; !ok {
		return fmt.Errorf("protocol %q is not tcp, udp or sctp", p.Proto)
	}
	if p.HostPort == 0 || p.ContainerPort == 0 {
		return errors.New("port 0 cannot be published; give host and container ports from 1 to 65535")
	}
	if !p.ContainerIP.IsValid() || p.ContainerIP.IsUnspecified() {
		return errors.New("container address is missing")
	}
	if p.ContainerIP.Is4In6() || p.HostIP.Is4In6() {
		return errors.New("address is IPv4-mapped IPv6; give it in IPv4 form")
	}
	if p.ContainerIP.Zone() != "" || p.HostIP.Zone() != "" {
		return errors.New("address has an IPv6 zone; give it without")
	}
	if p.HostIP.IsValid() && p.HostIP.Is4() != p.ContainerIP.Is4() {
		return fmt.Errorf("host address %s and container address %s are of different families; NAT cannot translate between IPv4 and IPv6", p.HostIP, p.ContainerIP)
	}
	if p.HostIP == netip.IPv6Loopback() {
		return errors.New("IPv6 loopback cannot be forwarded to a container (Linux has no route_localnet for IPv6); publish on 127.0.0.1 or on the host's global IPv6 addresses")
	}
	return nil
}

// elem renders a normalized mapping as an element of one of the four
// DNAT maps: key "daddr . l4proto . dport" for mappings bound to a host
// address and "l4proto . dport" for wildcards, value "container address
// . port", each field padded to 4 bytes.
// buf, when not nil, is where key and value are cut from (a Set of
// thousands renders them all).
func (p Port) elem(buf *[]byte) (int, nftables.SetElement) {
	b := []byte(nil)
	if buf != nil {
		b = *buf
	}
	start := len(b)
	b = appendField(appendAddr(b, p.ContainerIP), p.ContainerPort)
	val := b[start:len(b):len(b)]
	start = len(b)
	if p.HostIP.IsValid() {
		b = appendAddr(b, p.HostIP)
	}
	b = appendField(append(b, exprs.L4Proto[p.Proto], 0, 0, 0), p.HostPort)
	key := b[start:len(b):len(b)]
	if buf != nil {
		*buf = b
	}
	return p.mapIndex(), nftables.SetElement{Key: key, Val: val}
}

// mapIndex is the DNAT map a normal mapping belongs in.
func (p Port) mapIndex() int {
	switch v6 := p.ContainerIP.Is6(); {
	case !p.HostIP.IsValid() && v6:
		return mapPortsAny6
	case !p.HostIP.IsValid():
		return mapPortsAny4
	case v6:
		return mapPorts6
	}
	return mapPorts4
}

// appendAddr appends the 4 or 16 bytes of an address.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		a4 := a.As4()
		return append(b, a4[:]...)
	}
	a16 := a.As16()
	return append(b, a16[:]...)
}

// appendField appends a port in network byte order, padded to 4 bytes as a
// field of a concatenation.
func appendField(b []byte, port uint16) []byte {
	return append(binary.BigEndian.AppendUint16(b, port), 0, 0)
}

// FlushUDP deletes the conntrack entries of UDP flows through the given
// published ports in the network namespace at netnsPath ("" = the calling
// thread's): call it with the old mappings after a Sync that removed or
// changed UDP ports, and with the new ones after a Sync that added some.
// Ports of other protocols are ignored. See conntrack.FlushUDP.
func FlushUDP(netnsPath string, ports []Port) error {
	var ms []conntrack.UDPMapping
	for _, p := range ports {
		if p.Proto == "udp" {
			ms = append(ms, conntrack.UDPMapping{HostIP: p.HostIP, HostPort: p.HostPort,
				ContainerIP: p.ContainerIP, ContainerPort: p.ContainerPort})
		}
	}
	return conntrack.FlushUDP(netnsPath, ms)
}
