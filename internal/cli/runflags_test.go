package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

func TestParseContainerPorts(t *testing.T) {
	got, err := parseContainerPorts("container", []string{"http=8080", "dns=53/UDP", "sctp-x=9/sctp"})
	want := []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}, {Name: "dns", Port: 53, Protocol: "udp"}, {Name: "sctp-x", Port: 9, Protocol: "sctp"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v %v", got, err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"8080", "the port needs a name"},
		{"=8080", "the port needs a name"},
		{"HTTP=80", "must contain only alpha-numeric characters (a-z, 0-9)"},
		{"8080=80", "must contain at least one letter"},
		{"a-very-long-port-name=80", "must be no more than 15 characters"},
		{"web--x=80", "consecutive hyphens"},
		{"-web=80", "must not begin or end with a hyphen"},
		{"http=0", `"0" is not a port number`},
		{"http=70000", `"70000" is not a port number`},
		{"http=80/icmp", `protocol "icmp" is not tcp, udp or sctp`},
	} {
		_, err := parseContainerPorts(`container "c"`, []string{tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `container "c": --port `+tc.spec) {
			t.Errorf("%q: %v, want %q", tc.spec, err, tc.want)
		}
	}
	if _, err := parseContainerPorts("c", []string{"http=80", "http=81"}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestParseReadiness(t *testing.T) {
	ports := []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}}
	for _, tc := range []struct {
		f    probeFlags
		want *v1.Probe
	}{
		{probeFlags{}, nil},
		{probeFlags{spec: "tcp:5432"}, &v1.Probe{Type: "tcp", Port: "5432"}},
		{probeFlags{spec: "http:http/healthz", period: time.Second, timeout: 300 * time.Millisecond}, &v1.Probe{Type: "http", Port: "http", Path: "/healthz", Period: time.Second, Timeout: 300 * time.Millisecond}},
		{probeFlags{spec: "HTTP:8080"}, &v1.Probe{Type: "http", Port: "8080", Path: "/"}},
		{probeFlags{spec: "tcp:http"}, &v1.Probe{Type: "tcp", Port: "http"}},
	} {
		got, err := tc.f.parse("c", ports)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: got %+v %v, want %+v", tc.f, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		f    probeFlags
		want string
	}{
		{probeFlags{period: time.Second}, "--readiness-period and --readiness-timeout need --readiness"},
		{probeFlags{spec: "exec:true"}, "write tcp:PORT or http:PORT[/path]"},
		{probeFlags{spec: "8080"}, "write tcp:PORT or http:PORT[/path]"},
		{probeFlags{spec: "tcp:"}, "give the port to probe"},
		{probeFlags{spec: "tcp:80/x"}, "a tcp probe has no path"},
		{probeFlags{spec: "http:metrics/x"}, `"metrics" is neither a port number nor the name of a --port`},
		{probeFlags{spec: "tcp:0"}, `"0" is not a port number`},
		{probeFlags{spec: "tcp:99999"}, `"99999" is not a port number`},
		{probeFlags{spec: "tcp:80", timeout: -time.Second}, "must be positive durations"},
	} {
		if _, err := tc.f.parse("c", ports); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.f, err, tc.want)
		}
	}
}

func TestRunSendsServiceFields(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{"POST /v1/containers": {200, v1.Container{Name: "web"}}})
	r := knit(t, f.socket, "", "run", "-d", "--name", "web", "-n", "shop", "--label", "app=web",
		"--port", "http=8080", "--port", "metrics=9090/tcp", "-p", "8080:8080",
		"--readiness", "http:http/healthz", "--readiness-period", "500ms", "--readiness-timeout", "2s", "--", "sleep", "1")
	if r.code != 0 || r.stdout != "web\n" {
		t.Fatalf("exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	var req v1.ContainerCreate
	if err := json.Unmarshal(f.requests()[0].Body, &req); err != nil {
		t.Fatal(err)
	}
	wantProbe := &v1.Probe{Type: "http", Port: "http", Path: "/healthz", Period: 500 * time.Millisecond, Timeout: 2 * time.Second}
	if req.Namespace != "shop" || len(req.ContainerPorts) != 2 || req.ContainerPorts[1].Name != "metrics" ||
		!reflect.DeepEqual(req.Readiness, wantProbe) || len(req.Ports) != 1 || req.Ports[0].HostPort != 8080 {
		t.Errorf("sent %s", f.requests()[0].Body)
	}
	n := len(f.requests())
	r = knit(t, f.socket, "", "run", "-d", "--name", "bad", "--readiness", "tcp:web", "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, `container "bad": --readiness tcp:web: "web" is neither a port number nor the name of a --port`) || len(f.requests()) != n {
		t.Errorf("bad probe: %d %q", r.code, r.stderr)
	}
}

func TestPsNamespaces(t *testing.T) {
	cs := []v1.Container{
		{Name: "a", Namespace: "default", NetworkMode: "none", Command: []string{"sleep"}, Status: v1.ContainerStatus{State: v1.StateRunning}},
		{Name: "b", Namespace: "shop", NetworkMode: "none", Command: []string{"sleep"}, Status: v1.ContainerStatus{State: v1.StateRunning}},
		{Name: "old", NetworkMode: "none", Command: []string{"sleep"}, Status: v1.ContainerStatus{State: v1.StateRunning}},
	}
	f := newFakeKnitd(t, map[string]answer{"GET /v1/containers": {200, cs}})
	r := knit(t, f.socket, "", "ps")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME   ID   STATE") || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("ps unchanged: %q", r.stdout)
	}
	r = knit(t, f.socket, "", "ps", "-A")
	if !strings.HasPrefix(r.stdout, "NAMESPACE   NAME") || !strings.Contains(r.stdout, "\nshop        b ") || !strings.Contains(r.stdout, "\ndefault     old ") {
		t.Errorf("ps -A: %q", r.stdout)
	}
	r = knit(t, f.socket, "", "ps", "-q", "-n", "default")
	if r.stdout != "a\nold\n" {
		t.Errorf("ps -n default: %q", r.stdout)
	}
}
