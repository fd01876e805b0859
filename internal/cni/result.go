package cni

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v1 "github.com/knit-net/knit/api/v1"
)

// buildResult turns knitd's answer into the spec's result. With a prevResult
// (knit-cni chained after another plugin) the answer is appended to it: the
// interface after the previous ones, knit's IPs pointing at it, routes
// appended and DNS merged, so earlier plugins' results pass through as the
// spec asks.
func buildResult(cniVersion string, r *v1.CNIResult, prev types.Result) (*types100.Result, error) {
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	if prev != nil {
		p, err := types100.NewResultFromResult(prev)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", fmt.Sprintf("%s; the previous plugin's result cannot be read as cniVersion %s", err, cniVersion))
		}
		res = p
		res.CNIVersion = types100.ImplementedSpecVersion
	}
	idx := len(res.Interfaces)
	res.Interfaces = append(res.Interfaces, &types100.Interface{
		Name:    r.Interface.Name,
		Mac:     r.Interface.MAC,
		Mtu:     r.Interface.MTU,
		Sandbox: r.Interface.Sandbox,
	})
	for _, ip := range r.IPs {
		c := &types100.IPConfig{Interface: types100.Int(idx), Address: ipNet(ip.Address)}
		if ip.Gateway.IsValid() {
			c.Gateway = net.IP(ip.Gateway.AsSlice())
		}
		res.IPs = append(res.IPs, c)
	}
	for _, rt := range r.Routes {
		route := &types.Route{Dst: ipNet(rt.Dst.Masked())}
		if rt.GW.IsValid() {
			route.GW = net.IP(rt.GW.AsSlice())
		}
		res.Routes = append(res.Routes, route)
	}
	mergeDNS(&res.DNS, r.DNS)
	return res, nil
}

func ipNet(p netip.Prefix) net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

// mergeDNS adds knit's servers, search domains and options after what is
// already there, without duplicates.
func mergeDNS(d *types.DNS, k v1.DNSConfig) {
	for _, s := range k.Servers {
		if !slices.Contains(d.Nameservers, s.String()) {
			d.Nameservers = append(d.Nameservers, s.String())
		}
	}
	for _, s := range k.Search {
		if !slices.Contains(d.Search, s) {
			d.Search = append(d.Search, s)
		}
	}
	for _, o := range k.Options {
		if !slices.Contains(d.Options, o) {
			d.Options = append(d.Options, o)
		}
	}
}

// checkPrevResult compares what the runtime recorded after ADD with what
// knitd reports now: the interface must be listed in the same sandbox, and
// every address knitd holds for it must be in the prevResult. Other entries
// belong to other plugins and are not knit's to judge.
func checkPrevResult(prev types.Result, r *v1.CNIResult) error {
	p, err := types100.NewResultFromResult(prev)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}
	idx := -1
	for i, ifc := range p.Interfaces {
		if ifc.Name == r.Interface.Name && ifc.Sandbox == r.Interface.Sandbox {
			idx = i
		}
	}
	if idx < 0 {
		return types.NewError(ErrCheckFailed, fmt.Sprintf("interface %s in %s is not in prevResult", r.Interface.Name, r.Interface.Sandbox),
			"the runtime's cached result does not describe this attachment; DEL and ADD it again")
	}
	if mac := p.Interfaces[idx].Mac; mac != "" && r.Interface.MAC != "" && mac != r.Interface.MAC {
		return types.NewError(ErrCheckFailed, fmt.Sprintf("interface %s has MAC %s, prevResult says %s", r.Interface.Name, r.Interface.MAC, mac),
			"the interface was changed or recreated behind the runtime's back; DEL and ADD it again")
	}
	for _, ip := range r.IPs {
		want := ipNet(ip.Address)
		found := false
		for _, c := range p.IPs {
			if c.Interface != nil && *c.Interface == idx && c.Address.String() == want.String() {
				found = true
			}
		}
		if !found {
			return types.NewError(ErrCheckFailed, fmt.Sprintf("address %s of %s is not in prevResult", ip.Address, r.Interface.Name),
				"knitd's record and the runtime's cached result disagree; DEL and ADD the attachment again")
		}
	}
	return nil
}
