package v1

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

var (
	dns1035RE  = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123RE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	ianaSvcRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	labelValRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	qualNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// FieldErrors collects Kubernetes-style field errors ("spec.ports[0].port:
// Invalid value: 70000: must be between 1 and 65535, inclusive") and turns
// them into one API error that reads like kubectl's.
type FieldErrors struct {
	kind, name string
	errs       []string
}

// NewFieldErrors starts the error list of one object.
func NewFieldErrors(kind, name string) *FieldErrors { return &FieldErrors{kind: kind, name: name} }

// Invalid records a field whose value is wrong.
func (f *FieldErrors) Invalid(field string, value any, detail string) {
	if s, ok := value.(string); ok {
		value = fmt.Sprintf("%q", s)
	}
	f.errs = append(f.errs, fmt.Sprintf("%s: Invalid value: %v: %s", field, value, detail))
}

// Required records a field that must be given.
func (f *FieldErrors) Required(field, detail string) {
	f.errs = append(f.errs, fmt.Sprintf("%s: Required value: %s", field, detail))
}

// Unsupported records a value outside a fixed set.
func (f *FieldErrors) Unsupported(field, value string, allowed ...string) {
	f.errs = append(f.errs, fmt.Sprintf("%s: Unsupported value: %q: supported values: %s", field, value, quoteAll(allowed)))
}

// Duplicate records a value given twice.
func (f *FieldErrors) Duplicate(field string, value any) {
	if s, ok := value.(string); ok {
		value = fmt.Sprintf("%q", s)
	}
	f.errs = append(f.errs, fmt.Sprintf("%s: Duplicate value: %v", field, value))
}

// Forbidden records a field that may not be set here.
func (f *FieldErrors) Forbidden(field, detail string) {
	f.errs = append(f.errs, fmt.Sprintf("%s: Forbidden: %s", field, detail))
}

// Err returns nil or an invalid-request *Error; code overrides the code
// (a taken address is a conflict, not bad syntax) when not empty.
func (f *FieldErrors) Err(code string) error {
	if len(f.errs) == 0 {
		return nil
	}
	if code == "" {
		code = CodeInvalid
	}
	msg := fmt.Sprintf("The %s %q is invalid: ", f.kind, f.name)
	if len(f.errs) == 1 {
		msg += f.errs[0]
	} else {
		msg += "\n* " + strings.Join(f.errs, "\n* ")
	}
	return Errorf(code, "%s", msg)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// dns1123Label reports why s is not an RFC 1123 label ("" if it is).
func dns1123Label(s string) string {
	if len(s) > 63 || !dns1123RE.MatchString(s) {
		return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), at most 63 characters"
	}
	return ""
}

func dns1035Label(s string) string {
	if len(s) > 63 || !dns1035RE.MatchString(s) {
		return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123'), at most 63 characters"
	}
	return ""
}

func dns1123Subdomain(s string) string {
	if len(s) > 253 {
		return "must be no more than 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if dns1123Label(l) != "" {
			return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
		}
	}
	return ""
}

// portName checks an IANA service name, Kubernetes' rule for port names.
func portName(s string) string {
	if len(s) > 15 || !ianaSvcRE.MatchString(s) || strings.Contains(s, "--") || !strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") {
		return "must be no more than 15 characters, contain only lowercase letters, digits and '-', contain at least one letter, not start or end with '-' nor contain '--'"
	}
	return ""
}

// ValidatePortName is portName for callers outside the package (knit run
// --port).
func ValidatePortName(s string) error {
	if why := portName(s); why != "" {
		return Invalidf("port name %q is not valid: %s", s, why)
	}
	return nil
}

// LabelKeyProblem explains why k is not a valid Kubernetes label key.
func LabelKeyProblem(k string) string {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		if why := dns1123Subdomain(k[:i]); why != "" || i == 0 {
			return "prefix part " + why
		}
		name = k[i+1:]
	}
	if len(name) > 63 || !qualNameRE.MatchString(name) {
		return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), at most 63 characters"
	}
	return ""
}

// LabelValueProblem explains why v is not a valid label value.
func LabelValueProblem(v string) string {
	if len(v) > 63 || !labelValRE.MatchString(v) {
		return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345'), at most 63 characters"
	}
	return ""
}

func validateLabelMap(f *FieldErrors, field string, m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if why := LabelKeyProblem(k); why != "" {
			f.Invalid(field, k, why)
		}
		if why := LabelValueProblem(m[k]); why != "" {
			f.Invalid(field+"["+k+"]", m[k], why)
		}
	}
}

