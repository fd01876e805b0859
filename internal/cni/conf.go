package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/knit-net/knit/api/v1"
)

// DefaultSocket is where knitd listens unless the conflist says otherwise.
const DefaultSocket = "/run/knit/knit.sock"

// NetConf is the plugin's configuration as the runtime passes it on stdin:
//
//	{"cniVersion": "1.0.0", "name": "knit", "type": "knit",
//	 "network": "bridge", "socket": "/run/knit/knit.sock",
//	 "capabilities": {"portMappings": true, "ips": true, "mac": true}}
type NetConf struct {
	types.PluginConf
	// Network is the knit network to attach to (default "bridge").
	Network string `json:"network,omitempty"`
	// Socket is knitd's API socket (default /run/knit/knit.sock).
	Socket string `json:"socket,omitempty"`
	// RuntimeConfig carries the capabilities the runtime filled in.
	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitzero"`
	// LegacyAttachments is the name libcni also sends GC's valid
	// attachments under (spec issue #1101).
	LegacyAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// RuntimeConfig holds the capabilities knit-cni declares.
type RuntimeConfig struct {
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// IPs are "addr" or "addr/len" (the prefix length is ignored: the
	// network's subnet decides it).
	IPs []string `json:"ips,omitempty"`
	MAC string   `json:"mac,omitempty"`
}

// PortMapping is one entry of the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// parseConf decodes stdin, fills in defaults and parses any prevResult.
// Errors are *types.Error with the spec's codes.
func parseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode the network configuration", fmt.Sprintf("%s; the runtime must pass the conflist's plugin entry as JSON", err))
	}
	if conf.Network == "" {
		conf.Network = v1.DefaultBridgeNetwork
	}
	if err := v1.ValidateName("network", conf.Network); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid \"network\" %q in the conflist", conf.Network), err.Error())
	}
	if conf.Socket == "" {
		conf.Socket = DefaultSocket
	}
	if len(conf.ValidAttachments) == 0 {
		conf.ValidAttachments = conf.LegacyAttachments
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot decode prevResult", fmt.Sprintf("%s; the previous plugin in the chain returned a result this cniVersion cannot read", err))
		}
	}
	return conf, nil
}

// attachment builds the request for knitd from the configuration, the
// runtime's arguments and the capabilities. The runtimeConfig wins over the
// equivalent CNI_ARGS (IP, MAC), as the conventions ask.
func attachment(conf *NetConf, args *skel.CmdArgs) (v1.CNIAttach, error) {
	a := v1.CNIAttach{
		ContainerID: args.ContainerID,
		NetNS:       args.Netns,
		IfName:      args.IfName,
		Network:     conf.Network,
		CNINetwork:  conf.Name,
		MAC:         conf.RuntimeConfig.MAC,
	}
	kv := parseArgs(args.Args)
	a.PodName, a.PodNamespace = kv["K8S_POD_NAME"], kv["K8S_POD_NAMESPACE"]
	if a.MAC == "" {
		a.MAC = kv["MAC"]
	}
	ips := conf.RuntimeConfig.IPs
	if len(ips) == 0 && kv["IP"] != "" {
		ips = strings.Split(kv["IP"], ",")
	}
	for _, s := range ips {
		ip, err := parseIP(s)
		if err != nil {
			return a, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid static address %q", s), "runtimeConfig.ips (or CNI_ARGS IP) takes addresses such as 10.1.0.5 or 10.1.0.5/24")
		}
		a.IPs = append(a.IPs, ip)
	}
	for _, p := range conf.RuntimeConfig.PortMappings {
		pm, err := portMapping(p)
		if err != nil {
			return a, err
		}
		a.Ports = append(a.Ports, pm)
	}
	return a, nil
}

// parseArgs reads CNI_ARGS ("K=V;K=V"). Unknown keys are ignored, as
// runtimes pass several that are meant for other plugins.
func parseArgs(s string) map[string]string {
	kv := map[string]string{}
	for _, pair := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(pair, "="); ok && k != "" {
			kv[k] = v
		}
	}
	return kv
}

func parseIP(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

func portMapping(p PortMapping) (v1.PortMapping, error) {
	bad := func(why string) (v1.PortMapping, error) {
		return v1.PortMapping{}, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("invalid port mapping %d->%d/%s", p.HostPort, p.ContainerPort, p.Protocol),
			why+`; runtimeConfig.portMappings entries look like {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}`)
	}
	pm := v1.PortMapping{Protocol: strings.ToLower(p.Protocol)}
	if pm.Protocol == "" {
		pm.Protocol = "tcp"
	}
	if p.HostPort < 0 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return bad("ports must be 1-65535 (hostPort 0 lets knitd pick one)")
	}
	pm.HostPort, pm.ContainerPort = uint16(p.HostPort), uint16(p.ContainerPort)
	if p.HostIP != "" {
		ip, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			return bad(fmt.Sprintf("hostIP %q is not an address", p.HostIP))
		}
		// 0.0.0.0 and :: mean every address, which is what no address means.
		if !ip.IsUnspecified() {
			pm.HostIP = ip
		}
	}
	return pm, nil
}
