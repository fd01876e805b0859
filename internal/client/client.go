// Package client talks to knitd's API over its unix socket. Every failed call
// returns the daemon's *v1.Error (code and message) so callers can show the
// message as is and branch on the code.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"

	v1 "github.com/knit-net/knit/api/v1"
)

// DefaultSocket is where knitd listens unless told otherwise.
const DefaultSocket = "/run/knit/knit.sock"

// SocketFromEnv returns $KNIT_SOCKET or the default.
func SocketFromEnv() string {
	if s := os.Getenv("KNIT_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client is an API client.
type Client struct {
	socket string
	hc     *http.Client
}

// New makes a client for the socket path.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (when out is not nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("knitd answered %s %s with something that is not JSON: %w", method, path, err)
	}
	return nil
}

// Stream sends a request and returns the body of a successful answer.
func (c *Client) Stream(ctx context.Context, method, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, method, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://knitd"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.dialError(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		apiErr := &v1.Error{}
		if json.NewDecoder(resp.Body).Decode(apiErr) != nil || apiErr.Message == "" {
			apiErr = &v1.Error{Code: v1.CodeInternal, Message: fmt.Sprintf("knitd answered %s %s with %s", method, path, resp.Status)}
		}
		return nil, apiErr
	}
	return resp, nil
}

func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach knitd at %s: is it running? start it with knitd, or point --socket / KNIT_SOCKET at its socket", c.socket)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot reach knitd at %s: permission denied; the socket is root-only, run as root", c.socket)
	}
	return fmt.Errorf("talk to knitd at %s: %w", c.socket, err)
}

// Esc escapes one path element.
func Esc(s string) string { return url.PathEscape(s) }
