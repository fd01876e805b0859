package v1

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Protocols a port can be published for.
var protocols = map[string]bool{"tcp": true, "udp": true, "sctp": true}

// PortMapping publishes container ports on the host, like docker run -p.
// HostPort..HostPortEnd maps one to one onto ContainerPort..ContainerPortEnd
// (End 0 means a single port). HostPort 0 asks knitd to pick free host ports.
type PortMapping struct {
	HostIP           netip.Addr `json:"hostIP,omitzero"`
	HostPort         uint16     `json:"hostPort"`
	HostPortEnd      uint16     `json:"hostPortEnd,omitempty"`
	ContainerPort    uint16     `json:"containerPort"`
	ContainerPortEnd uint16     `json:"containerPortEnd,omitempty"`
	Protocol         string     `json:"protocol"`
}

// Count is the number of ports in the mapping.
func (p PortMapping) Count() int {
	if p.ContainerPortEnd == 0 {
		return 1
	}
	return int(p.ContainerPortEnd-p.ContainerPort) + 1
}

// HostRange is the first and last host port (valid once HostPort is set).
func (p PortMapping) HostRange() (uint16, uint16) {
	return p.HostPort, p.HostPort + uint16(p.Count()-1)
}

// String prints the mapping the way -p takes it.
func (p PortMapping) String() string {
	var b strings.Builder
	if p.HostIP.IsValid() {
		if p.HostIP.Is6() {
			fmt.Fprintf(&b, "[%s]:", p.HostIP)
		} else {
			fmt.Fprintf(&b, "%s:", p.HostIP)
		}
	}
	if p.HostPort != 0 {
		b.WriteString(portRange(p.HostPort, p.HostPortEnd) + ":")
	}
	b.WriteString(portRange(p.ContainerPort, p.ContainerPortEnd) + "/" + p.Protocol)
	return b.String()
}

func portRange(a, end uint16) string {
	if end == 0 || end == a {
		return strconv.Itoa(int(a))
	}
	return fmt.Sprintf("%d-%d", a, end)
}

// ParsePortSpec reads docker's -p syntax:
// [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]; an IPv6
// hostIP is written in brackets.
func ParsePortSpec(spec string) (PortMapping, error) {
	bad := func(format string, args ...any) (PortMapping, error) {
		return PortMapping{}, Invalidf("-p %s: "+format, append([]any{spec}, args...)...)
	}
	p := PortMapping{Protocol: "tcp"}
	rest := spec
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		p.Protocol = strings.ToLower(rest[i+1:])
		rest = rest[:i]
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("an IPv6 host address must be written [addr]:hostPort:containerPort")
		}
		ip, err := netip.ParseAddr(rest[1:end])
		if err != nil || !ip.Is6() {
			return bad("%q is not an IPv6 address", rest[1:end])
		}
		p.HostIP, rest = ip, rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 3 {
		if p.HostIP.IsValid() {
			return bad("too many ':'; write hostIP:hostPort:containerPort")
		}
		ip, err := netip.ParseAddr(parts[0])
		if err != nil {
			return bad("host address %q is not an IP address", parts[0])
		}
		p.HostIP, parts = ip, parts[1:]
	}
	var err error
	switch len(parts) {
	case 1:
		p.ContainerPort, p.ContainerPortEnd, err = parseRange(parts[0])
	case 2:
		if parts[0] != "" {
			if p.HostPort, p.HostPortEnd, err = parseRange(parts[0]); err != nil {
				return bad("host port: %s", err)
			}
		}
		p.ContainerPort, p.ContainerPortEnd, err = parseRange(parts[1])
	default:
		return bad("expected [hostIP:][hostPort:]containerPort[/protocol]")
	}
	if err != nil {
		return bad("container port: %s", err)
	}
	return p, p.Validate()
}

func parseRange(s string) (uint16, uint16, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := parsePort(a)
	if err != nil || !isRange {
		return lo, 0, err
	}
	hi, err := parsePort(b)
	if err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range; use 1 to 65535", n)
	}
	return uint16(n), nil
}

// Validate checks one mapping on its own.
func (p PortMapping) Validate() error {
	where := "-p " + p.String()
	if !protocols[p.Protocol] {
		return Invalidf("%s: unknown protocol %q; use tcp, udp or sctp", where, p.Protocol)
	}
	if p.ContainerPort == 0 {
		return Invalidf("%s: container port 0 is out of range; use 1 to 65535", where)
	}
	if p.ContainerPortEnd != 0 && p.ContainerPortEnd < p.ContainerPort {
		return Invalidf("%s: container port range ends before it starts", where)
	}
	if p.HostPortEnd != 0 && p.HostPortEnd < p.HostPort {
		return Invalidf("%s: host port range ends before it starts", where)
	}
	if p.HostPort != 0 {
		hostN := 1
		if p.HostPortEnd != 0 {
			hostN = int(p.HostPortEnd-p.HostPort) + 1
		}
		if hostN != p.Count() {
			return Invalidf("%s: host range has %d ports but container range has %d; give ranges of the same length", where, hostN, p.Count())
		}
		if int(p.HostPort)+p.Count()-1 > 65535 {
			return Invalidf("%s: host range goes beyond port 65535", where)
		}
	} else if p.HostPortEnd != 0 {
		return Invalidf("%s: a host range needs its first port", where)
	}
	if p.HostIP == netip.IPv6Loopback() {
		return Invalidf("%s: Linux cannot forward [::1] to a container; publish on 127.0.0.1 or on all addresses", where)
	}
	if p.HostIP.Zone() != "" {
		return Invalidf("%s: host address %s has a zone; give a global address", where, p.HostIP)
	}
	if p.HostIP.IsValid() && (p.HostIP.IsUnspecified() || p.HostIP.IsMulticast() || p.HostIP.Is4In6()) {
		if p.HostIP.IsUnspecified() {
			return Invalidf("%s: write no host address instead of %s to publish on every address", where, p.HostIP)
		}
		return Invalidf("%s: host address %s is not a unicast address of this host", where, p.HostIP)
	}
	return nil
}

// ValidatePorts checks a container's mappings together: no host port is
// published twice for the same protocol and address.
func ValidatePorts(owner string, ports []PortMapping) error {
	for i, p := range ports {
		if err := p.Validate(); err != nil {
			return err
		}
		for _, q := range ports[:i] {
			if p.Protocol != q.Protocol || p.HostPort == 0 || q.HostPort == 0 {
				continue
			}
			if p.HostIP.IsValid() && q.HostIP.IsValid() && p.HostIP != q.HostIP {
				continue
			}
			pa, pb := p.HostRange()
			qa, qb := q.HostRange()
			if pa <= qb && qa <= pb {
				return Invalidf("%s: -p %s and -p %s publish the same host port; give each host port once", owner, q, p)
			}
		}
	}
	return nil
}
