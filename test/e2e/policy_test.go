package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// NetworkPolicy truth tables in the style of the upstream Kubernetes
// network policy tests: namespaces x, y and z, pods a, b and c in each,
// every pod serving TCP and UDP on 80 and 81 (and logging SCTP INITs), real
// probes between every pair.

var (
	polNamespaces = []string{"x", "y", "z"}
	polPods       = []string{"a", "b", "c"}
)

type polHost struct {
	*Host
	addr map[string]string // "x/a" → address
}

func newPolHost(t *testing.T) *polHost {
	h := &polHost{Host: newHost(t), addr: map[string]string{}}
	h.knit("network", "create", "pods", "--subnet", "10.210.0.0/24")
	for _, ns := range polNamespaces {
		h.knit("namespace", "create", ns, "--label", "ns="+ns)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, ns := range polNamespaces {
		for _, p := range polPods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := ns + "-" + p
				_, err := h.try("run", "-d", "--name", name, "--hostname", name, "--network", "pods", "--namespace", ns,
					"--label", "pod="+p, "--port", "serve-80-tcp=80/tcp", "--port", "serve-81-tcp=81/tcp",
					"--port", "serve-80-udp=80/udp", "--port", "serve-81-udp=81/udp", "--port", "serve-80-sctp=80/sctp",
					"--", bins.probe, "multiserve", "80,81")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				h.addr[ns+"/"+p] = ""
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for key := range h.addr {
		name := strings.Replace(key, "/", "-", 1)
		h.waitLog(name, "listening")
		h.addr[key] = h.ip(name, "pods")
	}
	return h
}

func allPods() []string {
	var out []string
	for _, ns := range polNamespaces {
		for _, p := range polPods {
			out = append(out, ns+"/"+p)
		}
	}
	return out
}

// probe returns, for every ordered pair of pods, whether a new connection
// of proto to port succeeds ("x/a>y/b" → true). SCTP is one way: the
// receiver's log shows which INITs arrived.
func (h *polHost) probe(proto string, port int) map[string]bool {
	pods := allPods()
	got := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	marks := map[string]int{}
	if proto == "sctp" {
		for _, to := range pods {
			marks[to] = strings.Count(h.logsOf(to), "\nsctp ")
		}
	}
	for _, from := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var targets []string
			for _, to := range pods {
				targets = append(targets, fmt.Sprintf("%s:%s:%d", proto, h.addr[to], port))
			}
			out, _ := h.try("exec", strings.Replace(from, "/", "-", 1), "--", bins.probe, "reach", strings.Join(targets, ","))
			mu.Lock()
			defer mu.Unlock()
			for i, to := range pods {
				got[from+">"+to] = strings.Contains(out, targets[i]+" ok")
			}
		}()
	}
	wg.Wait()
	if proto == "sctp" {
		h.sctpBarrier(pods, marks)
		for _, to := range pods {
			lines := strings.Split(h.logsOf(to), "\n")
			seen := map[string]bool{}
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "sctp ") {
					n++
					if n > marks[to] {
						f := strings.Fields(l)
						if len(f) == 3 && f[2] == fmt.Sprint(port) {
							seen[f[1]] = true
						}
					}
				}
			}
			for _, from := range pods {
				got[from+">"+to] = seen[h.addr[from]] || from == to && seen["127.0.0.1"]
			}
		}
	}
	return got
}

// sctpMarkerPort is where sctpBarrier sends its INITs: a port no probe uses.
const sctpMarkerPort = 9

