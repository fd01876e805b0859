package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

const containerPrefix = "container:"

func notFoundContainer(name string) error {
	return v1.NotFoundf("container %q not found; see knit ps -a", name)
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	cs, err := read(r.Context(), s.st, state.ListContainers)
	reply(w, http.StatusOK, cs, err)
}

func (s *Server) getContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.container(r.Context(), r.PathValue("name"))
	reply(w, http.StatusOK, c, err)
}

func (s *Server) container(ctx context.Context, name string) (*v1.Container, error) {
	c, err := read(ctx, s.st, func(tx store.Tx) (*v1.Container, error) { return state.GetContainer(tx, name) })
	if err == nil && c == nil {
		err = notFoundContainer(name)
	}
	return c, err
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) {
	var req v1.ContainerCreate
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	c, err := s.CreateContainer(ctx, req)
	reply(w, http.StatusCreated, c, err)
}

// CreateContainer stores the container with its addresses allocated, then
// waits until the runtime reconciler has started it. If the start fails the
// container is removed again and the error returned: nothing is left behind.
func (s *Server) CreateContainer(ctx context.Context, req v1.ContainerCreate) (*v1.Container, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	id := newID()
	c := &v1.Container{
		ID: id, Name: req.Name, Hostname: req.Hostname, Command: req.Command,
		Namespace: req.Namespace, Labels: req.Labels, ContainerPorts: req.ContainerPorts, Readiness: req.Readiness,
		DNS: req.DNS, ExtraHosts: req.ExtraHosts,
		Created: time.Now().UTC(), Generation: 1, Status: v1.ContainerStatus{State: v1.StateCreated},
	}
	if c.Name == "" {
		c.Name = "knit-" + id[:8]
	}
	if c.Hostname == "" {
		c.Hostname = id[:12]
	}
	nets := req.Networks
	if len(nets) == 0 {
		nets = []string{v1.DefaultBridgeNetwork}
	}
	var sockets portmap.HostHolder
	if len(req.Ports) > 0 && s.opts.Host != nil {
		for _, p := range req.Ports {
			if p.HostIP.IsValid() && !s.opts.Host.HasAddress(p.HostIP) {
				return nil, v1.Invalidf("container %q: -p %s: %s is not an address of this host; use one of its addresses, or none to publish on all", c.Name, p, p.HostIP)
			}
		}
		sockets = s.opts.Host.Sockets()
	}
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		c.Endpoints, c.NetworkMode = nil, ""
		if old, err := state.GetContainer(tx, c.Name); err != nil {
			return err
		} else if old != nil {
			return v1.Conflictf("container %q already exists; pick another --name, or remove it first with knit rm %s", c.Name, c.Name)
		}
		if err := s.placeContainer(tx, c, nets, req.IPs, req.Aliases); err != nil {
			return err
		}
		if len(req.Aliases) > 0 && c.NetworkMode != v1.DriverBridge {
			return v1.Invalidf("container %q: --alias needs a bridge network; with --network %s the container has no network of its own", c.Name, c.NetworkMode)
		}
		if err := publishPorts(tx, c, req.Ports, sockets); err != nil {
			return err
		}
		return state.PutContainer(tx, c)
	})
	if err != nil {
		return nil, err
	}
	return s.waitRunning(ctx, c.Name, rev)
}

