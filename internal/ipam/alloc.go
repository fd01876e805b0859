package ipam

import (
	"fmt"
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
)

// Store keys: ipam/<networkID>/<address> holds the owner's name (a container);
// ipamcursor/<networkID>/<4|6> holds the last address handed out, so
// allocation walks forward like host-local and a released address is not
// reused at once.
func addrKey(netID string, a netip.Addr) string { return "ipam/" + netID + "/" + a.String() }
func netPrefix(netID string) string             { return "ipam/" + netID + "/" }
func cursorKey(netID string, v6 bool) string {
	if v6 {
		return "ipamcursor/" + netID + "/6"
	}
	return "ipamcursor/" + netID + "/4"
}

// allocRange is where dynamic addresses come from: the IP range if set,
// otherwise the whole subnet.
func allocRange(s v1.Subnet) netip.Prefix {
	if s.IPRange.IsValid() {
		return s.IPRange
	}
	return s.Subnet
}

// usable reports whether a may be given to a container in s.
func usable(s v1.Subnet, a netip.Addr) bool {
	if !s.Subnet.Contains(a) || a == s.Subnet.Addr() || a == s.Gateway {
		return false
	}
	return !a.Is4() || a != v1.LastAddr(s.Subnet)
}

// size is the number of addresses in p, capped at maxCandidates.
func size(p netip.Prefix) int {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 16 {
		return maxCandidates
	}
	return 1 << host
}

// Allocate hands out the next free address of subnet s of network n to owner.
func Allocate(tx store.Tx, n *v1.Network, s v1.Subnet, owner string) (netip.Addr, error) {
	r := allocRange(s)
	first, last := r.Addr(), v1.LastAddr(r)
	start := first
	if v, ok, err := tx.Get(cursorKey(n.ID, !first.Is4())); err != nil {
		return netip.Addr{}, fmt.Errorf("network %q: read allocation cursor: %w", n.Name, err)
	} else if ok {
		if c, err := netip.ParseAddr(string(v)); err == nil && r.Contains(c) && c != last {
			start = c.Next()
		}
	}
	a := start
	for range size(r) {
		if usable(s, a) {
			_, taken, err := tx.Get(addrKey(n.ID, a))
			if err != nil {
				return netip.Addr{}, fmt.Errorf("network %q: read address %s: %w", n.Name, a, err)
			}
			if !taken {
				return a, claim(tx, n, a, owner)
			}
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
	}
	return netip.Addr{}, v1.Exhaustedf("network %q: no free address left in %s; remove containers from it, or create a network with a larger --subnet or --ip-range", n.Name, r)
}

// Reserve gives the static address a of subnet s to owner.
func Reserve(tx store.Tx, n *v1.Network, s v1.Subnet, a netip.Addr, owner string) error {
	if !s.Subnet.Contains(a) {
		return v1.Invalidf("network %q: --ip %s is outside its subnet %s; pick an address inside it", n.Name, a, s.Subnet)
	}
	if !usable(s, a) {
		return v1.Invalidf("network %q: --ip %s is the network, gateway or broadcast address of %s; pick another", n.Name, a, s.Subnet)
	}
	v, taken, err := tx.Get(addrKey(n.ID, a))
	if err != nil {
		return fmt.Errorf("network %q: read address %s: %w", n.Name, a, err)
	}
	if taken {
		return v1.Conflictf("network %q: address %s is already used by container %q; pick another --ip or leave it out", n.Name, a, string(v))
	}
	return tx.Put(addrKey(n.ID, a), []byte(owner))
}

func claim(tx store.Tx, n *v1.Network, a netip.Addr, owner string) error {
	if err := tx.Put(addrKey(n.ID, a), []byte(owner)); err != nil {
		return fmt.Errorf("network %q: claim %s: %w", n.Name, a, err)
	}
	if err := tx.Put(cursorKey(n.ID, !a.Is4()), []byte(a.String())); err != nil {
		return fmt.Errorf("network %q: move allocation cursor: %w", n.Name, err)
	}
	return nil
}

// Release frees a; freeing a free address is not an error.
func Release(tx store.Tx, netID string, a netip.Addr) error {
	return tx.Delete(addrKey(netID, a))
}

// ReleaseEndpoint frees the endpoint's addresses.
func ReleaseEndpoint(tx store.Tx, ep *v1.Endpoint) error {
	for _, p := range ep.Addresses {
		if err := Release(tx, ep.NetworkID, p.Addr()); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseNetwork forgets every address and cursor of a network.
func ReleaseNetwork(tx store.Tx, netID string) error {
	kvs, err := tx.List(netPrefix(netID))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := tx.Delete(kv.Key); err != nil {
			return err
		}
	}
	for _, v6 := range []bool{false, true} {
		if err := tx.Delete(cursorKey(netID, v6)); err != nil {
			return err
		}
	}
	return nil
}

// Owners lists the allocated addresses of a network and their owners.
func Owners(tx store.Tx, netID string) (map[netip.Addr]string, error) {
	kvs, err := tx.List(netPrefix(netID))
	if err != nil {
		return nil, err
	}
	m := make(map[netip.Addr]string, len(kvs))
	for _, kv := range kvs {
		if a, err := netip.ParseAddr(kv.Key[len(netPrefix(netID)):]); err == nil {
			m[a] = string(kv.Value)
		}
	}
	return m, nil
}

// Owner returns who holds address a of network netID.
func Owner(tx store.Tx, netID string, a netip.Addr) (string, bool, error) {
	v, ok, err := tx.Get(addrKey(netID, a))
	return string(v), ok, err
}

// Claim gives a of network netID to owner without any check (the caller
// has checked Owner and the range); claiming one's own address writes
// nothing.
func Claim(tx store.Tx, netID string, a netip.Addr, owner string) error {
	if v, ok, err := tx.Get(addrKey(netID, a)); err != nil || ok && string(v) == owner {
		return err
	}
	return tx.Put(addrKey(netID, a), []byte(owner))
}
