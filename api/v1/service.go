package v1

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Kubernetes object kinds and API versions knit accepts in manifests.
const (
	KindService    = "Service"
	CoreAPIVersion = "v1"
)

// Service types (spec.type).
const (
	ServiceTypeClusterIP    = "ClusterIP"
	ServiceTypeNodePort     = "NodePort"
	ServiceTypeLoadBalancer = "LoadBalancer"
	ServiceTypeExternalName = "ExternalName"
)

// Protocols as Kubernetes spells them.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
)

// ClusterIPNone marks a headless service.
const ClusterIPNone = "None"

// DefaultNamespace is the namespace of objects that name none.
const DefaultNamespace = "default"

// Session affinity.
const (
	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"
	// DefaultAffinityTimeout is Kubernetes' default for ClientIP affinity.
	DefaultAffinityTimeout = 10800
)

// Service is a Kubernetes v1 Service as knit keeps it: the JSON form of the
// manifest kubectl would send (the same field names, so a manifest converts
// by a JSON round trip), holding the subset of fields knit implements, plus
// the status knit fills in. knitd does not import the Kubernetes modules
// (their package initialisation would slow down every container start, which
// re-executes knitd); `knit apply` decodes manifests with the real
// k8s.io/api types first, so that a field Kubernetes knows but knit does not
// is reported as unsupported rather than as a typo.
type Service struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Metadata   ObjectMeta    `json:"metadata"`
	Spec       ServiceSpec   `json:"spec"`
	Status     ServiceStatus `json:"status,omitzero"`
}

// ObjectMeta is the part of Kubernetes' metadata knit keeps.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Set by knitd.
	UID               string    `json:"uid,omitempty"`
	Generation        int64     `json:"generation,omitempty"`
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
}