// NormalizeProtocol maps "", "tcp", "TCP" and friends to Kubernetes'
// spelling; ok is false for anything else.
func NormalizeProtocol(p string) (string, bool) {
	switch strings.ToUpper(p) {
	case "", ProtocolTCP:
		return ProtocolTCP, true
	case ProtocolUDP:
		return ProtocolUDP, true
	case ProtocolSCTP:
		return ProtocolSCTP, true
	}
	return p, false
}

// validate checks metadata with the kind's rule for names, and fills the
// default namespace.
func (m *ObjectMeta) validate(f *FieldErrors, nameRule func(string) string) {
	if m.Name == "" {
		f.Required("metadata.name", "name or generateName is required")
	} else if why := nameRule(m.Name); why != "" {
		f.Invalid("metadata.name", m.Name, why)
	}
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	} else if why := dns1123Label(m.Namespace); why != "" {
		f.Invalid("metadata.namespace", m.Namespace, why)
	}
	validateLabelMap(f, "metadata.labels", m.Labels)
}

// Validate checks a service on its own and fills in Kubernetes' defaults
// (namespace, type, protocol, targetPort, sessionAffinity, ipFamilies from
// a given clusterIP). What needs the store (free addresses and node ports,
// ranges) is checked by knitd when it allocates.
func (s *Service) Validate() error {
	f := NewFieldErrors(KindService, s.Metadata.Name)
	if s.APIVersion != CoreAPIVersion || s.Kind != KindService {
		f.Invalid("apiVersion/kind", s.APIVersion+"/"+s.Kind, `knit takes Services as apiVersion "v1", kind "Service"`)
		return f.Err("")
	}
	s.Metadata.validate(f, dns1035Label)

	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = ServiceTypeClusterIP
	}
	switch sp.Type {
	case ServiceTypeClusterIP, ServiceTypeNodePort, ServiceTypeLoadBalancer, ServiceTypeExternalName:
	default:
		f.Unsupported("spec.type", sp.Type, ServiceTypeClusterIP, ServiceTypeExternalName, ServiceTypeLoadBalancer, ServiceTypeNodePort)
	}
	validateLabelMap(f, "spec.selector", sp.Selector)
	s.validateClusterIP(f)
	s.validatePorts(f)

	switch sp.SessionAffinity {
	case "":
		sp.SessionAffinity = AffinityNone
	case AffinityNone, AffinityClientIP:
	default:
		f.Unsupported("spec.sessionAffinity", sp.SessionAffinity, AffinityClientIP, AffinityNone)
	}
	if c := sp.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		if sp.SessionAffinity != AffinityClientIP {
			f.Forbidden("spec.sessionAffinityConfig", `must not be set when session affinity is "None"`)
		} else if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > 86400 {
			f.Invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t, "must be greater than 0 and less than 86400")
		}
	}
	if sp.Type == ServiceTypeExternalName {
		if sp.ExternalName == "" {
			f.Required("spec.externalName", "must be given for type ExternalName")
		} else if why := dns1123Subdomain(strings.TrimSuffix(sp.ExternalName, ".")); why != "" {
			f.Invalid("spec.externalName", sp.ExternalName, why)
		}
	} else if sp.ExternalName != "" {
		f.Forbidden("spec.externalName", "may only be set for type ExternalName")
	}
	if sp.LoadBalancerIP != "" {
		if sp.Type != ServiceTypeLoadBalancer {
			f.Forbidden("spec.loadBalancerIP", "may only be set for type LoadBalancer")
		} else if _, err := netip.ParseAddr(sp.LoadBalancerIP); err != nil {
			f.Invalid("spec.loadBalancerIP", sp.LoadBalancerIP, "must be a valid IP address")
		}
	}
	for field, v := range map[string]string{"spec.externalTrafficPolicy": sp.ExternalTrafficPolicy, "spec.internalTrafficPolicy": sp.InternalTrafficPolicy} {
		if v != "" && v != "Cluster" && v != "Local" {
			f.Unsupported(field, v, "Cluster", "Local")
		}
	}
	return f.Err("")
}

