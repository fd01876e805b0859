package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	v1 "github.com/knit-net/knit/api/v1"
)

// ListNetworkPolicies lists the policies of a namespace, or of all
// namespaces when namespace is "".
func (c *Client) ListNetworkPolicies(ctx context.Context, namespace string) ([]v1.NetworkPolicy, error) {
	path := "/v1/networkpolicies"
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var out []v1.NetworkPolicy
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// GetNetworkPolicy returns one policy; a missing one is a not-found
// *v1.Error.
func (c *Client) GetNetworkPolicy(ctx context.Context, namespace, name string) (v1.NetworkPolicy, error) {
	var out v1.NetworkPolicy
	err := c.Do(ctx, http.MethodGet, policyPath(namespace, name), nil, &out)
	return out, err
}

// DeleteNetworkPolicy deletes a policy; a missing one is a not-found
// *v1.Error.
func (c *Client) DeleteNetworkPolicy(ctx context.Context, namespace, name string) error {
	return c.Do(ctx, http.MethodDelete, policyPath(namespace, name), nil, nil)
}

func policyPath(namespace, name string) string {
	return "/v1/networkpolicies/" + Esc(namespace) + "/" + Esc(name)
}

// ListNamespaces lists every namespace, the implicit ones (used by a
// container, service or policy but never created) included.
func (c *Client) ListNamespaces(ctx context.Context) ([]v1.Namespace, error) {
	var out []v1.Namespace
	err := c.Do(ctx, http.MethodGet, "/v1/namespaces", nil, &out)
	return out, err
}

// CreateNamespace creates the namespace upd.Name with the labels upd.Set.
func (c *Client) CreateNamespace(ctx context.Context, upd v1.NamespaceUpdate) (v1.Namespace, error) {
	var out v1.Namespace
	err := c.Do(ctx, http.MethodPost, "/v1/namespaces", &upd, &out)
	return out, err
}

// LabelNamespace changes a namespace's labels (upd.Set, upd.Remove,
// upd.Overwrite; upd.Name is not sent) and returns the namespace.
func (c *Client) LabelNamespace(ctx context.Context, name string, upd v1.NamespaceUpdate) (v1.Namespace, error) {
	upd.Name = ""
	var out v1.Namespace
	err := c.Do(ctx, http.MethodPost, "/v1/namespaces/"+Esc(name)+"/labels", &upd, &out)
	return out, err
}

// DeleteNamespace deletes a namespace; a missing one is a not-found
// *v1.Error.
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/namespaces/"+Esc(name), nil, nil)
}

// PolicyTrace asks whether a new connection q.From → q.To would be allowed.
func (c *Client) PolicyTrace(ctx context.Context, q v1.PolicyTrace) (v1.PolicyVerdict, error) {
	var out v1.PolicyVerdict
	err := c.Do(ctx, http.MethodPost, "/v1/policy/trace", &q, &out)
	return out, err
}

// PolicyDrops returns the drop counts per policy and at most limit recent
// drops (limit 0: knitd's default).
func (c *Client) PolicyDrops(ctx context.Context, limit int) (v1.PolicyDrops, error) {
	path := "/v1/policy/drops"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out v1.PolicyDrops
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
