// Package cni is knit's CNI plugin (knit-cni): a thin client that turns the
// runtime's ADD, CHECK, DEL, GC and STATUS into calls to knitd's /v1/cni API
// and knitd's answers into the spec's results and errors. knitd does the
// work: it records the attachment as a container of its own, allocates the
// address in the same store transaction, creates the veth in its own
// namespace and moves the container end into CNI_NETNS by path. The plugin
// keeps no state, so DEL works without a netns or a cached result.
//
// The binary is exec'd once per call, so this package stays small: no
// net/http (a tiny HTTP/1.0 client over the unix socket), no cobra, only the
// CNI library's skel, types and version.
package cni

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/knit-net/knit/api/v1"
)

// About is printed when the plugin is run by hand.
const About = "knit-cni: CNI plugin for knit networks (talks to knitd; see knit cni install)"

// Versions are the spec versions the plugin speaks; results are built as
// 1.1.0 and converted down.
var Versions = version.All

// Plugin holds the verbs; Stdout is where ADD and CHECK results go.
type Plugin struct {
	Stdout io.Writer
	// newClient makes the knitd client for a configuration (tests swap it).
	newClient func(conf *NetConf) *client
	// ownNetNS is the plugin's own namespace, which CNI_NETNS must not be
	// ("" skips the check: unit tests have no other namespace to offer).
	ownNetNS string
}

// New returns the plugin writing results to stdout.
func New() *Plugin {
	return &Plugin{
		Stdout:    os.Stdout,
		newClient: func(conf *NetConf) *client { return &client{socket: conf.Socket} },
		ownNetNS:  "/proc/self/ns/net",
	}
}

// Funcs returns the verbs for skel.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}

// Main runs the plugin: skel reads the environment and stdin, checks the
// version, calls the verb and prints any error as the spec's JSON.
func Main() {
	skel.PluginMainFuncs(New().Funcs(), Versions, About)
}

// Add attaches the container to the knit network and prints the result.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, res, err := p.ask(args, "/v1/cni/add", verbAdd)
	if err != nil {
		return err
	}
	out, err := buildResult(conf.CNIVersion, res, conf.PrevResult)
	if err != nil {
		return err
	}
	return p.print(out, conf.CNIVersion)
}

// Check asks knitd whether its record and the kernel still match, then
// compares knitd's answer with the runtime's prevResult.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, res, err := p.ask(args, "/v1/cni/check", verbCheck)
	if err != nil {
		return err
	}
	if conf.PrevResult != nil {
		return checkPrevResult(conf.PrevResult, res)
	}
	return nil
}

// ask parses the configuration, checks the namespace and sends the
// attachment to knitd at path.
func (p *Plugin) ask(args *skel.CmdArgs, path string, v verb) (*NetConf, *v1.CNIResult, error) {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	if err := checkNetNS(args.Netns, p.ownNetNS); err != nil {
		return nil, nil, err
	}
	req, err := attachment(conf, args)
	if err != nil {
		return nil, nil, err
	}
	var res v1.CNIResult
	if err := p.newClient(conf).do("POST", path, req, &res); err != nil {
		return nil, nil, toCNIError(v, err)
	}
	return conf, &res, nil
}

// Del removes the attachment. It tears down from knitd's state, so an
// empty or stale CNI_NETNS is fine, and an attachment knitd does not know
// is already gone: success, as the spec asks.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req := v1.CNIAttach{ContainerID: args.ContainerID, NetNS: args.Netns, IfName: args.IfName, Network: conf.Network}
	err = p.newClient(conf).do("POST", "/v1/cni/del", req, nil)
	var api *v1.Error
	if err == nil || (errors.As(err, &api) && api.Code == v1.CodeNotFound && !noRoute(api)) {
		return nil
	}
	return toCNIError(verbDel, err)
}

// GC removes every attachment on the network that is not in the runtime's
// cni.dev/valid-attachments.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req := v1.CNIGC{Network: conf.Network, CNINetwork: conf.Name, Valid: []v1.CNIAttachmentID{}}
	for _, a := range conf.ValidAttachments {
		req.Valid = append(req.Valid, v1.CNIAttachmentID{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	var removed []string
	err = p.newClient(conf).do("POST", "/v1/cni/gc", req, &removed)
	var api *v1.Error
	if err == nil || (errors.As(err, &api) && api.Code == v1.CodeNotFound && !noRoute(api)) {
		return nil // no such network: nothing on it to collect
	}
	return toCNIError(verbGC, err)
}

// Status succeeds when knitd is ready and the network exists, so that an
// ADD can be served; otherwise it answers 50 (plugin not available).
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	c := p.newClient(conf)
	if err := c.do("GET", "/v1/cni/status", nil, nil); err != nil {
		e := toCNIError(verbStatus, err)
		if e.Code != types.ErrPluginNotAvailable {
			e = types.NewError(types.ErrPluginNotAvailable, e.Msg, e.Details)
		}
		return e
	}
	var n v1.Network
	if err := c.do("GET", "/v1/networks/"+conf.Network, nil, &n); err != nil {
		e := toCNIError(verbStatus, err)
		return types.NewError(types.ErrPluginNotAvailable, e.Msg, e.Details)
	}
	if n.Driver != v1.DriverBridge {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("knit network %q has driver %s; CNI attachments need a bridge network", n.Name, n.Driver),
			"set \"network\" in the conflist to a bridge network (knit network ls)")
	}
	return nil
}

func (p *Plugin) print(res types.Result, cniVersion string) error {
	out, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("cannot express the result as cniVersion %s", cniVersion), err.Error())
	}
	if err := out.PrintTo(p.Stdout); err != nil {
		return types.NewError(types.ErrIOFailure, "cannot write the result", err.Error())
	}
	return nil
}
