package v1

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Validate checks a NetworkPolicy as the Kubernetes API server does and
// fills in its defaults: namespace "default", protocol TCP on every port,
// and policyTypes (Ingress, plus Egress when there are egress rules) when
// none are given. Errors read like kubectl's, naming each bad field:
//
//	The NetworkPolicy "x" is invalid: spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to port
//
// Two checks go beyond Kubernetes': a policyType given twice is refused
// (Kubernetes accepts [Ingress, Ingress]), and an unknown selector operator
// is "Unsupported" with the list of operators rather than Kubernetes'
// "Invalid value: not a valid selector operator". CIDRs are checked as
// Kubernetes does with strict IP validation: no leading zeros, no bits set
// beyond the prefix length, no IPv4-mapped IPv6 addresses.
func (p *NetworkPolicy) Validate() error {
	f := NewFieldErrors(KindNetworkPolicy, p.Metadata.Name)
	if p.APIVersion != NetworkingAPIVersion || p.Kind != KindNetworkPolicy {
		f.Invalid("apiVersion/kind", p.APIVersion+"/"+p.Kind, `knit takes NetworkPolicies as apiVersion "networking.k8s.io/v1", kind "NetworkPolicy"`)
		return f.Err("")
	}
	p.Metadata.validate(f, dns1123Subdomain)
	validateAnnotations(f, "metadata.annotations", p.Metadata.Annotations)

	sp := &p.Spec
	validateSelector(f, "spec.podSelector", &sp.PodSelector)
	for i := range sp.Ingress {
		r := &sp.Ingress[i]
		field := fmt.Sprintf("spec.ingress[%d]", i)
		for j := range r.Ports {
			validatePolicyPort(f, fmt.Sprintf("%s.ports[%d]", field, j), &r.Ports[j])
		}
		for j := range r.From {
			validatePeer(f, fmt.Sprintf("%s.from[%d]", field, j), &r.From[j])
		}
	}
	for i := range sp.Egress {
		r := &sp.Egress[i]
		field := fmt.Sprintf("spec.egress[%d]", i)
		for j := range r.To {
			validatePeer(f, fmt.Sprintf("%s.to[%d]", field, j), &r.To[j])
		}
		for j := range r.Ports {
			validatePolicyPort(f, fmt.Sprintf("%s.ports[%d]", field, j), &r.Ports[j])
		}
	}
	validatePolicyTypes(f, sp)
	return f.Err("")
}

func validatePolicyTypes(f *FieldErrors, sp *NetworkPolicySpec) {
	if len(sp.PolicyTypes) == 0 {
		// Kubernetes' defaulting (SetDefaults_NetworkPolicy).
		sp.PolicyTypes = []string{PolicyTypeIngress}
		if len(sp.Egress) > 0 {
			sp.PolicyTypes = append(sp.PolicyTypes, PolicyTypeEgress)
		}
		return
	}
	if len(sp.PolicyTypes) > 2 {
		f.Invalid("spec.policyTypes", literal(`["`+strings.Join(sp.PolicyTypes, `","`)+`"]`), "may not specify more than two policyTypes")
		return
	}
	seen := map[string]bool{}
	for i, t := range sp.PolicyTypes {
		field := fmt.Sprintf("spec.policyTypes[%d]", i)
		switch {
		case t != PolicyTypeIngress && t != PolicyTypeEgress:
			f.Unsupported(field, t, PolicyTypeIngress, PolicyTypeEgress)
		case seen[t]:
			f.Duplicate(field, t)
		}
		seen[t] = true
	}
}

// validateSelector is Kubernetes' ValidateLabelSelector.
func validateSelector(f *FieldErrors, field string, s *LabelSelector) {
	validateLabelMap(f, field+".matchLabels", s.MatchLabels)
	for i, r := range s.MatchExpressions {
		rf := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		switch r.Operator {
		case SelectorOpIn, SelectorOpNotIn:
			if len(r.Values) == 0 {
				f.Required(rf+".values", "must be specified when `operator` is 'In' or 'NotIn'")
			}
		case SelectorOpExists, SelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				f.Forbidden(rf+".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
			}
		default:
			f.Unsupported(rf+".operator", r.Operator, SelectorOpDoesNotExist, SelectorOpExists, SelectorOpIn, SelectorOpNotIn)
		}
		if r.Key == "" {
			f.Required(rf+".key", "a label key is required")
		} else if why := LabelKeyProblem(r.Key); why != "" {
			f.Invalid(rf+".key", r.Key, why)
		}
		for j, v := range r.Values {
			if why := LabelValueProblem(v); why != "" {
				f.Invalid(fmt.Sprintf("%s.values[%d]", rf, j), v, why)
			}
		}
	}
}

// literal is a value FieldErrors prints as is, not quoted.
type literal string

func (l literal) String() string { return string(l) }

// maxAnnotationsSize is Kubernetes' TotalAnnotationSizeLimitB.
const maxAnnotationsSize = 256 * 1024

func validateAnnotations(f *FieldErrors, field string, m map[string]string) {
	size := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if why := LabelKeyProblem(strings.ToLower(k)); why != "" {
			f.Invalid(field, k, why)
		}
		size += len(k) + len(m[k])
	}
	if size > maxAnnotationsSize {
		f.Invalid(field, literal(fmt.Sprintf("%d bytes", size)), fmt.Sprintf("may not have more than %d bytes in all", maxAnnotationsSize))
	}
}

