package apiserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/kname"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// MaxInterfaces bounds the interfaces of one container (see kname.HostVeth).
const MaxInterfaces = 100

// newEndpoint allocates c's addresses on n (statics first) for interface
// eth<idx>.
func newEndpoint(tx store.Tx, c *v1.Container, n *v1.Network, idx int, statics []netip.Addr, aliases []string) (v1.Endpoint, error) {
	ep := v1.Endpoint{
		Network: n.Name, NetworkID: n.ID, Interface: kname.ContainerIf(idx),
		HostVeth: kname.HostVeth(c.ID, idx), Aliases: aliases,
	}
	for _, sub := range n.Subnets {
		var a netip.Addr
		var err error
		if i := slices.IndexFunc(statics, func(ip netip.Addr) bool { return sub.Subnet.Contains(ip) }); i >= 0 {
			a, err = statics[i], ipam.Reserve(tx, n, sub, statics[i], c.Name)
		} else {
			a, err = ipam.Allocate(tx, n, sub, c.Name)
		}
		if err != nil {
			return ep, err
		}
		ep.Addresses = append(ep.Addresses, netip.PrefixFrom(a, sub.Subnet.Bits()))
	}
	ep.MAC = macFor(ep.Addresses)
	return ep, nil
}

// macFor derives 02:42:a:b:c:d from the IPv4 address, as Docker does, so a
// reused address keeps its MAC and neighbours' caches stay right; a random
// locally administered MAC otherwise.
func macFor(addrs []netip.Prefix) string {
	for _, p := range addrs {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}.String()
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	b[0] = b[0]&0xfe | 0x02
	return net.HardwareAddr(b[:]).String()
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	s.changeEndpoint(w, r, true)
}

func (s *Server) disconnect(w http.ResponseWriter, r *http.Request) {
	s.changeEndpoint(w, r, false)
}

func (s *Server) changeEndpoint(w http.ResponseWriter, r *http.Request, add bool) {
	var req v1.Connect
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	c, err := s.ChangeEndpoint(ctx, r.PathValue("name"), req, add)
	reply(w, http.StatusOK, c, err)
}

// ChangeEndpoint connects (add) or disconnects a container and waits until
// the kernel matches.
func (s *Server) ChangeEndpoint(ctx context.Context, network string, req v1.Connect, add bool) (*v1.Container, error) {
	var gen int64
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		c, err := state.GetContainer(tx, req.Container)
		if err != nil {
			return err
		}
		if c == nil {
			return notFoundContainer(req.Container)
		}
		n, err := state.GetNetwork(tx, network)
		if err != nil {
			return err
		}
		if n == nil || n.Deleting {
			return v1.NotFoundf("network %q not found; see knit network ls", network)
		}
		if add {
			err = connectLocked(tx, c, n, req)
		} else {
			err = disconnectLocked(tx, c, n, req.Force)
		}
		if err != nil {
			return err
		}
		c.Generation++
		gen = c.Generation
		return state.PutContainer(tx, c)
	})
	if err != nil {
		return nil, err
	}
	return s.waitObserved(ctx, req.Container, rev, gen)
}

func connectLocked(tx store.Tx, c *v1.Container, n *v1.Network, req v1.Connect) error {
	if c.Status.State != v1.StateRunning || c.Deleting {
		return v1.Conflictf("container %q is not running; only running containers can be connected", c.Name)
	}
	if c.NetworkMode != v1.DriverBridge || n.Driver != v1.DriverBridge {
		return v1.Conflictf("container %q (network mode %s) cannot be connected to network %q (driver %s); only bridge containers join bridge networks", c.Name, c.NetworkMode, n.Name, n.Driver)
	}
	used := map[string]bool{}
	for _, ep := range c.Endpoints {
		if ep.Network == n.Name {
			return v1.Conflictf("container %q is already connected to network %q", c.Name, n.Name)
		}
		used[ep.Interface] = true
	}
	idx := 0
	for used[kname.ContainerIf(idx)] {
		idx++
	}
	if idx >= MaxInterfaces {
		return v1.Conflictf("container %q already has %d interfaces; disconnect one first", c.Name, MaxInterfaces)
	}
	if err := v1.ValidateAliases(fmt.Sprintf("container %q", c.Name), req.Aliases); err != nil {
		return err
	}
	statics, err := assignStatics(c.Name, []*v1.Network{n}, req.IPs)
	if err != nil {
		return err
	}
	ep, err := newEndpoint(tx, c, n, idx, statics[n.Name], req.Aliases)
	if err != nil {
		return err
	}
	c.Endpoints = append(c.Endpoints, ep)
	return nil
}

func disconnectLocked(tx store.Tx, c *v1.Container, n *v1.Network, force bool) error {
	i := slices.IndexFunc(c.Endpoints, func(ep v1.Endpoint) bool { return ep.Network == n.Name })
	if i < 0 {
		if force {
			return nil
		}
		return v1.NotFoundf("container %q is not connected to network %q", c.Name, n.Name)
	}
	if err := ipam.ReleaseEndpoint(tx, &c.Endpoints[i]); err != nil {
		return fmt.Errorf("network %q: release addresses of %q: %w", n.Name, c.Name, err)
	}
	c.Endpoints = slices.Delete(c.Endpoints, i, i+1)
	return nil
}

// waitObserved waits until the container's status has seen generation gen.
func (s *Server) waitObserved(ctx context.Context, name string, rev, gen int64) (*v1.Container, error) {
	var out *v1.Container
	err := s.waitKey(ctx, state.ContainerKey(name), rev, func(v []byte) (bool, error) {
		if v == nil {
			return true, notFoundContainer(name)
		}
		c, err := state.DecodeContainer(v)
		if err != nil {
			return true, err
		}
		if c.Status.ObservedGeneration < gen {
			return false, nil
		}
		out = c
		if c.Status.Error != "" {
			return true, v1.Errorf(v1.CodeInternal, "container %q: %s", name, c.Status.Error)
		}
		return true, nil
	})
	return out, err
}
