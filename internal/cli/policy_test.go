package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

func TestPolicyTrace(t *testing.T) {
	denied := v1.PolicyVerdict{
		Egress: v1.DirectionResult{Allowed: true, Reason: "no NetworkPolicy selects frontend for egress"},
		Ingress: v1.DirectionResult{Isolated: true, Reason: "no ingress rule allows tcp/5432 from frontend",
			IsolatedBy: []string{"default/default-deny-all", "default/micro-segmentation"}},
	}
	allowed := v1.PolicyVerdict{Allowed: true,
		Egress:  v1.DirectionResult{Allowed: true},
		Ingress: v1.DirectionResult{Allowed: true, Isolated: true, Reason: "allowed by a rule", AllowedBy: []string{"default/allow-frontend-to-backend ingress[0]"}, IsolatedBy: []string{"default/allow-frontend-to-backend"}},
	}
	f := newFakeKnitd(t, map[string]answer{})
	f.answers["POST /v1/policy/trace"] = answer{200, denied}
	r := knit(t, f.socket, "", "policy", "trace", "--from", "frontend", "--to", "db", "--port", "5432")
	want := `DENIED
egress:   allowed  no NetworkPolicy selects frontend for egress
ingress:  denied   no ingress rule allows tcp/5432 from frontend (isolated by default/default-deny-all, default/micro-segmentation)
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("denied: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	var q v1.PolicyTrace
	if err := json.Unmarshal(f.requests()[0].Body, &q); err != nil || q != (v1.PolicyTrace{From: "frontend", To: "db", Protocol: "tcp", Port: 5432}) {
		t.Errorf("sent %s", f.requests()[0].Body)
	}

	f.mu.Lock()
	f.answers["POST /v1/policy/trace"] = answer{200, allowed}
	f.mu.Unlock()
	r = knit(t, f.socket, "", "policy", "trace", "--from", "10.88.0.5", "--to", "backend", "--port", "53/UDP")
	want = `ALLOWED
egress:   allowed  not isolated: no NetworkPolicy selects it for egress
ingress:  allowed  allowed by a rule (allowed by default/allow-frontend-to-backend ingress[0])
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("allowed: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	reqs := f.requests()
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &q); err != nil || q.Protocol != "udp" || q.Port != 53 {
		t.Errorf("sent %s", reqs[len(reqs)-1].Body)
	}
	r = knit(t, f.socket, "", "policy", "trace", "--from", "a", "--to", "b", "--port", "80/sctp", "-o", "json")
	var v v1.PolicyVerdict
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil || !v.Allowed || v.Ingress.AllowedBy[0] != "default/allow-frontend-to-backend ingress[0]" {
		t.Errorf("-o json: %d %v %q", r.code, err, r.stdout)
	}

	f.mu.Lock()
	f.answers["POST /v1/policy/trace"] = answer{400, v1.Error{Code: v1.CodeInvalid, Message: `no container or address "ghost"; see knit ps`}}
	f.mu.Unlock()
	if r := knit(t, f.socket, "", "policy", "trace", "--from", "ghost", "--to", "b", "--port", "80"); r.code != 1 || r.stderr != "knit: no container or address \"ghost\"; see knit ps\n" {
		t.Errorf("server error: %d %q", r.code, r.stderr)
	}

	n := len(f.requests())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "b"}, "knit policy trace needs --from, --port; e.g. --from frontend --to backend --port 8080/tcp"},
		{[]string{"--from", "a", "--to", "b", "--port", "http"}, "--port http: give a port number from 1 to 65535"},
		{[]string{"--from", "a", "--to", "b", "--port", "0"}, "--port 0: give a port number from 1 to 65535"},
		{[]string{"--from", "a", "--to", "b", "--port", "65536/tcp"}, "--port 65536/tcp: give a port number"},
		{[]string{"--from", "a", "--to", "b", "--port", "80/icmp"}, `--port 80/icmp: unknown protocol "icmp"; use tcp, udp or sctp`},
		{[]string{"--from", "a", "--to", "b", "--port", "80", "-o", "yaml"}, "unknown output format"},
	} {
		r := knit(t, f.socket, "", append([]string{"policy", "trace"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%q: %d %q %q\nwant %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if len(f.requests()) != n {
		t.Errorf("client-side errors reached knitd: %+v", f.requests()[n:])
	}
}

func TestPolicyDrops(t *testing.T) {
	at := func(d time.Duration) time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.Local).Add(-d) }
	drops := v1.PolicyDrops{
		Counts: map[string]uint64{"default/default-deny-all": 3, "prod/db-only": 12, "default/a": 3},
		Recent: []v1.PolicyDrop{
			{Time: at(time.Second), Direction: "ingress", Protocol: "tcp", Src: "10.88.0.2", SrcName: "frontend", Dst: "10.88.0.3:5432", DstName: "db", Policies: []string{"prod/db-only"}},
			{Time: at(time.Hour), Direction: "egress", Protocol: "udp", Src: "10.88.0.4", Dst: "192.0.2.1:53", Policies: []string{"default/a", "default/default-deny-all"}},
		},
	}
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/policy/drops?limit=20": {200, drops},
		"GET /v1/policy/drops?limit=1":  {200, v1.PolicyDrops{Counts: map[string]uint64{"prod/db-only": 12}, Recent: []v1.PolicyDrop{}}},
		"GET /v1/policy/drops?limit=5":  {200, v1.PolicyDrops{Counts: map[string]uint64{}, Recent: []v1.PolicyDrop{}}},
	})
	r := knit(t, f.socket, "", "policy", "drops")
	want := `POLICY                     DROPS
prod/db-only               12
default/a                  3
default/default-deny-all   3

TIME              DIRECTION   PROTO   SRC                    DST                   POLICIES
Jun  1 11:59:59   ingress     tcp     frontend (10.88.0.2)   db (10.88.0.3:5432)   prod/db-only
Jun  1 11:00:00   egress      udp     10.88.0.4              192.0.2.1:53          default/a,default/default-deny-all
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("drops: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	if r := knit(t, f.socket, "", "policy", "drops", "--limit", "1"); r.code != 0 || r.stdout != "POLICY         DROPS\nprod/db-only   12\n" {
		t.Errorf("--limit 1: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := knit(t, f.socket, "", "policy", "drops", "--limit", "5"); r.code != 0 || r.stdout != "No packets dropped by NetworkPolicies.\n" {
		t.Errorf("none: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "policy", "drops", "-o", "json")
	var got v1.PolicyDrops
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.Counts["prod/db-only"] != 12 || len(got.Recent) != 2 {
		t.Errorf("-o json: %d %v %q", r.code, err, r.stdout)
	}
	n := len(f.requests())
	if r := knit(t, f.socket, "", "policy", "drops", "--limit", "0"); r.code != 1 || !strings.Contains(r.stderr, "--limit must be 1 or more") || len(f.requests()) != n {
		t.Errorf("--limit 0: %d %q", r.code, r.stderr)
	}
}