// validatePolicyPort is Kubernetes' ValidateNetworkPolicyPort, plus the
// default protocol.
func validatePolicyPort(f *FieldErrors, field string, p *NetworkPolicyPort) {
	switch p.Protocol {
	case "":
		p.Protocol = ProtocolTCP
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
	default:
		f.Unsupported(field+".protocol", p.Protocol, ProtocolTCP, ProtocolUDP, ProtocolSCTP)
	}
	switch {
	case p.Port == nil:
		if p.EndPort != nil {
			f.Invalid(field+".endPort", *p.EndPort, "may not be specified when `port` is not specified")
		}
	case p.Port.IsStr:
		if p.EndPort != nil {
			f.Invalid(field+".endPort", *p.EndPort, "may not be specified when `port` is non-numeric (a port name)")
		}
		if why := portName(p.Port.Str); why != "" {
			f.Invalid(field+".port", p.Port.Str, why)
		}
	default:
		if !validPortNum(p.Port.Int) {
			f.Invalid(field+".port", p.Port.Int, "must be between 1 and 65535, inclusive")
		}
		if p.EndPort == nil {
			break
		}
		if *p.EndPort < p.Port.Int {
			f.Invalid(field+".endPort", *p.EndPort, "must be greater than or equal to port")
		}
		if !validPortNum(*p.EndPort) {
			f.Invalid(field+".endPort", *p.EndPort, "must be between 1 and 65535, inclusive")
		}
	}
}

func validPortNum(n int32) bool { return n >= 1 && n <= 65535 }

// validatePeer is Kubernetes' ValidateNetworkPolicyPeer.
func validatePeer(f *FieldErrors, field string, peer *NetworkPolicyPeer) {
	n := 0
	if peer.PodSelector != nil {
		n++
		validateSelector(f, field+".podSelector", peer.PodSelector)
	}
	if peer.NamespaceSelector != nil {
		n++
		validateSelector(f, field+".namespaceSelector", peer.NamespaceSelector)
	}
	if peer.IPBlock != nil {
		n++
		validateIPBlock(f, field+".ipBlock", peer.IPBlock)
	}
	switch {
	case n == 0:
		f.Required(field, "must specify a peer: podSelector, namespaceSelector or ipBlock")
	case n > 1 && peer.IPBlock != nil:
		f.Forbidden(field, "may not specify both ipBlock and another peer; make them separate peers")
	}
}

// validateIPBlock is Kubernetes' ValidateIPBlock with strict CIDR checks.
func validateIPBlock(f *FieldErrors, field string, b *IPBlock) {
	if b.CIDR == "" {
		f.Required(field+".cidr", "")
		return
	}
	cidr, ok := checkCIDR(f, field+".cidr", b.CIDR)
	if !ok {
		return
	}
	for i, e := range b.Except {
		ef := fmt.Sprintf("%s.except[%d]", field, i)
		except, ok := checkCIDR(f, ef, e)
		switch {
		case !ok:
		case except.Addr().Is4() != cidr.Addr().Is4():
			f.Invalid(ef, e, fmt.Sprintf("must be of the same IP family as `cidr` (%s)", b.CIDR))
		case except.Bits() <= cidr.Bits() || !cidr.Contains(except.Addr()):
			f.Invalid(ef, e, fmt.Sprintf("must be a strict subset of `cidr` (%s)", b.CIDR))
		}
	}
}

// checkCIDR parses a CIDR as Kubernetes' strict validation accepts it.
func checkCIDR(f *FieldErrors, field, s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		f.Invalid(field, s, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
	case p.Addr().Is4In6():
		f.Invalid(field, s, "must not have an IPv4-mapped IPv6 address")
	case p.Addr() != p.Masked().Addr():
		f.Invalid(field, s, fmt.Sprintf("must not have bits set beyond the prefix length; write %q", p.Masked().String()))
	default:
		return p, true
	}
	return netip.Prefix{}, false
}

// KindNamespace names namespaces in errors.
const KindNamespace = "Namespace"

// ValidateNamespaceName checks a namespace name: an RFC 1123 label, as in
// Kubernetes.
func ValidateNamespaceName(name string) error {
	f := NewFieldErrors(KindNamespace, name)
	if name == "" {
		f.Required("metadata.name", "give the namespace a name")
	} else if why := dns1123Label(name); why != "" {
		f.Invalid("metadata.name", name, why)
	}
	return f.Err("")
}

// Validate checks a namespace create or label request: the name when
// given (POST /v1/namespaces needs one: call ValidateNamespaceName too),
// label keys and values, keys to remove, and that no key is both set and
// removed. The automatic label kubernetes.io/metadata.name may only be set
// to the namespace's own name; whether it may be set at all is the
// server's call.
func (u *NamespaceUpdate) Validate() error {
	f := NewFieldErrors(KindNamespace, u.Name)
	if u.Name != "" {
		if why := dns1123Label(u.Name); why != "" {
			f.Invalid("metadata.name", u.Name, why)
		}
	}
	validateLabelMap(f, "metadata.labels", u.Set)
	if v, ok := u.Set[NamespaceNameLabel]; ok && u.Name != "" && v != u.Name {
		f.Invalid("metadata.labels["+NamespaceNameLabel+"]", v, fmt.Sprintf("is always the namespace's name (%q); leave it out", u.Name))
	}
	for i, k := range u.Remove {
		field := fmt.Sprintf("remove[%d]", i)
		if why := LabelKeyProblem(k); why != "" {
			f.Invalid(field, k, why)
		}
		if _, ok := u.Set[k]; ok {
			f.Invalid(field, k, "can not both modify and remove a label in the same command")
		}
	}
	return f.Err("")
}
