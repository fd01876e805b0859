package cni

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in, body string
		status         int
	}{
		{"content-length", "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n[1]\nextra", "[1]\n", 200},
		{"until EOF", "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{\"code\":\"notfound\"}", `{"code":"notfound"}`, 404},
		{"no body", "HTTP/1.0 204 No Content\r\n\r\n", "", 204},
	} {
		status, body, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil || status != tc.status || string(body) != tc.body {
			t.Errorf("%s: %d %q %v, want %d %q", tc.name, status, body, err, tc.status, tc.body)
		}
	}
	for _, bad := range []string{"", "SSH-2.0\r\n", "HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nshort"} {
		if _, _, err := readResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A big answer from a real net/http server arrives whole (HTTP/1.0: no
// chunking, Content-Length or close-delimited).
func TestClientBigAnswer(t *testing.T) {
	f := newFakeKnitd(t)
	names := make([]string, 5000)
	for i := range names {
		names[i] = strings.Repeat("x", 60)
	}
	f.on("/v1/cni/gc", http.StatusOK, names)
	var got []string
	c := &client{socket: f.socket}
	if err := c.do("POST", "/v1/cni/gc", map[string]any{"network": "n"}, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(names) {
		t.Errorf("%d names, want %d", len(got), len(names))
	}
}
