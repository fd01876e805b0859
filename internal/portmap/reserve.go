// Package portmap keeps track of published host ports. Reservations live in
// the store, one key per protocol, port and host address, so publishing is
// atomic with the rest of a container's creation and two containers can
// never publish the same port; the host's own bound sockets are read from
// /proc/net so a port another process holds is refused with its name.
package portmap

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
)

// Ephemeral range for -p CONTAINERPORT without a host port (IANA's dynamic
// ports, as Docker used).
const (
	EphemeralLow  = 49153
	EphemeralHigh = 65535
)

// HostHolder names who holds a port on the host outside knit ("" if free).
type HostHolder func(proto string, ip netip.Addr, port uint16) string

// Store keys: ports/<proto>/<port>/<hostIP or *> holds the container's name.
func portPrefix(proto string, port uint16) string {
	return "ports/" + proto + "/" + strconv.Itoa(int(port)) + "/"
}

func bindingKey(proto string, ip netip.Addr, port uint16) string {
	if !ip.IsValid() {
		return portPrefix(proto, port) + "*"
	}
	return portPrefix(proto, port) + ip.String()
}

// holder returns who already publishes (proto, ip, port), or "".
func holder(tx store.Tx, proto string, ip netip.Addr, port uint16, host HostHolder) (string, error) {
	kvs, err := tx.List(portPrefix(proto, port))
	if err != nil {
		return "", err
	}
	for _, kv := range kvs {
		other := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		if other == "*" || !ip.IsValid() || other == ip.String() {
			return describeOwner(string(kv.Value)), nil
		}
	}
	if host != nil {
		return host(proto, ip, port), nil
	}
	return "", nil
}

// Publish reserves the host ports of every mapping for owner, picking free
// host ports where HostPort is 0, and returns the mappings as resolved.
func Publish(tx store.Tx, owner string, ports []v1.PortMapping, host HostHolder) ([]v1.PortMapping, error) {
	out := make([]v1.PortMapping, 0, len(ports))
	for _, p := range ports {
		if p.HostPort == 0 {
			start, err := pickFree(tx, p, host)
			if err != nil {
				return nil, fmt.Errorf("container %q: %w", owner, err)
			}
			p.HostPort = start
			if p.Count() > 1 {
				p.HostPortEnd = start + uint16(p.Count()-1)
			}
		}
		lo, hi := p.HostRange()
		for port := lo; ; port++ {
			who, err := holder(tx, p.Protocol, p.HostIP, port, host)
			if err != nil {
				return nil, err
			}
			if who != "" {
				return nil, v1.Conflictf("container %q: -p %s: host port %d/%s%s is already in use by %s; pick another host port or leave it out to get a free one", owner, p, port, p.Protocol, onAddr(p.HostIP), who)
			}
			if err := tx.Put(bindingKey(p.Protocol, p.HostIP, port), []byte(owner)); err != nil {
				return nil, err
			}
			if port == hi {
				break
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func onAddr(ip netip.Addr) string {
	if ip.IsValid() {
		return " on " + ip.String()
	}
	return ""
}

// pickFree finds the first run of free host ports in the ephemeral range.
func pickFree(tx store.Tx, p v1.PortMapping, host HostHolder) (uint16, error) {
	n := p.Count()
next:
	for start := EphemeralLow; start+n-1 <= EphemeralHigh; start++ {
		for i := range n {
			who, err := holder(tx, p.Protocol, p.HostIP, uint16(start+i), host)
			if err != nil {
				return 0, err
			}
			if who != "" {
				start += i
				continue next
			}
		}
		return uint16(start), nil
	}
	return 0, v1.Exhaustedf("-p %s: no %d free host ports left in %d-%d; give a host port", p, n, EphemeralLow, EphemeralHigh)
}

// Release frees every host port the mappings reserved for owner; ports that
// are free or held by someone else are left alone.
func Release(tx store.Tx, owner string, ports []v1.PortMapping) error {
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		lo, hi := p.HostRange()
		for port := lo; ; port++ {
			key := bindingKey(p.Protocol, p.HostIP, port)
			v, ok, err := tx.Get(key)
			if err != nil {
				return err
			}
			if ok && string(v) == owner {
				if err := tx.Delete(key); err != nil {
					return err
				}
			}
			if port == hi {
				break
			}
		}
	}
	return nil
}

// ServiceOwner is how a service's node ports are recorded.
func ServiceOwner(namespace, name string) string { return "service " + namespace + "/" + name }

func describeOwner(owner string) string {
	if strings.HasPrefix(owner, "service ") {
		return owner
	}
	return fmt.Sprintf("container %q", owner)
}

// Holder returns who holds port/proto on every host address ("" if free):
// knit's own reservations first, then the host's sockets.
func Holder(tx store.Tx, proto string, port uint16, host HostHolder) (string, error) {
	return holder(tx, proto, netip.Addr{}, port, host)
}

// Claim records owner as the holder of port/proto on every host address
// (the caller has checked Holder); claiming one's own port writes nothing.
func Claim(tx store.Tx, owner, proto string, port uint16) error {
	key := bindingKey(proto, netip.Addr{}, port)
	if v, ok, err := tx.Get(key); err != nil || ok && string(v) == owner {
		return err
	}
	return tx.Put(key, []byte(owner))
}

// Unclaim frees port/proto if owner holds it.
func Unclaim(tx store.Tx, owner, proto string, port uint16) error {
	key := bindingKey(proto, netip.Addr{}, port)
	v, ok, err := tx.Get(key)
	if err != nil || !ok || string(v) != owner {
		return err
	}
	return tx.Delete(key)
}

// PickFree returns a free port/proto in [lo, hi], starting the search at
// from (so successive picks spread over the range).
func PickFree(tx store.Tx, proto string, lo, hi, from uint16, host HostHolder) (uint16, bool, error) {
	if from < lo || from > hi {
		from = lo
	}
	p := from
	for range int(hi-lo) + 1 {
		who, err := holder(tx, proto, netip.Addr{}, p, host)
		if err != nil {
			return 0, false, err
		}
		if who == "" {
			return p, true, nil
		}
		if p == hi {
			p = lo
		} else {
			p++
		}
	}
	return 0, false, nil
}
