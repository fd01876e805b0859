package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// CNI attachments are containers with Runtime "cni": knitd owns their
// endpoint (veth, address, ports, DNS name), the runtime owns their network
// namespace and process. cni/<containerID>/<ifName> indexes them by the
// runtime's identity, which is all a DEL or GC carries.
func cniKey(cid, ifName string) string { return "cni/" + cid + "/" + ifName }

// cniID is the knit container ID of an attachment: runtime IDs can be any
// string ("cb-ctr-7"), knit's must be long hex.
func cniID(cid, ifName string) string {
	sum := sha256.Sum256([]byte(cid + "/" + ifName))
	return hex.EncodeToString(sum[:])
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// cniName is the DNS name of an attachment: the pod's (or podman
// container's) name, qualified by its namespace unless that is "default".
func cniName(req *v1.CNIAttach, id string) string {
	name := req.PodName
	if name != "" && req.PodNamespace != "" && req.PodNamespace != "default" {
		name += "." + req.PodNamespace
	}
	name = strings.Trim(nameUnsafe.ReplaceAllString(name, "-"), "-.")
	if name == "" || len(name) > v1.MaxNameLen {
		name = "cni-" + id[:12]
	}
	return name
}

func (s *Server) decodeCNI(w http.ResponseWriter, r *http.Request) (*v1.CNIAttach, bool) {
	var req v1.CNIAttach
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return nil, false
	}
	if req.ContainerID == "" {
		writeErr(w, v1.Invalidf("CNI attachment: CNI_CONTAINERID is empty; the runtime must pass the container's ID"))
		return nil, false
	}
	if err := v1.ValidateIfName("CNI attachment: CNI_IFNAME", req.IfName); err != nil {
		writeErr(w, err)
		return nil, false
	}
	if req.Network == "" {
		req.Network = v1.DefaultBridgeNetwork
	}
	return &req, true
}

func (s *Server) cniAdd(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeCNI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	res, err := s.CNIAdd(ctx, req)
	reply(w, http.StatusOK, res, err)
}

// CNIAdd records the attachment, waits until its interface is up in the
// runtime's namespace, and returns the result. Adding the same attachment
// again answers the same result.
func (s *Server) CNIAdd(ctx context.Context, req *v1.CNIAttach) (*v1.CNIResult, error) {
	owner := fmt.Sprintf("CNI attachment %s/%s", req.ContainerID, req.IfName)
	if req.NetNS == "" {
		return nil, v1.Invalidf("%s: CNI_NETNS is empty; ADD needs the container's network namespace", owner)
	}
	if _, err := os.Stat(req.NetNS); err != nil {
		return nil, v1.Invalidf("%s: network namespace %s does not exist; create it before ADD", owner, req.NetNS)
	}
	if err := v1.ValidatePorts(owner, req.Ports); err != nil {
		return nil, err
	}
	var sockets portmap.HostHolder
	if len(req.Ports) > 0 && s.opts.Host != nil {
		sockets = s.opts.Host.Sockets()
	}
	id := cniID(req.ContainerID, req.IfName)
	var name string
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		if prev, ok, err := tx.Get(cniKey(req.ContainerID, req.IfName)); err != nil {
			return err
		} else if ok {
			name = string(prev)
			c, err := state.GetContainer(tx, name)
			if err != nil {
				return err
			}
			if c != nil && !c.Deleting && c.Status.State != v1.StateExited {
				if c.NetNS != req.NetNS || len(c.Endpoints) == 0 || c.Endpoints[0].Network != req.Network {
					return v1.Conflictf("%s already exists in %s; DEL it before adding it again", owner, c.NetNS)
				}
				return nil
			}
			// A stale index entry (the attachment exited or is going away):
			// add afresh under a new record.
			if c != nil {
				return v1.Conflictf("%s is still being removed; DEL it and ADD again", owner)
			}
		}
		c, err := s.newCNIContainer(tx, req, id, sockets)
		if err != nil {
			return err
		}
		name = c.Name
		if err := state.PutContainer(tx, c); err != nil {
			return err
		}
		return tx.Put(cniKey(req.ContainerID, req.IfName), []byte(c.Name))
	})
	if err != nil {
		return nil, err
	}
	c, err := s.waitRunning(ctx, name, rev)
	if err != nil {
		return nil, err
	}
	return s.cniResult(ctx, c)
}

// newCNIContainer builds the record of a new attachment, with its address,
// host ports and a unique name.
func (s *Server) newCNIContainer(tx store.Tx, req *v1.CNIAttach, id string, sockets portmap.HostHolder) (*v1.Container, error) {
	n, err := state.GetNetwork(tx, req.Network)
	if err != nil {
		return nil, err
	}
	if n == nil || n.Deleting {
		return nil, v1.NotFoundf("knit network %q not found; create it with knit network create %s, or fix \"network\" in the conflist", req.Network, req.Network)
	}
	if n.Driver != v1.DriverBridge {
		return nil, v1.Invalidf("knit network %q has driver %s; CNI attachments need a bridge network", n.Name, n.Driver)
	}
	name := cniName(req, id)
	if other, err := state.GetContainer(tx, name); err != nil {
		return nil, err
	} else if other != nil {
		name = strings.TrimRight(name[:min(len(name), v1.MaxNameLen-7)], "-.") + "-" + id[:6]
	}
	c := &v1.Container{
		ID: id, Name: name, Hostname: name, Runtime: v1.RuntimeCNI, NetNS: req.NetNS,
		NetworkMode: v1.DriverBridge, Created: time.Now().UTC(), Generation: 1,
		CNI:        &v1.CNIAttachmentID{ContainerID: req.ContainerID, IfName: req.IfName},
		CNINetwork: req.CNINetwork,
		Status:     v1.ContainerStatus{State: v1.StateCreated},
		Namespace:  v1.DefaultNamespace,
	}
	if req.PodNamespace != "" {
		c.Namespace = req.PodNamespace
		c.Labels = map[string]string{"io.kubernetes.pod.namespace": req.PodNamespace}
	}
	statics, err := assignStatics(name, []*v1.Network{n}, req.IPs)
	if err != nil {
		return nil, err
	}
	ep, err := newEndpoint(tx, c, n, 0, statics[n.Name], nil)
	if err != nil {
		return nil, err
	}
	ep.Interface = req.IfName
	if req.MAC != "" {
		ep.MAC = req.MAC
	}
	c.Endpoints = []v1.Endpoint{ep}
	if err := publishPorts(tx, c, req.Ports, sockets); err != nil {
		return nil, err
	}
	return c, nil
}