// sctpBarrier waits until every pod has logged all the SCTP INITs sent to it
// before the call. Denied INITs never arrive, so their absence cannot be
// awaited; instead each pod sends itself an INIT over loopback (which never
// leaves the pod, so no policy applies) after every probe has ended, and its receiver logs INITs
// in the order they arrive, so once the marker is in the log, so is
// everything sent before it. marks holds each pod's count of "sctp" lines
// before the probe.
func (h *polHost) sctpBarrier(pods []string, marks map[string]int) {
	h.t.Helper()
	marker := fmt.Sprintf("\nsctp 127.0.0.1 %d\n", sctpMarkerPort)
	var wg sync.WaitGroup
	for _, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := fmt.Sprintf("sctp:127.0.0.1:%d", sctpMarkerPort)
			_, _ = h.try("exec", strings.Replace(pod, "/", "-", 1), "--", bins.probe, "reach", target)
		}()
	}
	wg.Wait()
	for _, pod := range pods {
		if !eventually(h.t, 20*time.Second, pod+" to log its SCTP marker", func() error {
			logs := h.logsOf(pod)
			// The marker is the only "sctp" line for its port; it must come
			// after the lines counted before the probe.
			i := strings.LastIndex(logs, marker)
			if i < 0 || strings.Count(logs[:i+1], "\nsctp ") < marks[pod] {
				return fmt.Errorf("no marker after %d sctp lines; log:%s", marks[pod], logs)
			}
			return nil
		}) {
			h.t.FailNow()
		}
	}
}

func (h *polHost) logsOf(pod string) string {
	out, _ := h.try("logs", strings.Replace(pod, "/", "-", 1))
	return "\n" + out
}

// expect checks a probe against a rule; a pod always reaches itself (the
// traffic never leaves its namespace), except over SCTP where the raw
// probe goes through the kernel's loopback too.
func (h *polHost) expect(t *testing.T, name, proto string, port int, allowed func(from, to string) bool) {
	t.Helper()
	got := h.probe(proto, port)
	var wrong []string
	for _, from := range allPods() {
		for _, to := range allPods() {
			want := from == to || allowed(from, to)
			if from == to && proto == "sctp" {
				continue
			}
			if got[from+">"+to] != want {
				wrong = append(wrong, fmt.Sprintf("%s→%s got %v want %v", from, to, got[from+">"+to], want))
			}
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%s (%s/%d): %d wrong of 81:\n  %s", name, proto, port, len(wrong), strings.Join(wrong, "\n  "))
	}
}

// policy applies one manifest and removes it at the end of the case.
func (h *polHost) policy(t *testing.T, yaml string) func() {
	t.Helper()
	f := h.manifest(fmt.Sprintf("pol%d", time.Now().UnixNano()), yaml)
	h.knit("apply", "-f", f)
	return func() { h.knit("delete", "-f", f) }
}

func ns(pod string) string    { return pod[:1] }
func name(pod string) string  { return pod[2:] }
func all(string, string) bool { return true }

// check is one probe of a case: every pair over proto to port.
type check struct {
	proto string
	port  int
}

func TestNetworkPolicyTruthTable(t *testing.T) {
	h := newPolHost(t)
	h.expect(t, "no policy", "tcp", 80, all)

	cases := []struct {
		name    string
		yaml    string
		checks  []check
		allowed func(from, to string) bool
	}{
		{"default deny ingress in x", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`, nil, func(from, to string) bool { return ns(to) != "x" }},
		{"allow x/a from its own namespace", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-ns, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {}
`, nil, func(from, to string) bool { return to != "x/a" || ns(from) == "x" }},
		{"namespaceSelector and podSelector in one peer (AND)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
      podSelector: {matchLabels: {pod: b}}
`, nil, func(from, to string) bool { return to != "x/a" || from == "y/b" }},
		{"namespaceSelector and podSelector as two peers (OR)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
    - podSelector: {matchLabels: {pod: b}}
`, nil, func(from, to string) bool { return to != "x/a" || ns(from) == "y" || from == "x/b" }},
		{"matchExpressions NotIn and Exists", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: expr, namespace: x}
spec:
  podSelector:
    matchExpressions: [{key: pod, operator: In, values: [a, b]}]
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: ns, operator: NotIn, values: [z]}]
      podSelector:
        matchExpressions: [{key: pod, operator: Exists}]
`, nil, func(from, to string) bool { return ns(to) != "x" || name(to) == "c" || ns(from) != "z" }},
		{"ipBlock with except", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: block, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - ipBlock: {cidr: 10.210.0.0/24, except: [YB/32]}
`, nil, func(from, to string) bool { return to != "x/a" || from != "y/b" }},
		{"except re-allowed by another policy", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: block, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - ipBlock: {cidr: 10.210.0.0/24, except: [YB/32]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: yb, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
      podSelector: {matchLabels: {pod: b}}
`, nil, all},
		{"named port: only serve-81-tcp", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: serve-81-tcp
`, []check{{"tcp", 80}, {"tcp", 81}}, nil},
		{"endPort range 81-90", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {protocol: TCP, port: 81, endPort: 90}
`, []check{{"tcp", 80}, {"tcp", 81}}, nil},
		{"SCTP-only rule does not let TCP through", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {protocol: SCTP, port: 80}
`, []check{{"tcp", 80}, {"sctp", 80}, {"udp", 80}}, nil},
		{"UDP-only rule", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {protocol: UDP, port: 81}
`, []check{{"udp", 81}, {"tcp", 81}}, nil},
		{"default deny egress in y", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
`, nil, func(from, to string) bool { return ns(from) != "y" }},
		{"egress allowed at the source, ingress denied at the destination", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {ns: x}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: in, namespace: x}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - from:
    - podSelector: {}
`, nil, func(from, to string) bool {
			if ns(from) == "y" && ns(to) != "x" {
				return false
			}
			return to != "x/c" || ns(from) == "x"
		}},
		{"policies add up", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-y, namespace: z}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-xa, namespace: z}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}]
`, nil, func(from, to string) bool {
			return ns(to) != "z" || ns(from) == "y" || to == "z/a" && from == "x/a"
		}},
	}
	for _, c := range cases {
		yaml := strings.ReplaceAll(c.yaml, "YB", h.addr["y/b"])
		undo := h.policy(t, yaml)
		checks := c.checks
		if checks == nil {
			checks = []check{{"tcp", 80}}
		}
		for _, ck := range checks {
			allowed := c.allowed
			if allowed == nil {
				allowed = portRule(c.name, ck.proto, ck.port)
			}
			h.expect(t, c.name, ck.proto, ck.port, allowed)
		}
		undo()
	}
	h.expect(t, "every policy deleted", "tcp", 80, all)
}

