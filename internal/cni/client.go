package cni

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

// DefaultTimeout bounds one call to knitd. knitd itself waits up to a minute
// for the kernel to match; a little more leaves it room to answer why not.
const DefaultTimeout = 90 * time.Second

// client speaks just enough HTTP to call knitd over its unix socket: one
// HTTP/1.0 request per connection, so the answer is never chunked and ends
// when knitd closes the connection. net/http would double the plugin's
// start-up time, and the plugin is exec'd once per call.
type client struct {
	socket  string
	timeout time.Duration
}

// unreachableError says knitd could not be reached at all (no socket, or
// nobody listening): the caller maps it to "try again later" or "plugin not
// available".
type unreachableError struct {
	socket string
	err    error
}

func (e *unreachableError) Error() string {
	if errors.Is(e.err, os.ErrPermission) {
		return fmt.Sprintf("cannot reach knitd at %s: permission denied; the socket is root-only, so the runtime must run the plugin as root", e.socket)
	}
	return fmt.Sprintf("knitd is not running at %s; start it (knitd) or set \"socket\" in the conflist to where it listens", e.socket)
}

func (e *unreachableError) Unwrap() error { return e.err }

// do sends body (when not nil) as JSON and decodes a successful answer into
// out (when not nil). A failed call returns knitd's *v1.Error.
func (c *client) do(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		payload = b
	}
	conn, err := net.DialTimeout("unix", c.socket, 5*time.Second)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.ENOENT || errno == syscall.ECONNREFUSED || errno == syscall.EACCES) {
			return &unreachableError{socket: c.socket, err: err}
		}
		return fmt.Errorf("connect to knitd at %s: %w", c.socket, err)
	}
	defer conn.Close()
	timeout := c.timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))

	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: knitd\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(payload))
	}
	req.WriteString("\r\n")
	req.Write(payload)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return fmt.Errorf("send %s %s to knitd at %s: %w", method, path, c.socket, err)
	}
	status, answer, err := readResponse(bufio.NewReader(conn))
	if err != nil {
		return fmt.Errorf("read knitd's answer to %s %s: %w", method, path, err)
	}
	if status >= 300 {
		apiErr := &v1.Error{}
		if json.Unmarshal(answer, apiErr) != nil || apiErr.Message == "" {
			apiErr = &v1.Error{Code: codeForStatus(status), Message: fmt.Sprintf("knitd answered %s %s with status %d: %s", method, path, status, bytes.TrimSpace(answer))}
		}
		return apiErr
	}
	if out == nil || len(bytes.TrimSpace(answer)) == 0 {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("knitd answered %s %s with something that is not the expected JSON: %w", method, path, err)
	}
	return nil
}

// readResponse reads a status line, headers and the body (Content-Length
// bytes, or up to EOF when there is none).
func readResponse(r *bufio.Reader) (int, []byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("status line: %w", err)
	}
	proto, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || err != nil {
		return 0, nil, fmt.Errorf("not an HTTP status line: %q", line)
	}
	length := -1
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("headers: %w", err)
		}
		h = strings.TrimSpace(h)
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, "Content-Length") {
			if length, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		b, err := io.ReadAll(io.LimitReader(r, 16<<20))
		return status, b, err
	}
	b := make([]byte, length)
	_, err = io.ReadFull(r, b)
	return status, b, err
}

// codeForStatus guesses an API code for an answer without an Error body.
func codeForStatus(status int) string {
	switch status {
	case 400:
		return v1.CodeInvalid
	case 404:
		return v1.CodeNotFound
	case 409:
		return v1.CodeConflict
	case 503:
		return v1.CodeExhausted
	}
	return v1.CodeInternal
}
