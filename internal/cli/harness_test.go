package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is what the fake knitd saw.
type request struct {
	Method, URI string
	Body        []byte
}

// fakeKnitd answers API calls on a unix socket from a table of
// "METHOD /uri" → (status, JSON body) and records every request.
type fakeKnitd struct {
	socket  string
	mu      sync.Mutex
	seen    []request
	answers map[string]answer
}

type answer struct {
	status int
	body   any
}

func newFakeKnitd(t *testing.T, answers map[string]answer) *fakeKnitd {
	t.Helper()
	f := &fakeKnitd{socket: filepath.Join(t.TempDir(), "knit.sock"), answers: answers}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.RequestURI()
		f.mu.Lock()
		f.seen = append(f.seen, request{r.Method, r.URL.RequestURI(), body})
		ans, ok := f.answers[key]
		f.mu.Unlock()
		if !ok {
			ans = answer{404, map[string]string{"code": "notfound", "message": "fake knitd: no answer for " + key}}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ans.status)
		_ = json.NewEncoder(w).Encode(ans.body)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func (f *fakeKnitd) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.seen...)
}

func notFound(msg string) answer {
	return answer{404, map[string]string{"code": "notfound", "message": msg}}
}

// testNow is the clock of every test: AGE columns count from it.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// result of one knit command line.
type result struct {
	code           int
	stdout, stderr string
}

// knit runs a command line against socket (may be "" for commands that
// must fail before calling knitd) with stdin.
func knit(t *testing.T, socket, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, now: func() time.Time { return testNow }}
	if socket == "" {
		socket = filepath.Join(t.TempDir(), "absent.sock")
	}
	code := a.execute(context.Background(), append([]string{"--socket", socket}, args...))
	return result{code, out.String(), errb.String()}
}
