package v1

import (
	"strconv"
	"strings"
	"time"
)

// Probe defaults: an endpoint that stops answering leaves its services'
// load balancing within about a second.
const (
	DefaultProbePeriod  = 250 * time.Millisecond
	DefaultProbeTimeout = time.Second
)

// validateService checks what Services select containers by: the namespace,
// named ports and the readiness probe. It fills the default namespace.
func (r *ContainerCreate) validateService(owner string) error {
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	} else if why := dns1123Label(r.Namespace); why != "" {
		return Invalidf("%s: --namespace %q is not valid: %s", owner, r.Namespace, why)
	}
	names := map[string]bool{}
	for i := range r.ContainerPorts {
		p := &r.ContainerPorts[i]
		if why := portName(p.Name); why != "" {
			return Invalidf("%s: --port %s=%d: name %s", owner, p.Name, p.Port, why)
		}
		if names[p.Name] {
			return Invalidf("%s: --port name %q given twice; name each port once", owner, p.Name)
		}
		names[p.Name] = true
		if p.Port == 0 {
			return Invalidf("%s: --port %s: port 0 is not valid; use 1 to 65535", owner, p.Name)
		}
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return Invalidf("%s: --port %s=%d/%s: unknown protocol; use tcp, udp or sctp", owner, p.Name, p.Port, p.Protocol)
		}
		p.Protocol = proto
	}
	if pr := r.Readiness; pr != nil {
		return pr.validate(owner, r.ContainerPorts)
	}
	return nil
}

func (pr *Probe) validate(owner string, ports []ContainerPort) error {
	switch pr.Type {
	case "tcp":
		if pr.Path != "" {
			return Invalidf("%s: --readiness tcp:%s takes no path; use http:%s%s for an HTTP check", owner, pr.Port, pr.Port, pr.Path)
		}
	case "http":
		if pr.Path == "" {
			pr.Path = "/"
		}
		if !strings.HasPrefix(pr.Path, "/") {
			return Invalidf("%s: --readiness http:%s%s: the path must start with '/'", owner, pr.Port, pr.Path)
		}
	default:
		return Invalidf("%s: --readiness %q: unknown probe type; use tcp:PORT or http:PORT/PATH", owner, pr.Type)
	}
	if _, ok := pr.ResolvePort(ports); !ok {
		return Invalidf("%s: --readiness %s:%s: the port is neither a number from 1 to 65535 nor a --port name of this container", owner, pr.Type, pr.Port)
	}
	if pr.Period == 0 {
		pr.Period = DefaultProbePeriod
	}
	if pr.Timeout == 0 {
		pr.Timeout = DefaultProbeTimeout
	}
	if pr.Period < 10*time.Millisecond || pr.Timeout < 10*time.Millisecond {
		return Invalidf("%s: readiness period %v and timeout %v: both must be at least 10ms", owner, pr.Period, pr.Timeout)
	}
	return nil
}

// ResolvePort returns the probe's port number, looking names up in ports.
func (pr *Probe) ResolvePort(ports []ContainerPort) (uint16, bool) {
	if n, err := strconv.ParseUint(pr.Port, 10, 16); err == nil {
		return uint16(n), n > 0
	}
	for _, p := range ports {
		if p.Name == pr.Port {
			return p.Port, true
		}
	}
	return 0, false
}