// cniResult describes an attachment as the plugin's result needs it.
func (s *Server) cniResult(ctx context.Context, c *v1.Container) (*v1.CNIResult, error) {
	ep := c.Endpoints[0]
	n, err := read(ctx, s.st, func(tx store.Tx) (*v1.Network, error) { return state.GetNetwork(tx, ep.Network) })
	if err != nil || n == nil {
		return nil, fmt.Errorf("network %q of %s: %w", ep.Network, c.Name, err)
	}
	res := &v1.CNIResult{
		Container: c.Name,
		Interface: v1.CNIInterface{Name: ep.Interface, MAC: ep.MAC, Sandbox: c.NetNS, MTU: n.MTU},
	}
	for _, a := range ep.Addresses {
		ip := v1.CNIIP{Address: a}
		for _, sub := range n.Subnets {
			if sub.Subnet.Contains(a.Addr()) {
				ip.Gateway = sub.Gateway
				if !n.Internal {
					res.Routes = append(res.Routes, v1.CNIRoute{Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), GW: sub.Gateway})
					if a.Addr().Is4() {
						res.Routes[len(res.Routes)-1].Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
					}
				}
				if a.Addr().Is4() && len(res.DNS.Servers) == 0 {
					res.DNS.Servers = []netip.Addr{sub.Gateway}
				}
			}
		}
		res.IPs = append(res.IPs, ip)
	}
	return res, nil
}

func (s *Server) cniDel(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeCNI(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	if err := s.cniRemove(ctx, []v1.CNIAttachmentID{{ContainerID: req.ContainerID, IfName: req.IfName}}); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cniRemove takes attachments out by the runtime's identity; unknown ones
// are already gone, which is success (DEL is idempotent).
func (s *Server) cniRemove(ctx context.Context, ids []v1.CNIAttachmentID) error {
	for _, a := range ids {
		var name string
		_, err := s.st.Update(ctx, func(tx store.Tx) error {
			v, ok, err := tx.Get(cniKey(a.ContainerID, a.IfName))
			if err != nil || !ok {
				name = ""
				return err
			}
			name = string(v)
			return tx.Delete(cniKey(a.ContainerID, a.IfName))
		})
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		if err := s.removeContainer(ctx, name, true); err != nil && !v1.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (s *Server) cniCheck(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeCNI(w, r)
	if !ok {
		return
	}
	owner := fmt.Sprintf("CNI attachment %s/%s", req.ContainerID, req.IfName)
	var c *v1.Container
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		v, ok, err := tx.Get(cniKey(req.ContainerID, req.IfName))
		if err != nil || !ok {
			return err
		}
		c, err = state.GetContainer(tx, string(v))
		return err
	})
	switch {
	case err != nil:
	case c == nil:
		err = v1.NotFoundf("%s is not known to knitd; ADD it first", owner)
	case c.Status.State != v1.StateRunning || c.Status.Error != "":
		err = v1.Conflictf("%s is %s: %s", owner, c.Status.State, c.Status.Error)
	case s.opts.Host != nil:
		err = s.opts.Host.CheckEndpoint(c.NetNS, c.Endpoints[0].Interface, c.Endpoints[0].HostVeth)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	res, err := s.cniResult(r.Context(), c)
	reply(w, http.StatusOK, res, err)
}

func (s *Server) cniGC(w http.ResponseWriter, r *http.Request) {
	var req v1.CNIGC
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	valid := map[v1.CNIAttachmentID]bool{}
	for _, a := range req.Valid {
		valid[a] = true
	}
	cs, err := read(r.Context(), s.st, state.ListContainers)
	if err != nil {
		writeErr(w, err)
		return
	}
	var stale []v1.CNIAttachmentID
	removed := []string{}
	for _, c := range cs {
		if c.CNI == nil || valid[*c.CNI] || !gcScope(&req, &c) {
			continue
		}
		stale = append(stale, *c.CNI)
		removed = append(removed, c.CNI.ContainerID+"/"+c.CNI.IfName)
	}
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	if err := s.cniRemove(ctx, stale); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, removed)
}

// gcScope reports whether a GC request covers the attachment: GC is per CNI
// network (conflist name) when the plugin says which; otherwise per knit
// network.
func gcScope(req *v1.CNIGC, c *v1.Container) bool {
	if req.CNINetwork != "" {
		return c.CNINetwork == req.CNINetwork
	}
	return req.Network == "" || (len(c.Endpoints) > 0 && c.Endpoints[0].Network == req.Network)
}

func (s *Server) cniStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
