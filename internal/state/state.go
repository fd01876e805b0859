// Package state is knit's store schema: the keys under which networks and
// containers live and typed accessors for them inside a store transaction.
//
//	networks/<name>    v1.Network
//	containers/<name>  v1.Container
//	services/<namespace>/<name>  v1.Service
//	networkpolicies/<namespace>/<name>  v1.NetworkPolicy
//	namespaces/<name>  v1.Namespace (only those created or labelled)
//	ipam/…, ipamcursor/…  (package ipam; ClusterIPs and load balancer
//	                        addresses under the pseudo networks "services"
//	                        and "loadbalancers")
//	ports/…               (package portmap; node ports too)
package state

import (
	"encoding/json"
	"fmt"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
)

// Key prefixes.
const (
	NetworksPrefix   = "networks/"
	ContainersPrefix = "containers/"
	ServicesPrefix   = "services/"
	PoliciesPrefix   = "networkpolicies/"
	NamespacesPrefix = "namespaces/"
)

// PolicyKey names one NetworkPolicy; NamespaceKey one namespace.
func PolicyKey(namespace, name string) string { return PoliciesPrefix + namespace + "/" + name }
func NamespaceKey(name string) string         { return NamespacesPrefix + name }

// ServiceKey names one service.
func ServiceKey(namespace, name string) string { return ServicesPrefix + namespace + "/" + name }

// NetworkKey and ContainerKey name one object.
func NetworkKey(name string) string   { return NetworksPrefix + name }
func ContainerKey(name string) string { return ContainersPrefix + name }

func get[T any](tx store.Tx, key string) (*T, error) {
	b, ok, err := tx.Get(key)
	if err != nil || !ok {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, nil
}

func list[T any](tx store.Tx, prefix string) ([]T, error) {
	kvs, err := tx.List(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func put(tx store.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return tx.Put(key, b)
}

// GetNetwork returns nil, nil when the network does not exist.
func GetNetwork(tx store.Tx, name string) (*v1.Network, error) {
	return get[v1.Network](tx, NetworkKey(name))
}

// ListNetworks returns every network in name order.
func ListNetworks(tx store.Tx) ([]v1.Network, error) { return list[v1.Network](tx, NetworksPrefix) }

// PutNetwork writes n.
func PutNetwork(tx store.Tx, n *v1.Network) error { return put(tx, NetworkKey(n.Name), n) }

// GetContainer returns nil, nil when the container does not exist.
func GetContainer(tx store.Tx, name string) (*v1.Container, error) {
	return get[v1.Container](tx, ContainerKey(name))
}

// ListContainers returns every container in name order.
func ListContainers(tx store.Tx) ([]v1.Container, error) {
	return list[v1.Container](tx, ContainersPrefix)
}

// PutContainer writes c.
func PutContainer(tx store.Tx, c *v1.Container) error { return put(tx, ContainerKey(c.Name), c) }

// DecodeContainer and DecodeNetwork read a watched value.
func DecodeContainer(b []byte) (*v1.Container, error) {
	c := new(v1.Container)
	return c, json.Unmarshal(b, c)
}

// DecodeNetwork reads a watched network value.
func DecodeNetwork(b []byte) (*v1.Network, error) {
	n := new(v1.Network)
	return n, json.Unmarshal(b, n)
}

// GetService returns nil, nil when the service does not exist.
func GetService(tx store.Tx, namespace, name string) (*v1.Service, error) {
	return get[v1.Service](tx, ServiceKey(namespace, name))
}

// ListServices returns the services of a namespace ("" for all), ordered by
// namespace and name.
func ListServices(tx store.Tx, namespace string) ([]v1.Service, error) {
	return list[v1.Service](tx, inNamespace(ServicesPrefix, namespace))
}

// inNamespace narrows a prefix of namespaced objects to one namespace
// ("" for all).
func inNamespace(prefix, namespace string) string {
	if namespace == "" {
		return prefix
	}
	return prefix + namespace + "/"
}

// PutService writes svc.
func PutService(tx store.Tx, svc *v1.Service) error {
	return put(tx, ServiceKey(svc.Metadata.Namespace, svc.Metadata.Name), svc)
}

// GetPolicy returns nil, nil when the policy does not exist.
func GetPolicy(tx store.Tx, namespace, name string) (*v1.NetworkPolicy, error) {
	return get[v1.NetworkPolicy](tx, PolicyKey(namespace, name))
}

// ListPolicies returns the policies of a namespace ("" for all).
func ListPolicies(tx store.Tx, namespace string) ([]v1.NetworkPolicy, error) {
	return list[v1.NetworkPolicy](tx, inNamespace(PoliciesPrefix, namespace))
}

// PutPolicy writes p.
func PutPolicy(tx store.Tx, p *v1.NetworkPolicy) error {
	return put(tx, PolicyKey(p.Metadata.Namespace, p.Metadata.Name), p)
}

// GetNamespace returns nil, nil for a namespace without a record.
func GetNamespace(tx store.Tx, name string) (*v1.Namespace, error) {
	return get[v1.Namespace](tx, NamespaceKey(name))
}

// ListNamespaces returns the namespaces with a record.
func ListNamespaces(tx store.Tx) ([]v1.Namespace, error) {
	return list[v1.Namespace](tx, NamespacesPrefix)
}

// PutNamespace writes n.
func PutNamespace(tx store.Tx, n *v1.Namespace) error { return put(tx, NamespaceKey(n.Name), n) }