func (s *Service) validateClusterIP(f *FieldErrors) {
	sp := &s.Spec
	if sp.Type == ServiceTypeExternalName {
		if sp.ClusterIP != "" || len(sp.ClusterIPs) > 0 {
			f.Forbidden("spec.clusterIP", "must be empty for type ExternalName")
		}
		return
	}
	if sp.ClusterIP == "" && len(sp.ClusterIPs) > 0 {
		sp.ClusterIP = sp.ClusterIPs[0]
	}
	if len(sp.ClusterIPs) > 0 && sp.ClusterIPs[0] != sp.ClusterIP {
		f.Invalid("spec.clusterIPs[0]", sp.ClusterIPs[0], "must match spec.clusterIP")
	}
	if sp.ClusterIP == ClusterIPNone {
		if sp.Type != ServiceTypeClusterIP {
			f.Invalid("spec.clusterIP", sp.ClusterIP, "may not be None for type "+sp.Type)
		}
		sp.ClusterIPs = []string{ClusterIPNone}
		return
	}
	fams := map[bool]bool{}
	for i, ip := range sp.ClusterIPs {
		a, err := netip.ParseAddr(ip)
		field := fmt.Sprintf("spec.clusterIPs[%d]", i)
		if i == 0 {
			field = "spec.clusterIP"
		}
		if err != nil || a.Zone() != "" {
			f.Invalid(field, ip, `must be empty, "None", or a valid IP address`)
			continue
		}
		if fams[a.Is4()] {
			f.Invalid(field, ip, "may not have two addresses of one IP family")
		}
		fams[a.Is4()] = true
	}
	if sp.ClusterIP != "" && len(sp.ClusterIPs) == 0 {
		if a, err := netip.ParseAddr(sp.ClusterIP); err != nil || a.Zone() != "" {
			f.Invalid("spec.clusterIP", sp.ClusterIP, `must be empty, "None", or a valid IP address`)
		} else {
			sp.ClusterIPs = []string{sp.ClusterIP}
		}
	}
	for i, fam := range sp.IPFamilies {
		if fam != "IPv4" && fam != "IPv6" {
			f.Unsupported(fmt.Sprintf("spec.ipFamilies[%d]", i), fam, "IPv4", "IPv6")
		}
	}
	switch sp.IPFamilyPolicy {
	case "", "SingleStack", "PreferDualStack", "RequireDualStack":
	default:
		f.Unsupported("spec.ipFamilyPolicy", sp.IPFamilyPolicy, "PreferDualStack", "RequireDualStack", "SingleStack")
	}
}

func (s *Service) validatePorts(f *FieldErrors) {
	sp := &s.Spec
	if len(sp.Ports) == 0 && sp.Type != ServiceTypeExternalName && sp.ClusterIP != ClusterIPNone {
		f.Required("spec.ports", "")
	}
	names := map[string]bool{}
	seen := map[string]bool{}
	nodePorts := map[string]bool{}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		field := fmt.Sprintf("spec.ports[%d]", i)
		switch {
		case p.Name == "" && len(sp.Ports) > 1:
			f.Required(field+".name", "when there are multiple ports, each must have a name")
		case p.Name != "":
			if why := portName(p.Name); why != "" {
				f.Invalid(field+".name", p.Name, why)
			}
			if names[p.Name] {
				f.Duplicate(field+".name", p.Name)
			}
			names[p.Name] = true
		}
		proto, ok := NormalizeProtocol(p.Protocol)
		if !ok || (p.Protocol != "" && p.Protocol != proto) {
			f.Unsupported(field+".protocol", p.Protocol, ProtocolSCTP, ProtocolTCP, ProtocolUDP)
		}
		p.Protocol = proto
		if p.Port < 1 || p.Port > 65535 {
			f.Invalid(field+".port", p.Port, "must be between 1 and 65535, inclusive")
		}
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if seen[key] {
			f.Duplicate(field, fmt.Sprintf("{Port:%d Protocol:%s}", p.Port, p.Protocol))
		}
		seen[key] = true
		switch {
		case p.TargetPort.IsZero():
			p.TargetPort = IntOrString{Int: p.Port}
		case p.TargetPort.IsStr:
			if why := portName(p.TargetPort.Str); why != "" {
				f.Invalid(field+".targetPort", p.TargetPort.Str, why)
			}
		case p.TargetPort.Int < 1 || p.TargetPort.Int > 65535:
			f.Invalid(field+".targetPort", p.TargetPort.Int, "must be between 1 and 65535, inclusive")
		}
		if p.NodePort != 0 {
			if sp.Type != ServiceTypeNodePort && sp.Type != ServiceTypeLoadBalancer {
				f.Forbidden(field+".nodePort", "may not be used when `type` is '"+sp.Type+"'")
			} else if p.NodePort < 1 || p.NodePort > 65535 {
				f.Invalid(field+".nodePort", p.NodePort, "must be between 1 and 65535, inclusive")
			}
			nk := fmt.Sprintf("%d/%s", p.NodePort, p.Protocol)
			if nodePorts[nk] {
				f.Duplicate(field+".nodePort", p.NodePort)
			}
			nodePorts[nk] = true
		}
	}
}