// ServiceSpec is spec of a v1 Service.
type ServiceSpec struct {
	Type     string            `json:"type,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports,omitempty"`
	// ClusterIP is "" (allocate), "None" (headless) or an address in the
	// service range. ClusterIPs holds it and, for dual stack, the other
	// family's.
	ClusterIP                     string                 `json:"clusterIP,omitempty"`
	ClusterIPs                    []string               `json:"clusterIPs,omitempty"`
	IPFamilies                    []string               `json:"ipFamilies,omitempty"`
	IPFamilyPolicy                string                 `json:"ipFamilyPolicy,omitempty"`
	SessionAffinity               string                 `json:"sessionAffinity,omitempty"`
	SessionAffinityConfig         *SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`
	ExternalName                  string                 `json:"externalName,omitempty"`
	LoadBalancerIP                string                 `json:"loadBalancerIP,omitempty"`
	PublishNotReadyAddresses      bool                   `json:"publishNotReadyAddresses,omitempty"`
	ExternalTrafficPolicy         string                 `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy         string                 `json:"internalTrafficPolicy,omitempty"`
	AllocateLoadBalancerNodePorts *bool                  `json:"allocateLoadBalancerNodePorts,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name        string      `json:"name,omitempty"`
	Protocol    string      `json:"protocol,omitempty"`
	AppProtocol string      `json:"appProtocol,omitempty"`
	Port        int32       `json:"port"`
	TargetPort  IntOrString `json:"targetPort,omitzero"`
	NodePort    int32       `json:"nodePort,omitempty"`
}

// SessionAffinityConfig holds the ClientIP affinity timeout.
type SessionAffinityConfig struct {
	ClientIP *ClientIPConfig `json:"clientIP,omitempty"`
}

// ClientIPConfig is sessionAffinityConfig.clientIP.
type ClientIPConfig struct {
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// ServiceStatus is filled by knitd.
type ServiceStatus struct {
	LoadBalancer LoadBalancerStatus `json:"loadBalancer,omitzero"`
}

// LoadBalancerStatus lists the addresses a LoadBalancer service answers on.
type LoadBalancerStatus struct {
	Ingress []LoadBalancerIngress `json:"ingress,omitempty"`
}

// LoadBalancerIngress is one load balancer address.
type LoadBalancerIngress struct {
	IP string `json:"ip,omitempty"`
}

// IntOrString is a port given as a number or as a container port's name.
type IntOrString struct {
	Str   string
	Int   int32
	IsStr bool
}

// IsZero reports whether the value was left out.
func (v IntOrString) IsZero() bool { return !v.IsStr && v.Int == 0 }

func (v IntOrString) String() string {
	if v.IsStr {
		return v.Str
	}
	return strconv.Itoa(int(v.Int))
}

// MarshalJSON writes a number or a string, as Kubernetes does.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsStr {
		return json.Marshal(v.Str)
	}
	return json.Marshal(v.Int)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsStr = true
		v.Int = 0
		return json.Unmarshal(b, &v.Str)
	}
	v.IsStr = false
	v.Str = ""
	return json.Unmarshal(b, &v.Int)
}

// Key is "namespace/name".
func (s *Service) Key() string { return s.Metadata.Namespace + "/" + s.Metadata.Name }

// Headless reports whether the service has no virtual IP.
func (s *Service) Headless() bool { return s.Spec.ClusterIP == ClusterIPNone }

// ClusterAddrs returns the parsed cluster IPs (none for headless and
// ExternalName services).
func (s *Service) ClusterAddrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range s.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// AffinityTimeout is the ClientIP affinity timeout, 0 without affinity.
func (s *Service) AffinityTimeout() time.Duration {
	if s.Spec.SessionAffinity != AffinityClientIP {
		return 0
	}
	t := int32(DefaultAffinityTimeout)
	if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		t = *c.ClientIP.TimeoutSeconds
	}
	return time.Duration(t) * time.Second
}

// ApplyRequest is the body of POST /v1/apply: objects are validated
// together and written in one transaction, so a bad object changes nothing.
type ApplyRequest struct {
	Services        []Service       `json:"services,omitempty"`
	NetworkPolicies []NetworkPolicy `json:"networkPolicies,omitempty"`
	// DryRun validates and allocates without writing.
	DryRun bool `json:"dryRun,omitempty"`
}

// ApplyResult says, per object in request order, what apply did.
type ApplyResult struct {
	Objects []AppliedObject `json:"objects"`
}

// Apply outcomes, in kubectl's words.
const (
	ApplyCreated    = "created"
	ApplyConfigured = "configured"
	ApplyUnchanged  = "unchanged"
)

// AppliedObject is one line of kubectl's apply output.
type AppliedObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
}

func (o AppliedObject) String() string {
	kind := lowerKind(o.Kind)
	if o.Kind == KindNetworkPolicy {
		kind += ".networking.k8s.io"
	}
	return fmt.Sprintf("%s/%s %s", kind, o.Name, o.Action)
}

func lowerKind(k string) string {
	b := []byte(k)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ServiceDetail is GET /v1/services/{namespace}/{name}: the service and the
// endpoints its selector picks now.
type ServiceDetail struct {
	Service   Service           `json:"service"`
	Endpoints []ServiceEndpoint `json:"endpoints"`
}

// ServiceEndpoint is one container a service's selector matches.
type ServiceEndpoint struct {
	Container string       `json:"container"`
	Hostname  string       `json:"hostname,omitempty"`
	Addresses []netip.Addr `json:"addresses"`
	Ready     bool         `json:"ready"`
	// Ports are the target ports per service port name ("" for an unnamed
	// port); a port whose named target the container does not define is
	// left out.
	Ports []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a resolved target port.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
}

// LabelUpdate is the body of POST /v1/containers/{name}/labels, what
// `knit label` sends: Set adds or changes labels (changing an existing
// value needs Overwrite), Remove deletes keys.
type LabelUpdate struct {
	Set       map[string]string `json:"set,omitempty"`
	Remove    []string          `json:"remove,omitempty"`
	Overwrite bool              `json:"overwrite,omitempty"`
}
