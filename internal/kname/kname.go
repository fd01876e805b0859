// Package kname defines every name and number knit gives its objects in
// the kernel: link names and prefixes, the nftables table, the route
// protocol, packet mark bits and NFLOG groups. Everything knit makes is
// recognisably knit's through them, so it can be found, adopted and
// garbage-collected, and nobody else's state is ever touched. Nothing else
// in knit spells these values out.
package kname

import "strconv"

// Links.
const (
	// BridgePrefix starts the name of every bridge knit derives from a
	// network ID (see Bridge). A prefixed bridge no network wants is knit's
	// to remove.
	BridgePrefix = "kn-"
	// DefaultBridge is the bridge of the predefined network "bridge".
	DefaultBridge = "knit0"
	// HostVethPrefix starts the host end of every container's veth (see
	// HostVeth).
	HostVethPrefix = "knv"
)

// ContainerIfPrefix names a container's interfaces: eth0, eth1, … in the
// order of its endpoints (see ContainerIf).
const ContainerIfPrefix = "eth"

// ContainerIf is the name of a container's idx-th interface.
func ContainerIf(idx int) string { return ContainerIfPrefix + strconv.Itoa(idx) }

// Bridge is the kernel bridge of the network with the given ID (at least 8
// characters): "kn-" and 8 of them, within IFNAMSIZ.
func Bridge(networkID string) string { return BridgePrefix + networkID[:8] }

// HostVeth is the host end of a container's idx-th endpoint: "knv", 9
// characters of the container ID (at least 9), "-" and idx; it fits
// IFNAMSIZ for idx < 100.
func HostVeth(containerID string, idx int) string {
	return HostVethPrefix + containerID[:9] + "-" + strconv.Itoa(idx)
}

// nftables.
const (
	// Table is knit's nftables table, "table inet knit": knit owns all of
	// it and no other table.
	Table = "knit"
	// SetComment marks every set knit creates in its table.
	SetComment = "knit"
	// PolicyLogGroup is the NFLOG group that network policy logs denied
	// packets to, each with PolicyLogPrefix and the direction in its
	// prefix ("knit-policy egress ").
	PolicyLogGroup  = 100
	PolicyLogPrefix = "knit-policy "
)

// RouteProtocol marks the routes knit makes (rtm_protocol), so that it
// finds and removes its own and never anyone else's.
const RouteProtocol = 75
