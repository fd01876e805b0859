package client

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

func TestPolicyCalls(t *testing.T) {
	ctx := context.Background()

	c, s := recorder(t, 200, []v1.NetworkPolicy{{Metadata: v1.ObjectMeta{Name: "deny"}}})
	ps, err := c.ListNetworkPolicies(ctx, "team a")
	if err != nil || s.method != "GET" || s.uri != "/v1/networkpolicies?namespace=team+a" || len(ps) != 1 || ps[0].Metadata.Name != "deny" {
		t.Errorf("ListNetworkPolicies: %v %+v", err, s)
	}
	if _, err := c.ListNetworkPolicies(ctx, ""); err != nil || s.uri != "/v1/networkpolicies" {
		t.Errorf("ListNetworkPolicies all: %v %+v", err, s)
	}

	c, s = recorder(t, 200, v1.NetworkPolicy{Metadata: v1.ObjectMeta{Name: "deny", Namespace: "prod"}})
	p, err := c.GetNetworkPolicy(ctx, "prod", "deny")
	if err != nil || s.method != "GET" || s.uri != "/v1/networkpolicies/prod/deny" || p.Metadata.Namespace != "prod" {
		t.Errorf("GetNetworkPolicy: %v %+v", err, s)
	}

	c, s = recorder(t, 200, map[string]string{"deleted": "prod/deny"})
	if err := c.DeleteNetworkPolicy(ctx, "prod", "deny"); err != nil || s.method != "DELETE" || s.uri != "/v1/networkpolicies/prod/deny" {
		t.Errorf("DeleteNetworkPolicy: %v %+v", err, s)
	}

	c, s = recorder(t, 200, []v1.Namespace{{Name: "default"}, {Name: "prod", Labels: map[string]string{"env": "prod"}}})
	nss, err := c.ListNamespaces(ctx)
	if err != nil || s.method != "GET" || s.uri != "/v1/namespaces" || len(nss) != 2 || nss[1].Labels["env"] != "prod" {
		t.Errorf("ListNamespaces: %v %+v %+v", err, s, nss)
	}

	c, s = recorder(t, 201, v1.Namespace{Name: "prod", Labels: map[string]string{"env": "prod"}})
	ns, err := c.CreateNamespace(ctx, v1.NamespaceUpdate{Name: "prod", Set: map[string]string{"env": "prod"}})
	var upd v1.NamespaceUpdate
	if err != nil || s.method != "POST" || s.uri != "/v1/namespaces" || ns.Name != "prod" || json.Unmarshal(s.body, &upd) != nil || upd.Name != "prod" || upd.Set["env"] != "prod" {
		t.Errorf("CreateNamespace: %v %+v %s", err, s, s.body)
	}

	c, s = recorder(t, 200, v1.Namespace{Name: "prod"})
	_, err = c.LabelNamespace(ctx, "prod", v1.NamespaceUpdate{Name: "ignored", Set: map[string]string{"env": "dev"}, Remove: []string{"team"}, Overwrite: true})
	upd = v1.NamespaceUpdate{}
	if err != nil || s.method != "POST" || s.uri != "/v1/namespaces/prod/labels" || json.Unmarshal(s.body, &upd) != nil || upd.Name != "" || !upd.Overwrite || upd.Remove[0] != "team" || upd.Set["env"] != "dev" {
		t.Errorf("LabelNamespace: %v %+v %s", err, s, s.body)
	}

	c, s = recorder(t, 200, map[string]string{"deleted": "prod"})
	if err := c.DeleteNamespace(ctx, "prod"); err != nil || s.method != "DELETE" || s.uri != "/v1/namespaces/prod" {
		t.Errorf("DeleteNamespace: %v %+v", err, s)
	}

	c, s = recorder(t, 200, v1.PolicyVerdict{Allowed: false, Ingress: v1.DirectionResult{Isolated: true, IsolatedBy: []string{"prod/deny"}}})
	v, err := c.PolicyTrace(ctx, v1.PolicyTrace{From: "a", To: "b", Protocol: "tcp", Port: 80})
	var q v1.PolicyTrace
	if err != nil || s.method != "POST" || s.uri != "/v1/policy/trace" || v.Allowed || v.Ingress.IsolatedBy[0] != "prod/deny" ||
		json.Unmarshal(s.body, &q) != nil || q != (v1.PolicyTrace{From: "a", To: "b", Protocol: "tcp", Port: 80}) {
		t.Errorf("PolicyTrace: %v %+v %s", err, s, s.body)
	}

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	c, s = recorder(t, 200, v1.PolicyDrops{Counts: map[string]uint64{"prod/deny": 7}, Recent: []v1.PolicyDrop{{Time: now, Direction: "ingress", Protocol: "tcp"}}})
	d, err := c.PolicyDrops(ctx, 5)
	if err != nil || s.method != "GET" || s.uri != "/v1/policy/drops?limit=5" || d.Counts["prod/deny"] != 7 || !d.Recent[0].Time.Equal(now) {
		t.Errorf("PolicyDrops: %v %+v %+v", err, s, d)
	}
	if _, err := c.PolicyDrops(ctx, 0); err != nil || s.uri != "/v1/policy/drops" {
		t.Errorf("PolicyDrops default: %v %+v", err, s)
	}
}

func TestPolicyNotFound(t *testing.T) {
	c, _ := recorder(t, 404, v1.Error{Code: v1.CodeNotFound, Message: `networkpolicies.networking.k8s.io "x" not found`})
	if _, err := c.GetNetworkPolicy(context.Background(), "default", "x"); !v1.IsNotFound(err) {
		t.Fatalf("err = %v, want a not-found *v1.Error", err)
	}
}
