package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/knit-net/knit/api/v1"
)

// Apply sends manifests' objects in one request; knitd validates them all
// and writes all or none.
func (c *Client) Apply(ctx context.Context, req v1.ApplyRequest) (v1.ApplyResult, error) {
	var res v1.ApplyResult
	err := c.Do(ctx, http.MethodPost, "/v1/apply", &req, &res)
	return res, err
}

// ListServices lists the services of a namespace, or of all namespaces
// when namespace is "".
func (c *Client) ListServices(ctx context.Context, namespace string) ([]v1.Service, error) {
	path := "/v1/services"
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var out []v1.Service
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// GetService returns a service and the endpoints its selector picks.
func (c *Client) GetService(ctx context.Context, namespace, name string) (v1.ServiceDetail, error) {
	var out v1.ServiceDetail
	err := c.Do(ctx, http.MethodGet, servicePath(namespace, name), nil, &out)
	return out, err
}

// DeleteService deletes a service; a missing one is a not-found *v1.Error.
func (c *Client) DeleteService(ctx context.Context, namespace, name string) error {
	return c.Do(ctx, http.MethodDelete, servicePath(namespace, name), nil, nil)
}

// LabelContainer changes a container's labels and returns the container.
func (c *Client) LabelContainer(ctx context.Context, name string, upd v1.LabelUpdate) (v1.Container, error) {
	var out v1.Container
	err := c.Do(ctx, http.MethodPost, "/v1/containers/"+Esc(name)+"/labels", &upd, &out)
	return out, err
}

func servicePath(namespace, name string) string {
	return "/v1/services/" + Esc(namespace) + "/" + Esc(name)
}
