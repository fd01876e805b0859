package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/kname"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Predefined networks cannot be removed.
func predefined(name string) bool {
	return name == v1.DefaultBridgeNetwork || name == v1.HostNetwork || name == v1.NoneNetwork
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) {
	nets, err := read(r.Context(), s.st, state.ListNetworks)
	reply(w, http.StatusOK, nets, err)
}

func (s *Server) getNetwork(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	n, err := read(r.Context(), s.st, func(tx store.Tx) (*v1.Network, error) { return state.GetNetwork(tx, name) })
	if err == nil && n == nil {
		err = v1.NotFoundf("network %q not found; see knit network ls", name)
	}
	reply(w, http.StatusOK, n, err)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req v1.NetworkCreate
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	n, err := s.CreateNetwork(r.Context(), req)
	reply(w, http.StatusCreated, n, err)
}

// CreateNetwork validates req against the request itself, the other networks
// and the host, picks missing subnets, and stores the network.
func (s *Server) CreateNetwork(ctx context.Context, req v1.NetworkCreate) (*v1.Network, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	owner := fmt.Sprintf("network %q", req.Name)
	var routes []netip.Prefix
	if s.opts.Host != nil {
		routes = s.opts.Host.Routes()
		if req.Bridge != "" && s.opts.Host.LinkExists(req.Bridge) {
			return nil, v1.Conflictf("%s: --bridge %s: a link with that name already exists on the host; pick another name", owner, req.Bridge)
		}
	}
	id := newID()
	n := &v1.Network{
		ID: id, Name: req.Name, Driver: req.Driver, IPv6: req.IPv6, Internal: req.Internal,
		MTU: req.MTU, Labels: req.Labels, Bridge: req.Bridge, Created: time.Now().UTC(),
	}
	if n.Driver == v1.DriverBridge && n.Bridge == "" {
		n.Bridge = kname.Bridge(id)
	}
	_, err := s.st.Update(ctx, func(tx store.Tx) error {
		nets, err := state.ListNetworks(tx)
		if err != nil {
			return err
		}
		n.Subnets = append([]v1.Subnet(nil), req.Subnets...)
		if err := checkNetwork(n, nets, routes, s.opts.Pools); err != nil {
			return err
		}
		return state.PutNetwork(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// checkNetwork refuses a duplicate name, bridge or overlapping subnet and
// fills in missing subnets from the pools, avoiding other networks and the
// host's routes.
func checkNetwork(n *v1.Network, nets []v1.Network, routes []netip.Prefix, pools []ipam.Pool) error {
	owner := fmt.Sprintf("network %q", n.Name)
	var taken []netip.Prefix
	for _, o := range nets {
		if o.Name == n.Name {
			return v1.Conflictf("%s already exists; pick another name, or remove it first with knit network rm %s", owner, n.Name)
		}
		if n.Bridge != "" && o.Bridge == n.Bridge {
			return v1.Conflictf("%s: bridge %s is already used by network %q; pick another --bridge", owner, n.Bridge, o.Name)
		}
		for _, sub := range o.Subnets {
			taken = append(taken, sub.Subnet)
			for _, mine := range n.Subnets {
				if mine.Subnet.Overlaps(sub.Subnet) {
					return v1.Conflictf("%s: subnet %s overlaps network %q (%s); pick another --subnet", owner, mine.Subnet, o.Name, sub.Subnet)
				}
			}
		}
	}
	if n.Driver != v1.DriverBridge {
		return nil
	}
	have := map[bool]bool{}
	for _, sub := range n.Subnets {
		have[sub.Subnet.Addr().Is6()] = true
	}
	taken = append(taken, routes...)
	for _, v6 := range []bool{false, true} {
		if have[v6] || (v6 && !n.IPv6) {
			continue
		}
		p, ok := ipam.PickSubnet(pools, v6, taken)
		if !ok {
			return v1.Exhaustedf("%s: no free %s subnet left in knitd's address pools; give one with --subnet, remove unused networks (knit network prune), or start knitd with another --address-pool", owner, map[bool]string{false: "IPv4", true: "IPv6"}[v6])
		}
		n.Subnets = append(n.Subnets, v1.Subnet{Subnet: p, Gateway: p.Addr().Next()})
	}
	return nil
}

func (s *Server) deleteNetwork(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	if err := s.removeNetwork(ctx, name); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeNetwork marks the network for teardown and waits until the network
// reconciler has removed it from the kernel and the store.
func (s *Server) removeNetwork(ctx context.Context, name string) error {
	if predefined(name) {
		return v1.Conflictf("network %q is predefined and cannot be removed", name)
	}
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		n, err := state.GetNetwork(tx, name)
		if err != nil {
			return err
		}
		if n == nil {
			return v1.NotFoundf("network %q not found; see knit network ls", name)
		}
		users, err := attached(tx, name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return v1.Conflictf("network %q has containers attached (%s); remove them (knit rm -f) or disconnect them (knit network disconnect %s CONTAINER) first", name, strings.Join(users, ", "), name)
		}
		n.Deleting = true
		return state.PutNetwork(tx, n)
	})
	if err != nil {
		return err
	}
	return s.waitKey(ctx, state.NetworkKey(name), rev, func(v []byte) (bool, error) { return v == nil, nil })
}

// attached lists the containers, not yet exited, with an endpoint on network.
func attached(tx store.Tx, network string) ([]string, error) {
	cs, err := state.ListContainers(tx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range cs {
		if c.Status.State == v1.StateExited && !c.Deleting {
			continue
		}
		for _, ep := range c.Endpoints {
			if ep.Network == network {
				names = append(names, c.Name)
				break
			}
		}
	}
	return names, nil
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	nets, err := read(ctx, s.st, state.ListNetworks)
	if err != nil {
		writeErr(w, err)
		return
	}
	removed := []string{}
	for _, n := range nets {
		if predefined(n.Name) || n.Deleting {
			continue
		}
		err := s.removeNetwork(ctx, n.Name)
		switch v1.CodeOf(err) {
		case v1.CodeConflict, v1.CodeNotFound:
			continue // in use, or removed meanwhile
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		removed = append(removed, n.Name)
	}
	writeJSON(w, http.StatusOK, removed)
}
