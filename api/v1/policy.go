package v1

import (
	"time"
)

// NetworkPolicy kind and API version.
const (
	KindNetworkPolicy    = "NetworkPolicy"
	NetworkingAPIVersion = "networking.k8s.io/v1"
)

// Policy types.
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// NetworkPolicy is a Kubernetes networking.k8s.io/v1 NetworkPolicy in its
// JSON form (all of its fields: knit implements the whole API).
type NetworkPolicy struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ObjectMeta        `json:"metadata"`
	Spec       NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec is spec of a NetworkPolicy.
type NetworkPolicySpec struct {
	PodSelector LabelSelector              `json:"podSelector"`
	Ingress     []NetworkPolicyIngressRule `json:"ingress,omitempty"`
	Egress      []NetworkPolicyEgressRule  `json:"egress,omitempty"`
	PolicyTypes []string                   `json:"policyTypes,omitempty"`
}

// NetworkPolicyIngressRule allows traffic from any of From (all sources
// when empty) to any of Ports (all ports when empty).
type NetworkPolicyIngressRule struct {
	Ports []NetworkPolicyPort `json:"ports,omitempty"`
	From  []NetworkPolicyPeer `json:"from,omitempty"`
}

// NetworkPolicyEgressRule allows traffic to any of To on any of Ports.
type NetworkPolicyEgressRule struct {
	Ports []NetworkPolicyPort `json:"ports,omitempty"`
	To    []NetworkPolicyPeer `json:"to,omitempty"`
}

// NetworkPolicyPort is a protocol and a port (number or container port
// name) or port range (Port to EndPort).
type NetworkPolicyPort struct {
	Protocol string       `json:"protocol,omitempty"`
	Port     *IntOrString `json:"port,omitempty"`
	EndPort  *int32       `json:"endPort,omitempty"`
}

// NetworkPolicyPeer is pods (PodSelector and/or NamespaceSelector: both
// given means both must match) or an address block.
type NetworkPolicyPeer struct {
	PodSelector       *LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *IPBlock       `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR with exceptions.
type IPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// LabelSelector is Kubernetes' label selector; the empty selector matches
// everything.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one expression: Key In/NotIn Values,
// Exists or DoesNotExist.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Selector operators.
const (
	SelectorOpIn           = "In"
	SelectorOpNotIn        = "NotIn"
	SelectorOpExists       = "Exists"
	SelectorOpDoesNotExist = "DoesNotExist"
)

// Matches reports whether labels satisfy the selector (AND of everything).
func (s *LabelSelector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if have, ok := labels[k]; !ok || have != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case SelectorOpIn:
			if !ok || !contains(r.Values, v) {
				return false
			}
		case SelectorOpNotIn:
			if ok && contains(r.Values, v) {
				return false
			}
		case SelectorOpExists:
			if !ok {
				return false
			}
		case SelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Empty reports whether the selector selects everything.
func (s *LabelSelector) Empty() bool { return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Key is "namespace/name".
func (p *NetworkPolicy) Key() string { return p.Metadata.Namespace + "/" + p.Metadata.Name }

// Types returns the effective policyTypes: as given, or Kubernetes'
// default (Ingress, plus Egress when there are egress rules).
func (p *NetworkPolicy) Types() (ingress, egress bool) {
	if len(p.Spec.PolicyTypes) == 0 {
		return true, len(p.Spec.Egress) > 0
	}
	for _, t := range p.Spec.PolicyTypes {
		switch t {
		case PolicyTypeIngress:
			ingress = true
		case PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// Namespace is a namespace with labels (NetworkPolicy's namespaceSelector
// matches them). Every namespace has the label
// kubernetes.io/metadata.name=<name>, as in Kubernetes. Namespaces that
// containers or services use exist implicitly with only that label.
type Namespace struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created,omitzero"`
}

// NamespaceNameLabel is set on every namespace to its name.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// EffectiveLabels returns the namespace's labels with the automatic name
// label.
func (n *Namespace) EffectiveLabels() map[string]string {
	out := make(map[string]string, len(n.Labels)+1)
	for k, v := range n.Labels {
		out[k] = v
	}
	out[NamespaceNameLabel] = n.Name
	return out
}

// NamespaceUpdate is the body of POST /v1/namespaces (create) and POST
// /v1/namespaces/{name}/labels (knit namespace label), like LabelUpdate.
type NamespaceUpdate struct {
	Name      string            `json:"name,omitempty"`
	Set       map[string]string `json:"set,omitempty"`
	Remove    []string          `json:"remove,omitempty"`
	Overwrite bool              `json:"overwrite,omitempty"`
}

// PolicyTrace is the body of POST /v1/policy/trace: would a new connection
// From → To on Port/Protocol be allowed? From and To are container names or
// addresses.
type PolicyTrace struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"` // tcp, udp, sctp
	Port     uint16 `json:"port"`
}

// PolicyVerdict answers a PolicyTrace: the verdict for each direction and
// overall, with the policy and rule that decided.
type PolicyVerdict struct {
	Allowed bool            `json:"allowed"`
	Egress  DirectionResult `json:"egress"`
	Ingress DirectionResult `json:"ingress"`
}

// DirectionResult is one side's verdict: not isolated (allowed, no policy
// selects the pod for this direction), allowed by rules, or denied with the
// policies that isolate it.
type DirectionResult struct {
	Allowed  bool   `json:"allowed"`
	Isolated bool   `json:"isolated"`
	Reason   string `json:"reason"`
	// AllowedBy are "ns/policy ingress[i]" rules that allow it.
	AllowedBy []string `json:"allowedBy,omitempty"`
	// IsolatedBy are the policies selecting the pod for this direction.
	IsolatedBy []string `json:"isolatedBy,omitempty"`
}

// PolicyDrop is one denied packet knit saw (knit policy drops).
type PolicyDrop struct {
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"` // ingress or egress
	Protocol  string    `json:"protocol"`
	Src       string    `json:"src"`
	Dst       string    `json:"dst"`
	SrcName   string    `json:"srcName,omitempty"`
	DstName   string    `json:"dstName,omitempty"`
	// Policies are those isolating the dropping side.
	Policies []string `json:"policies,omitempty"`
}

// PolicyDrops is GET /v1/policy/drops: denied packets counted per policy
// (a packet denied at a pod that several policies isolate counts for each),
// and the most recent ones, newest first.
type PolicyDrops struct {
	Counts map[string]uint64 `json:"counts"`
	Recent []PolicyDrop      `json:"recent"`
}
