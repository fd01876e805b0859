package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	v1 "github.com/knit-net/knit/api/v1"
)

// fakeKnitd serves the /v1/cni API on a unix socket from canned answers and
// records what it was sent.
type fakeKnitd struct {
	socket string
	mu     sync.Mutex
	bodies map[string]string // path -> last body
	answer map[string]func(w http.ResponseWriter)
}

func newFakeKnitd(t *testing.T) *fakeKnitd {
	t.Helper()
	f := &fakeKnitd{socket: filepath.Join(t.TempDir(), "knit.sock"), bodies: map[string]string{}, answer: map[string]func(http.ResponseWriter){}}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		f.mu.Lock()
		f.bodies[r.URL.Path] = b.String()
		answer := f.answer[r.URL.Path]
		f.mu.Unlock()
		if answer == nil {
			writeJSON(w, 404, v1.NotFoundf("no API route %s %s; see docs/api.md", r.Method, r.URL.Path))
			return
		}
		answer(w)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeKnitd) on(path string, status int, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[path] = func(w http.ResponseWriter) {
		if status == 204 {
			w.WriteHeader(204)
			return
		}
		writeJSON(w, status, v)
	}
}

func (f *fakeKnitd) body(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[path]
}

func (f *fakeKnitd) plugin() (*Plugin, *bytes.Buffer) {
	var out bytes.Buffer
	// No own-namespace check: selfNetNS is the only namespace a test without
	// root has.
	return &Plugin{Stdout: &out, newClient: func(conf *NetConf) *client { return &client{socket: conf.Socket} }}, &out
}

func (f *fakeKnitd) args(cniVersion, netns, extra string) *skel.CmdArgs {
	conf := fmt.Sprintf(`{"cniVersion":%q,"name":"knit","type":"knit","network":"front","socket":%q%s}`, cniVersion, f.socket, extra)
	return &skel.CmdArgs{ContainerID: "c1", Netns: netns, IfName: "eth0", Args: "K8S_POD_NAME=web", StdinData: []byte(conf)}
}

// A network namespace path every test process has, root or not.
const selfNetNS = "/proc/self/ns/net"

func TestAddPrintsResult(t *testing.T) {
	f := newFakeKnitd(t)
	r := sampleResult()
	r.Interface.Sandbox = selfNetNS
	f.on("/v1/cni/add", 200, r)
	p, out := f.plugin()
	if err := p.Add(f.args("1.0.0", selfNetNS, "")); err != nil {
		t.Fatal(err)
	}
	var req v1.CNIAttach
	if err := json.Unmarshal([]byte(f.body("/v1/cni/add")), &req); err != nil {
		t.Fatal(err)
	}
	if req.ContainerID != "c1" || req.NetNS != selfNetNS || req.IfName != "eth0" || req.Network != "front" || req.PodName != "web" {
		t.Errorf("knitd was sent %+v", req)
	}
	if !strings.Contains(out.String(), `"address": "10.1.0.5/24"`) || !strings.Contains(out.String(), `"cniVersion": "1.0.0"`) {
		t.Errorf("printed result:\n%s", out.String())
	}
}

func TestAddErrors(t *testing.T) {
	f := newFakeKnitd(t)
	p, _ := f.plugin()
	for _, tc := range []struct {
		name   string
		netns  string
		status int
		answer any
		code   uint
		hint   string
	}{
		{"netns missing", "/nonexistent/netns", 0, nil, types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"netns not a namespace", "/proc/self/status", 0, nil, types.ErrInvalidEnvironmentVariables, "not a network namespace"},
		{"own netns", "own", 0, nil, types.ErrInvalidNetNS, "runtime's own network namespace"},
		{"unknown network", selfNetNS, 404, v1.NotFoundf("knit network \"front\" not found; create it with knit network create front"), types.ErrInvalidNetworkConfig, "knit network create front"},
		{"invalid", selfNetNS, 400, v1.Invalidf("address 10.9.0.1 is outside the subnet"), types.ErrInvalidNetworkConfig, "outside"},
		{"conflict", selfNetNS, 409, v1.Conflictf("host port 8080 is in use"), ErrConflict, "in use"},
		{"exhausted", selfNetNS, 503, v1.Exhaustedf("no free address"), ErrExhausted, "knit ADD: no free address"},
		{"internal", selfNetNS, 500, v1.Errorf(v1.CodeInternal, "boom"), types.ErrInternal, "boom"},
		{"not JSON", selfNetNS, 502, "gateway", types.ErrInternal, "status 502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status != 0 {
				f.on("/v1/cni/add", tc.status, tc.answer)
			}
			p := p
			if tc.netns == "own" {
				p, tc.netns = New(), selfNetNS
			}
			err := p.Add(f.args("1.0.0", tc.netns, ""))
			if got := codeOf(t, err); got != tc.code {
				t.Errorf("code %d, want %d: %v", got, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("error %q does not mention %q", err, tc.hint)
			}
		})
	}
}