// waitRunning waits until the reconciler has brought the container up (or
// found it exited already). If the start failed the container is removed
// again and the error returned: nothing is left behind.
func (s *Server) waitRunning(ctx context.Context, name string, rev int64) (*v1.Container, error) {
	var out *v1.Container
	err := s.waitKey(ctx, state.ContainerKey(name), rev, func(v []byte) (bool, error) {
		if v == nil {
			return true, v1.Conflictf("container %q was removed while starting", name)
		}
		cur, err := state.DecodeContainer(v)
		if err != nil {
			return true, err
		}
		if cur.Status.ObservedGeneration < cur.Generation || cur.Status.State == v1.StateCreated {
			return false, nil
		}
		out = cur
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if out.Status.Error != "" {
		_ = s.removeContainer(ctx, name, true)
		return nil, v1.Invalidf("container %q: %s", name, out.Status.Error)
	}
	return out, nil
}

// placeContainer resolves the requested networks and fills c's network mode
// and endpoints, allocating their addresses.
func (s *Server) placeContainer(tx store.Tx, c *v1.Container, nets []string, ips []netip.Addr, aliases []string) error {
	if other, ok := strings.CutPrefix(nets[0], containerPrefix); ok {
		if len(ips) > 0 {
			return v1.Invalidf("container %q: --ip cannot be used with --network %s; the address belongs to %q", c.Name, nets[0], other)
		}
		o, err := state.GetContainer(tx, other)
		if err != nil {
			return err
		}
		if o == nil {
			return notFoundContainer(other)
		}
		if o.Status.State != v1.StateRunning || o.Deleting {
			return v1.Conflictf("container %q: cannot join the network namespace of %q: it is not running", c.Name, other)
		}
		if strings.HasPrefix(o.NetworkMode, containerPrefix) {
			c.NetworkMode = o.NetworkMode // join the namespace's owner
		} else {
			c.NetworkMode = containerPrefix + o.Name
		}
		return nil
	}
	var bridges []*v1.Network
	for _, name := range nets {
		n, err := state.GetNetwork(tx, name)
		if err != nil {
			return err
		}
		if n == nil || n.Deleting {
			return v1.NotFoundf("container %q: network %q not found; create it with knit network create %s, or see knit network ls", c.Name, name, name)
		}
		if n.Driver != v1.DriverBridge {
			if len(nets) > 1 {
				return v1.Invalidf("container %q: network %q (driver %s) cannot be combined with other networks", c.Name, name, n.Driver)
			}
			if len(ips) > 0 {
				return v1.Invalidf("container %q: --ip cannot be used on network %q (driver %s)", c.Name, name, n.Driver)
			}
			c.NetworkMode = n.Driver
			return nil
		}
		bridges = append(bridges, n)
	}
	c.NetworkMode = v1.DriverBridge
	statics, err := assignStatics(c.Name, bridges, ips)
	if err != nil {
		return err
	}
	for i, n := range bridges {
		ep, err := newEndpoint(tx, c, n, i, statics[n.Name], aliases)
		if err != nil {
			return err
		}
		c.Endpoints = append(c.Endpoints, ep)
	}
	return nil
}

// assignStatics gives each static address to the network whose subnet holds it.
func assignStatics(owner string, nets []*v1.Network, ips []netip.Addr) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	for _, ip := range ips {
		var home *v1.Network
		for _, n := range nets {
			for _, sub := range n.Subnets {
				if sub.Subnet.Contains(ip) && home == nil {
					home = n
				}
			}
		}
		if home == nil {
			var where []string
			for _, n := range nets {
				for _, sub := range n.Subnets {
					where = append(where, fmt.Sprintf("%s %s", n.Name, sub.Subnet))
				}
			}
			return nil, v1.Invalidf("container %q: --ip %s is outside the subnets of its networks (%s); pick an address inside one of them", owner, ip, strings.Join(where, ", "))
		}
		for _, prev := range out[home.Name] {
			if prev.Is4() == ip.Is4() {
				return nil, v1.Invalidf("container %q: two --ip addresses (%s, %s) for network %q; give one per family", owner, prev, ip, home.Name)
			}
		}
		out[home.Name] = append(out[home.Name], ip)
	}
	return out, nil
}

// publishPorts reserves the container's published ports. Ports need a
// bridge endpoint on a network with a way in: host-mode containers already
// use the host's ports, internal networks have no way in.
func publishPorts(tx store.Tx, c *v1.Container, ports []v1.PortMapping, sockets portmap.HostHolder) error {
	c.Ports = nil
	if len(ports) == 0 {
		return nil
	}
	if c.NetworkMode != v1.DriverBridge {
		return v1.Invalidf("container %q: -p needs a bridge network; with --network %s the container's ports are not reachable from the host through knit", c.Name, c.NetworkMode)
	}
	reachable := false
	for _, ep := range c.Endpoints {
		n, err := state.GetNetwork(tx, ep.Network)
		if err != nil {
			return err
		}
		reachable = reachable || (n != nil && !n.Internal)
	}
	if !reachable {
		return v1.Invalidf("container %q: -p needs a network that is not --internal; internal networks have no way in from the host", c.Name)
	}
	var err error
	c.Ports, err = portmap.Publish(tx, c.Name, ports, sockets)
	return err
}
