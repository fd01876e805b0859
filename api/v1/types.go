// Package v1 holds knit's resource types as the API accepts them and the store
// keeps them, with their validation. Addresses use net/netip throughout so that
// IPv4 and IPv6 are handled by the same code from the start.
package v1

import (
	"net/netip"
	"time"
)

// Network drivers.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNone   = "none"
)

// RuntimeCNI marks containers attached through knit-cni.
const RuntimeCNI = "cni"

// Container states.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
)

// Names of the networks that exist after knitd's first start.
const (
	DefaultBridgeNetwork = "bridge"
	HostNetwork          = "host"
	NoneNetwork          = "none"
)

// Network is a named network: a bridge with its subnets, or the host's own
// namespace (driver host), or loopback only (driver none).
type Network struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// Subnets are the network's address ranges, at most one per family.
	Subnets  []Subnet `json:"subnets,omitempty"`
	IPv6     bool     `json:"ipv6,omitempty"`
	Internal bool     `json:"internal,omitempty"`
	// MTU of the bridge and of every container interface on it; 0 means 1500.
	MTU    int               `json:"mtu,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Bridge is the kernel bridge's name. Given by the user or derived from ID.
	Bridge  string    `json:"bridge,omitempty"`
	Created time.Time `json:"created"`
	// Deleting is set by the API on removal; the network reconciler tears the
	// network down and then deletes the record.
	Deleting bool `json:"deleting,omitempty"`
}

// Subnet is one address range of a network. Gateway is the bridge's address
// in it; IPRange, when valid, limits dynamic allocation to a part of Subnet.
type Subnet struct {
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway,omitempty"`
	IPRange netip.Prefix `json:"ipRange,omitempty"`
}

// NetworkCreate is the body of POST /v1/networks. Subnets left out are picked
// from the daemon's address pools; a gateway left out is the subnet's first
// address.
type NetworkCreate struct {
	Name     string            `json:"name"`
	Driver   string            `json:"driver,omitempty"`
	Subnets  []Subnet          `json:"subnets,omitempty"`
	IPv6     bool              `json:"ipv6,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	MTU      int               `json:"mtu,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Bridge   string            `json:"bridge,omitempty"`
}

// Endpoint is a container's attachment to one network: one interface inside the
// container, with its addresses.
type Endpoint struct {
	Network   string `json:"network"`
	NetworkID string `json:"networkID"`
	// Interface is the name inside the container (eth0, eth1, …).
	Interface string `json:"interface"`
	// HostVeth is the host end of the veth pair (bridge networks only).
	HostVeth string `json:"hostVeth,omitempty"`
	MAC      string `json:"mac,omitempty"`
	// Addresses carry the subnet's prefix length (10.1.0.2/24).
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	Aliases   []string       `json:"aliases,omitempty"`
}

// Container is a process in its own network, UTS and mount namespaces (unless
// it shares another container's network namespace, or the host's).
type Container struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Hostname string   `json:"hostname"`
	Command  []string `json:"command"`
	// Namespace and Labels are what Kubernetes Services (and policies)
	// select containers by; Namespace is "default" unless given.
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	// ContainerPorts name the ports the container serves, for targetPort
	// by name; Readiness, when set, decides when it is a ready endpoint.
	ContainerPorts []ContainerPort `json:"containerPorts,omitempty"`
	Readiness      *Probe          `json:"readiness,omitempty"`
	// Endpoints in interface order. Empty for host, none and shared namespaces.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// NetworkMode is "bridge" for containers with endpoints, "host", "none",
	// or "container:<name>" for a shared network namespace.
	NetworkMode string `json:"networkMode"`
	// Ports are the published ports, with host ports picked where asked.
	Ports      []PortMapping `json:"ports,omitempty"`
	DNS        DNSConfig     `json:"dns,omitzero"`
	ExtraHosts []HostEntry   `json:"extraHosts,omitempty"`
	Created    time.Time     `json:"created"`
	// Stopped asks for the process to be stopped (SIGTERM, then SIGKILL after
	// StopGrace).
	Stopped   bool          `json:"stopped,omitempty"`
	StopGrace time.Duration `json:"stopGrace,omitempty"`
	// Deleting asks for teardown; the reconciler deletes the record after it.
	Deleting bool `json:"deleting,omitempty"`
	// Runtime is "" for containers knit runs itself and "cni" for attachments
	// made through knit-cni: those have no process of knit's, and their
	// network namespace (NetNS) belongs to the runtime.
	Runtime string `json:"runtime,omitempty"`
	NetNS   string `json:"netns,omitempty"`
	// CNI identifies a CNI attachment as the runtime knows it; CNINetwork is
	// the conflist it came through.
	CNI        *CNIAttachmentID `json:"cni,omitempty"`
	CNINetwork string           `json:"cniNetwork,omitempty"`
	// Generation counts spec changes; Status.ObservedGeneration tells which the
	// kernel state matches.
	Generation int64           `json:"generation"`
	Status     ContainerStatus `json:"status"`
}

