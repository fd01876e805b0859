package v1

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// MaxNameLen bounds network and container names: they become DNS labels.
const MaxNameLen = 63

// MaxIfNameLen is the kernel's limit on interface names (IFNAMSIZ - 1).
const MaxIfNameLen = 15

var (
	nameRE     = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$`)
	ifnameRE   = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
)

// ValidateName checks a network or container name; kind is "network" or
// "container" and appears in the message.
func ValidateName(kind, name string) error {
	switch {
	case name == "":
		return Invalidf("%s name is empty; give a name of letters, digits, '_', '.' or '-'", kind)
	case len(name) > MaxNameLen:
		return Invalidf("%s name %q is %d characters long; use at most %d", kind, name, len(name), MaxNameLen)
	case !nameRE.MatchString(name):
		return Invalidf("%s name %q is not valid; start with a letter or digit and use only letters, digits, '_', '.' or '-'", kind, name)
	}
	return nil
}

// ValidateIfName checks a kernel interface name given by a user.
func ValidateIfName(what, name string) error {
	switch {
	case len(name) > MaxIfNameLen:
		return Invalidf("%s %q is %d characters long; Linux interface names have at most %d", what, name, len(name), MaxIfNameLen)
	case name == "" || name == "." || name == ".." || !ifnameRE.MatchString(name):
		return Invalidf("%s %q is not a valid interface name; use letters, digits, '_', '.' or '-'", what, name)
	}
	return nil
}

// ValidateLabels checks label keys.
func ValidateLabels(owner string, labels map[string]string) error {
	for k := range labels {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return Invalidf("%s: label key %q is not valid; use --label key=value with a key without '=' or spaces", owner, k)
		}
	}
	return nil
}

// Validate checks a network request on its own (without looking at other
// networks) and fills defaults: the driver, IPv6 when a v6 subnet is given.
func (r *NetworkCreate) Validate() error {
	if err := ValidateName("network", r.Name); err != nil {
		return err
	}
	owner := fmt.Sprintf("network %q", r.Name)
	if r.Driver == "" {
		r.Driver = DriverBridge
	}
	switch r.Driver {
	case DriverBridge:
	case DriverHost, DriverNone:
		if len(r.Subnets) > 0 || r.IPv6 || r.Internal || r.MTU != 0 || r.Bridge != "" {
			return Invalidf("%s: driver %q takes no --subnet, --ipv6, --internal, --mtu or --bridge; drop them or use --driver bridge", owner, r.Driver)
		}
	default:
		return Invalidf("%s: unknown driver %q; use bridge, host or none", owner, r.Driver)
	}
	if r.MTU != 0 && (r.MTU < 576 || r.MTU > 65535) {
		return Invalidf("%s: --mtu %d is out of range; use 576 to 65535 (1280 or more with --ipv6)", owner, r.MTU)
	}
	if r.Bridge != "" {
		if err := ValidateIfName(owner+": --bridge", r.Bridge); err != nil {
			return err
		}
	}
	seen := map[bool]bool{}
	for i := range r.Subnets {
		if err := r.Subnets[i].validate(owner); err != nil {
			return err
		}
		v4 := r.Subnets[i].Subnet.Addr().Is4()
		if seen[v4] {
			return Invalidf("%s: more than one %s subnet; give at most one IPv4 and one IPv6 --subnet", owner, family(v4))
		}
		seen[v4] = true
		if !v4 {
			r.IPv6 = true
		}
	}
	if r.IPv6 && r.MTU != 0 && r.MTU < 1280 {
		return Invalidf("%s: --mtu %d is below IPv6's minimum; use 1280 or more", owner, r.MTU)
	}
	return ValidateLabels(owner, r.Labels)
}

func family(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

// validate checks one subnet and fills its gateway (the first usable address).
func (s *Subnet) validate(owner string) error {
	p := s.Subnet
	if !p.IsValid() {
		return Invalidf("%s: subnet is missing or not a CIDR; give one like 10.1.0.0/24", owner)
	}
	if p.Addr().Is4In6() {
		return Invalidf("%s: subnet %s is an IPv4-mapped IPv6 prefix; write it as IPv4", owner, p)
	}
	if p.Masked() != p {
		return Invalidf("%s: subnet %s has host bits set; did you mean %s?", owner, p, p.Masked())
	}
	maxBits := 30
	if p.Addr().Is6() {
		maxBits = 126
	}
	if p.Bits() > maxBits {
		return Invalidf("%s: subnet %s is too small for a gateway and containers; use /%d or larger", owner, p, maxBits)
	}
	if s.IPRange.IsValid() {
		if s.IPRange.Masked() != s.IPRange {
			return Invalidf("%s: --ip-range %s has host bits set; did you mean %s?", owner, s.IPRange, s.IPRange.Masked())
		}
		if !p.Contains(s.IPRange.Addr()) || s.IPRange.Bits() < p.Bits() {
			return Invalidf("%s: --ip-range %s is not inside subnet %s; pick a range within it", owner, s.IPRange, p)
		}
	}
	if !s.Gateway.IsValid() {
		s.Gateway = p.Addr().Next()
		return nil
	}
	if !p.Contains(s.Gateway) {
		return Invalidf("%s: gateway %s is outside subnet %s; pick an address inside it, or leave --gateway out", owner, s.Gateway, p)
	}
	if s.Gateway == p.Addr() || (p.Addr().Is4() && s.Gateway == LastAddr(p)) {
		return Invalidf("%s: gateway %s is the network or broadcast address of %s; pick a host address", owner, s.Gateway, p)
	}
	return nil
}

// LastAddr is the highest address in p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		hostBits := len(b)*8 - bits - (len(b)-1-i)*8
		switch {
		case hostBits >= 8:
			b[i] = 0xff
		case hostBits > 0:
			b[i] |= byte(1<<hostBits) - 1
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Validate checks a container request on its own.
func (r *ContainerCreate) Validate() error {
	if r.Name != "" {
		if err := ValidateName("container", r.Name); err != nil {
			return err
		}
	}
	owner := "container"
	if r.Name != "" {
		owner = fmt.Sprintf("container %q", r.Name)
	}
	if len(r.Command) == 0 || r.Command[0] == "" {
		return Invalidf("%s: no command given; put it after --, e.g. knit run -- sleep 60", owner)
	}
	if r.Hostname != "" && (len(r.Hostname) > 253 || !hostnameRE.MatchString(r.Hostname)) {
		return Invalidf("%s: --hostname %q is not a valid host name; use letters, digits and '-' in dot-separated labels", owner, r.Hostname)
	}
	seen := map[string]bool{}
	for _, n := range r.Networks {
		if n == "" {
			return Invalidf("%s: empty --network; give a network name", owner)
		}
		if seen[n] {
			return Invalidf("%s: network %q given twice; give each --network once", owner, n)
		}
		seen[n] = true
		if strings.HasPrefix(n, "container:") && len(r.Networks) > 1 {
			return Invalidf("%s: --network %s shares another container's namespace and cannot be combined with other networks", owner, n)
		}
	}
	for _, ip := range r.IPs {
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() {
			return Invalidf("%s: --ip %s is not a usable unicast address", owner, ip)
		}
	}
	if err := ValidatePorts(owner, r.Ports); err != nil {
		return err
	}
	if err := r.validateService(owner); err != nil {
		return err
	}
	if err := ValidateAliases(owner, r.Aliases); err != nil {
		return err
	}
	if err := r.DNS.validate(owner); err != nil {
		return err
	}
	for _, h := range r.ExtraHosts {
		if !hostnameRE.MatchString(h.Name) || len(h.Name) > 253 {
			return Invalidf("%s: --add-host %q: not a valid host name", owner, h.Name)
		}
		if !h.IP.IsValid() {
			return Invalidf("%s: --add-host %s: missing address; write name:ip", owner, h.Name)
		}
	}
	return ValidateLabels(owner, r.Labels)
}

// ValidateAliases checks --alias names: DNS names a container answers to.
func ValidateAliases(owner string, aliases []string) error {
	for _, a := range aliases {
		if len(a) > 253 || !hostnameRE.MatchString(a) {
			return Invalidf("%s: --alias %q is not a valid DNS name; use letters, digits and '-' in dot-separated labels", owner, a)
		}
	}
	return nil
}

func (d DNSConfig) validate(owner string) error {
	for _, s := range d.Servers {
		if !s.IsValid() || s.IsUnspecified() || s.IsMulticast() {
			return Invalidf("%s: --dns %s is not a usable server address", owner, s)
		}
	}
	for _, s := range d.Search {
		if len(s) > 253 || !hostnameRE.MatchString(strings.TrimSuffix(s, ".")) {
			return Invalidf("%s: --dns-search %q is not a valid domain", owner, s)
		}
	}
	for _, o := range d.Options {
		if o == "" || strings.ContainsAny(o, " \t\n") {
			return Invalidf("%s: --dns-option %q: give one option without spaces, e.g. ndots:2", owner, o)
		}
	}
	if len(d.Search) > 6 {
		return Invalidf("%s: %d --dns-search domains; resolv.conf takes at most 6", owner, len(d.Search))
	}
	return nil
}
