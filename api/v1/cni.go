package v1

import "net/netip"

// CNIAttach is the body of POST /v1/cni/add, /check and /del: one CNI
// attachment, (ContainerID, IfName) on Network, as a runtime asks for it
// through the knit-cni plugin. knitd records it as a container with no
// process of its own (Runtime "cni") whose network namespace belongs to the
// runtime.
type CNIAttach struct {
	ContainerID string `json:"containerID"`
	// NetNS is the runtime's namespace path; empty on DEL is allowed
	// (containerd sends none): knitd tears down from its own state.
	NetNS   string `json:"netns,omitempty"`
	IfName  string `json:"ifName"`
	Network string `json:"network"`
	// CNINetwork is the conflist's name, which scopes GC.
	CNINetwork string `json:"cniNetwork,omitempty"`
	// PodName and PodNamespace come from K8S_POD_NAME / K8S_POD_NAMESPACE in
	// CNI_ARGS; Name is the runtime's container name when there is no pod
	// (podman passes it as K8S_POD_NAME too). They give the DNS name.
	PodName      string `json:"podName,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	// Runtime config (capabilities): portMappings, ips, mac.
	Ports []PortMapping `json:"ports,omitempty"`
	IPs   []netip.Addr  `json:"ips,omitempty"`
	MAC   string        `json:"mac,omitempty"`
}

// CNIResult is what knitd answers to add and check: everything the plugin
// needs to build the spec's result.
type CNIResult struct {
	// Container is the knit container that represents the attachment.
	Container string       `json:"container"`
	Interface CNIInterface `json:"interface"`
	IPs       []CNIIP      `json:"ips"`
	Routes    []CNIRoute   `json:"routes,omitempty"`
	DNS       DNSConfig    `json:"dns"`
}

// CNIInterface is the container-side interface.
type CNIInterface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox"`
	MTU     int    `json:"mtu,omitempty"`
}

// CNIIP is one address with its gateway.
type CNIIP struct {
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
}

// CNIRoute is one route inside the container.
type CNIRoute struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// CNIGC is the body of POST /v1/cni/gc: every attachment on Network that is
// not in Valid is removed.
type CNIGC struct {
	Network string `json:"network"`
	// CNINetwork is the conflist's name: only its attachments are collected.
	CNINetwork string            `json:"cniNetwork,omitempty"`
	Valid      []CNIAttachmentID `json:"valid"`
}

// CNIAttachmentID names one attachment.
type CNIAttachmentID struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}