// ContainerStatus is written by the runtime reconciler, never by the API.
type ContainerStatus struct {
	State              string    `json:"state"`
	Pid                int       `json:"pid,omitempty"`
	ExitCode           int       `json:"exitCode"`
	StartedAt          time.Time `json:"startedAt,omitzero"`
	FinishedAt         time.Time `json:"finishedAt,omitzero"`
	Error              string    `json:"error,omitempty"`
	ObservedGeneration int64     `json:"observedGeneration"`
	// Ready is written by the readiness prober: the container passes its
	// readiness probe. Containers without one are ready while running.
	Ready bool `json:"ready,omitempty"`
}

// ContainerCreate is the body of POST /v1/containers.
type ContainerCreate struct {
	Name           string            `json:"name,omitempty"`
	Hostname       string            `json:"hostname,omitempty"`
	Command        []string          `json:"command"`
	Namespace      string            `json:"namespace,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ContainerPorts []ContainerPort   `json:"containerPorts,omitempty"`
	Readiness      *Probe            `json:"readiness,omitempty"`
	// Networks to attach, in interface order; "host", "none" or
	// "container:NAME" must stand alone. Empty means the default bridge.
	Networks []string `json:"networks,omitempty"`
	// IPs are static addresses; each must lie in one of the networks' subnets.
	IPs []netip.Addr `json:"ips,omitempty"`
	// Ports to publish on the host.
	Ports []PortMapping `json:"ports,omitempty"`
	// Aliases are extra DNS names of the container on each of its networks.
	Aliases []string `json:"aliases,omitempty"`
	// DNS and ExtraHosts land in the container's resolv.conf and hosts.
	DNS        DNSConfig   `json:"dns,omitzero"`
	ExtraHosts []HostEntry `json:"extraHosts,omitempty"`
}

// DNSConfig is what --dns, --dns-search and --dns-option ask for. Servers
// are used by knit's resolver for names it does not know itself.
type DNSConfig struct {
	Servers []netip.Addr `json:"servers,omitempty"`
	Search  []string     `json:"search,omitempty"`
	Options []string     `json:"options,omitempty"`
}

// HostEntry is one --add-host name:ip line.
type HostEntry struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
}

// Connect is the body of POST /v1/networks/{name}/connect and /disconnect.
type Connect struct {
	Container string       `json:"container"`
	IPs       []netip.Addr `json:"ips,omitempty"`
	Aliases   []string     `json:"aliases,omitempty"`
	Force     bool         `json:"force,omitempty"`
}

// Error is the body of every failed API call.
type Error struct {
	// Code is a stable, machine-readable kind: invalid, notfound, conflict,
	// exhausted, internal.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ContainerPort is a port the container serves, named for Services'
// targetPort (`knit run --port http=8080/tcp`).
type ContainerPort struct {
	Name     string `json:"name"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"` // "tcp", "udp" or "sctp"
}

// Probe is a readiness check run by knitd from the host against the
// container's first address: a TCP connect, or an HTTP GET that must answer
// 2xx or 3xx. Port may name a ContainerPort.
type Probe struct {
	Type string `json:"type"` // "tcp" or "http"
	Port string `json:"port"`
	Path string `json:"path,omitempty"`
	// Period between probes and Timeout of one; zero means the defaults
	// (250 ms and 1 s).
	Period  time.Duration `json:"period,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}
