package cli

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/knit-net/knit/api/v1"
)

// parseContainerPorts reads knit run --port NAME=PORT[/tcp|udp|sctp]: the
// named ports a Service's targetPort can refer to. Names follow
// Kubernetes' container port names (IANA service names).
func parseContainerPorts(owner string, specs []string) ([]v1.ContainerPort, error) {
	var out []v1.ContainerPort
	for _, spec := range specs {
		bad := func(format string, args ...any) error {
			return v1.Invalidf("%s: --port %s: "+format+"; write NAME=PORT[/tcp|udp|sctp], e.g. --port http=8080", append([]any{owner, spec}, args...)...)
		}
		name, rest, ok := strings.Cut(spec, "=")
		if !ok || name == "" {
			return nil, bad("the port needs a name")
		}
		if msgs := validation.IsValidPortName(name); len(msgs) > 0 {
			return nil, bad("port name %q %s", name, strings.Join(msgs, ", "))
		}
		proto := "tcp"
		if p, pr, ok := strings.Cut(rest, "/"); ok {
			rest, proto = p, strings.ToLower(pr)
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, bad("protocol %q is not tcp, udp or sctp", proto)
		}
		port, err := strconv.ParseUint(rest, 10, 16)
		if err != nil || port == 0 {
			return nil, bad("%q is not a port number (1-65535)", rest)
		}
		if slices.ContainsFunc(out, func(p v1.ContainerPort) bool { return p.Name == name }) {
			return nil, bad("port name %q is given twice", name)
		}
		out = append(out, v1.ContainerPort{Name: name, Port: uint16(port), Protocol: proto})
	}
	return out, nil
}

// probeFlags are knit run's --readiness flags.
type probeFlags struct {
	spec            string
	period, timeout time.Duration
}

// parse reads --readiness tcp:PORT or http:PORT[/path], where PORT is a
// number or the name of a --port; nil without --readiness.
func (f *probeFlags) parse(owner string, ports []v1.ContainerPort) (*v1.Probe, error) {
	if f.spec == "" {
		if f.period != 0 || f.timeout != 0 {
			return nil, v1.Invalidf("%s: --readiness-period and --readiness-timeout need --readiness tcp:PORT or http:PORT[/path]", owner)
		}
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		return v1.Invalidf("%s: --readiness %s: "+format, append([]any{owner, f.spec}, args...)...)
	}
	typ, rest, ok := strings.Cut(f.spec, ":")
	typ = strings.ToLower(typ)
	if !ok || (typ != "tcp" && typ != "http") {
		return nil, bad("write tcp:PORT or http:PORT[/path], e.g. http:8080/healthz")
	}
	p := &v1.Probe{Type: typ, Period: f.period, Timeout: f.timeout}
	if port, path, hasPath := strings.Cut(rest, "/"); hasPath {
		if typ == "tcp" {
			return nil, bad("a tcp probe has no path; use http:%s", rest)
		}
		rest, p.Path = port, "/"+path
	} else if typ == "http" {
		p.Path = "/"
	}
	switch n, err := strconv.ParseUint(rest, 10, 16); {
	case rest == "":
		return nil, bad("give the port to probe, a number or a --port name")
	case err == nil && n == 0, err != nil && rest[0] >= '0' && rest[0] <= '9':
		return nil, bad("%q is not a port number (1-65535)", rest)
	case err != nil && !slices.ContainsFunc(ports, func(cp v1.ContainerPort) bool { return cp.Name == rest }):
		return nil, bad("%q is neither a port number nor the name of a --port", rest)
	}
	p.Port = rest
	if f.period < 0 || f.timeout < 0 {
		return nil, v1.Invalidf("%s: --readiness-period and --readiness-timeout must be positive durations such as 500ms or 2s", owner)
	}
	return p, nil
}