func TestKnitdDown(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	p := New()
	p.ownNetNS = ""
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"knit","socket":%q}`, socket)
	args := &skel.CmdArgs{ContainerID: "c1", Netns: selfNetNS, IfName: "eth0", StdinData: []byte(conf)}
	want := fmt.Sprintf("knitd is not running at %s; start it (knitd) or set \"socket\" in the conflist", socket)
	for name, fn := range map[string]func(*skel.CmdArgs) error{"ADD": p.Add, "DEL": p.Del, "CHECK": p.Check, "GC": p.GC} {
		err := fn(args)
		if got := codeOf(t, err); got != types.ErrTryAgainLater {
			t.Errorf("%s: code %d, want 11: %v", name, got, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q does not say %q", name, err, want)
		}
	}
	// A socket file nobody listens on: refused, same answer.
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if got := codeOf(t, p.Status(args)); got != types.ErrPluginNotAvailable {
		t.Errorf("STATUS: code %d, want 50", got)
	}
	os.Remove(socket)
}

func TestDelIsIdempotent(t *testing.T) {
	f := newFakeKnitd(t)
	p, _ := f.plugin()
	f.on("/v1/cni/del", 204, nil)
	if err := p.Del(f.args("1.0.0", "", "")); err != nil {
		t.Errorf("DEL with empty netns: %v", err)
	}
	if !strings.Contains(f.body("/v1/cni/del"), `"containerID":"c1"`) || strings.Contains(f.body("/v1/cni/del"), "netns") {
		t.Errorf("DEL body %s", f.body("/v1/cni/del"))
	}
	f.on("/v1/cni/del", 404, v1.NotFoundf("no attachment c1/eth0"))
	if err := p.Del(f.args("1.0.0", "/gone", "")); err != nil {
		t.Errorf("DEL of an unknown attachment: %v", err)
	}
	// A knitd without the CNI API must not be mistaken for "already gone".
	f2 := newFakeKnitd(t)
	p2, _ := f2.plugin()
	err := p2.Del(f2.args("1.0.0", "", ""))
	if got := codeOf(t, err); got != types.ErrPluginNotAvailable {
		t.Errorf("DEL against a knitd without /v1/cni: code %d, want 50: %v", got, err)
	}
}

func TestCheck(t *testing.T) {
	f := newFakeKnitd(t)
	p, _ := f.plugin()
	r := sampleResult()
	f.on("/v1/cni/check", 200, r)
	prev, _ := buildResult("1.0.0", r, nil)
	b, _ := json.Marshal(prev)
	if err := p.Check(f.args("1.0.0", selfNetNS, `,"prevResult":`+string(b))); err != nil {
		t.Errorf("CHECK matching prevResult: %v", err)
	}
	r2 := sampleResult()
	r2.Interface.MAC = "02:00:00:00:00:99"
	f.on("/v1/cni/check", 200, r2)
	if got := codeOf(t, p.Check(f.args("1.0.0", selfNetNS, `,"prevResult":`+string(b)))); got != ErrCheckFailed {
		t.Errorf("CHECK with another MAC: code %d", got)
	}
	f.on("/v1/cni/check", 404, v1.NotFoundf("no attachment"))
	if got := codeOf(t, p.Check(f.args("1.0.0", selfNetNS, ""))); got != types.ErrUnknownContainer {
		t.Errorf("CHECK unknown: code %d, want 3", got)
	}
	f.on("/v1/cni/check", 409, v1.Conflictf("host veth is missing"))
	if err := p.Check(f.args("1.0.0", selfNetNS, "")); err == nil || !strings.Contains(err.Error(), "host veth is missing") {
		t.Errorf("CHECK mismatch: %v", err)
	}
}

func TestGCAndStatus(t *testing.T) {
	f := newFakeKnitd(t)
	p, _ := f.plugin()
	f.on("/v1/cni/gc", 200, []string{"cni-c2"})
	err := p.GC(f.args("1.1.0", "", `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.body("/v1/cni/gc"), `{"network":"front","cniNetwork":"knit","valid":[{"containerID":"c1","ifName":"eth0"}]}`; got != want {
		t.Errorf("GC body %s, want %s", got, want)
	}
	_ = p.GC(f.args("1.1.0", "", ""))
	if got, want := f.body("/v1/cni/gc"), `{"network":"front","cniNetwork":"knit","valid":[]}`; got != want {
		t.Errorf("GC with no valid attachments sent %s, want %s (never null)", got, want)
	}

	if got := codeOf(t, p.Status(f.args("1.1.0", "", ""))); got != types.ErrPluginNotAvailable {
		t.Errorf("STATUS without /v1/cni/status: code %d, want 50", got)
	}
	f.on("/v1/cni/status", 200, map[string]string{})
	f.on("/v1/networks/front", 404, v1.NotFoundf("network \"front\" not found; create it with knit network create front"))
	err = p.Status(f.args("1.1.0", "", ""))
	if got := codeOf(t, err); got != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "knit network create front") {
		t.Errorf("STATUS without the network: code %d: %v", got, err)
	}
	f.on("/v1/networks/front", 200, v1.Network{Name: "front", Driver: v1.DriverHost})
	if got := codeOf(t, p.Status(f.args("1.1.0", "", ""))); got != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a host network: code %d, want 50", got)
	}
	f.on("/v1/networks/front", 200, v1.Network{Name: "front", Driver: v1.DriverBridge})
	if err := p.Status(f.args("1.1.0", "", "")); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}