// portRule is the expectation of the port cases: x admits only what the
// case's rule allows, from everyone.
func portRule(name, proto string, port int) func(from, to string) bool {
	ok := false
	switch {
	case strings.HasPrefix(name, "named port"):
		ok = proto == "tcp" && port == 81
	case strings.HasPrefix(name, "endPort"):
		ok = proto == "tcp" && port >= 81 && port <= 90
	case strings.HasPrefix(name, "SCTP"):
		ok = proto == "sctp" && port == 80
	case strings.HasPrefix(name, "UDP"):
		ok = proto == "udp" && port == 81
	}
	return func(from, to string) bool { return ns(to) != "x" || ok }
}

// Egress default deny blocks DNS; a rule for port 53 opens it again. A
// relabelled pod changes what applies within a second. trace and drops
// explain verdicts from the state the kernel enforces.
func TestNetworkPolicyDNSRelabelTrace(t *testing.T) {
	h := newPolHost(t)
	resolve := func(pod string) string {
		out, _ := h.try("exec", strings.Replace(pod, "/", "-", 1), "--", bins.probe, "resolve", "x-b")
		return out
	}
	if out := resolve("y/a"); !strings.Contains(out, "A "+h.addr["x/b"]) {
		t.Fatalf("y/a cannot resolve x-b before any policy: %q", out)
	}
	undo := h.policy(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
`)
	if out := resolve("y/a"); !strings.HasPrefix(out, "FAIL") {
		t.Errorf("default deny egress did not block DNS: %q", out)
	}
	h.policy(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
`)
	if out := resolve("y/a"); !strings.Contains(out, "A "+h.addr["x/b"]) {
		t.Errorf("egress to DNS allowed, yet: %q", out)
	}
	got := h.probe("tcp", 80)
	if got["y/a>x/b"] {
		t.Errorf("y/a reaches x/b:80 with only DNS allowed")
	}
	// trace names the isolating policy.
	tr := h.knit("policy", "trace", "--from", "y-a", "--to", "x-b", "--port", "80/tcp")
	if !strings.HasPrefix(tr, "DENIED") || !strings.Contains(tr, "y/deny-egress") {
		t.Errorf("trace y-a → x-b 80/tcp:\n%s", tr)
	}
	if tr := h.knit("policy", "trace", "--from", "y-a", "--to", "x-b", "--port", "53/udp"); !strings.HasPrefix(tr, "ALLOWED") || !strings.Contains(tr, "y/dns") {
		t.Errorf("trace y-a → x-b 53/udp:\n%s", tr)
	}
	drops := h.knit("policy", "drops")
	if !strings.Contains(drops, "y/deny-egress") {
		t.Errorf("policy drops does not count y/deny-egress:\n%s", drops)
	}
	undo()
	h.knit("delete", "networkpolicy", "-n", "y", "dns")

	// Relabelling: x/a admits pod=b only; relabelling y/c to pod=b lets it in.
	h.policy(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]
`)
	if h.probe("tcp", 80)["y/c>x/a"] {
		t.Fatalf("y/c reaches x/a before relabelling")
	}
	h.knit("label", "y-c", "pod=b", "--overwrite")
	// The 1 s deadlines here are part of what is tested: policy follows
	// labels promptly.
	start := time.Now()
	eventually(t, time.Second, "relabelled y/c to reach x/a", func() error {
		if !h.probe("tcp", 80)["y/c>x/a"] {
			return errors.New("still denied")
		}
		return nil
	})
	t.Logf("relabel took effect within %v", time.Since(start).Round(10*time.Millisecond))
	// Namespace labels count too: x/a admits namespaces team=blue.
	h.policy(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: blue, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]
`)
	if h.probe("tcp", 80)["z/a>x/a"] {
		t.Fatalf("z/a reaches x/a before z is labelled")
	}
	h.knit("namespace", "label", "z", "team=blue")
	eventually(t, time.Second, "z/a to reach x/a after labelling namespace z", func() error {
		if !h.probe("tcp", 80)["z/a>x/a"] {
			return errors.New("still denied")
		}
		return nil
	})
	if nsList := h.knit("namespace", "ls"); !slices.ContainsFunc(strings.Split(nsList, "\n"), func(l string) bool {
		return strings.HasPrefix(l, "z ") && strings.Contains(l, "kubernetes.io/metadata.name=z")
	}) {
		t.Errorf("namespace ls lacks z with its name label:\n%s", nsList)
	}
}

func TestNetworkPolicyBadInput(t *testing.T) {
	h := newHost(t)
	before := h.knit("get", "networkpolicies", "-A", "-o", "json")
	cases := []struct{ name, yaml, want string }{
		{"selector operator", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: Near}]\n", "operator"},
		{"cidr", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n", "cidr"},
		{"except outside", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]\n", "except"},
		{"port", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n", "port"},
		{"endPort below port", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 90, endPort: 80}]\n", "endPort"},
		{"policyTypes", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Sideways]\n", "policyTypes"},
		{"good beside bad", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: good}\nspec:\n  podSelector: {}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n", "port"},
	}
	for _, c := range cases {
		out, err := h.try("apply", "-f", h.manifest("bad", c.yaml))
		if err == nil {
			t.Errorf("%s: accepted: %s", c.name, out)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
	}
	if after := h.knit("get", "networkpolicies", "-A", "-o", "json"); after != before {
		t.Errorf("bad input changed the policies:\n%s\n%s", before, after)
	}
}
