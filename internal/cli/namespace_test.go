package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/knit-net/knit/api/v1"
)

func namespaceFixtures() []v1.Namespace {
	return []v1.Namespace{
		{Name: "prod", Labels: map[string]string{"env": "prod", v1.NamespaceNameLabel: "prod"}, Created: ago(2 * time.Hour)},
		{Name: "default", Labels: map[string]string{v1.NamespaceNameLabel: "default"}},
		{Name: "web"}, // implicit; knitd adds the name label, knit does not need it
	}
}

func TestNamespaceCommands(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/namespaces":               {200, namespaceFixtures()},
		"POST /v1/namespaces":              {201, v1.Namespace{Name: "prod", Labels: map[string]string{"env": "prod", v1.NamespaceNameLabel: "prod"}}},
		"POST /v1/namespaces/prod/labels":  {200, v1.Namespace{Name: "prod", Labels: map[string]string{"env": "dev", v1.NamespaceNameLabel: "prod"}}},
		"POST /v1/namespaces/dev/labels":   {409, v1.Error{Code: v1.CodeConflict, Message: `namespace "dev": label "env" already has a value (dev), and --overwrite is false; add --overwrite to change it`}},
		"DELETE /v1/namespaces/old":        {200, map[string]string{"deleted": "old"}},
		"DELETE /v1/namespaces/busy":       {409, v1.Error{Code: v1.CodeConflict, Message: `namespace "busy" is in use by [container web]; remove them first`}},
		"POST /v1/containers/ns/labels":    {200, v1.Container{Name: "ns"}},
		"POST /v1/containers/webns/labels": {200, v1.Container{Name: "webns"}},
	})
	last := func() request { reqs := f.requests(); return reqs[len(reqs)-1] }

	r := knit(t, f.socket, "", "namespace", "create", "prod", "--label", "env=prod", "-l", "team=pay")
	var upd v1.NamespaceUpdate
	if r.code != 0 || r.stdout != "namespace/prod created\n" || json.Unmarshal(last().Body, &upd) != nil ||
		upd.Name != "prod" || upd.Set["env"] != "prod" || upd.Set["team"] != "pay" || len(upd.Set) != 2 {
		t.Errorf("create: %d %q %q %s", r.code, r.stdout, r.stderr, last().Body)
	}
	r = knit(t, f.socket, "", "ns", "create", "prod", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "prod"`) {
		t.Errorf("create -o json: %d %q", r.code, r.stdout)
	}

	r = knit(t, f.socket, "", "namespace", "label", "prod", "env=dev", "team-", "--overwrite")
	upd = v1.NamespaceUpdate{}
	if r.code != 0 || r.stdout != "namespace/prod labeled\n" || last().URI != "/v1/namespaces/prod/labels" || json.Unmarshal(last().Body, &upd) != nil ||
		!upd.Overwrite || upd.Set["env"] != "dev" || upd.Remove[0] != "team" || upd.Name != "" {
		t.Errorf("label: %d %q %q %s", r.code, r.stdout, r.stderr, last().Body)
	}
	r = knit(t, f.socket, "", "namespace", "label", "dev", "env=x")
	if r.code != 1 || r.stderr != "knit: namespace \"dev\": label \"env\" already has a value (dev), and --overwrite is false; add --overwrite to change it\n" {
		t.Errorf("label conflict: %d %q", r.code, r.stderr)
	}
	// kubectl style: knit label namespace NAME, ns/NAME.
	for _, args := range [][]string{{"label", "namespace", "prod", "env=dev"}, {"label", "ns/prod", "env=dev"}, {"label", "namespaces", "prod", "env=dev"}} {
		if r := knit(t, f.socket, "", args...); r.code != 0 || r.stdout != "namespace/prod labeled\n" || last().URI != "/v1/namespaces/prod/labels" {
			t.Errorf("%q: %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	// A container called ns is still labelled as a container.
	if r := knit(t, f.socket, "", "label", "ns", "app=x"); r.code != 0 || r.stdout != "container/ns labeled\n" || last().URI != "/v1/containers/ns/labels" {
		t.Errorf("container ns: %d %q %q", r.code, r.stdout, r.stderr)
	}

	r = knit(t, f.socket, "", "namespace", "ls")
	want := `NAME      LABELS
default   kubernetes.io/metadata.name=default
prod      env=prod,kubernetes.io/metadata.name=prod
web       kubernetes.io/metadata.name=web
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("ls: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	if r := knit(t, f.socket, "", "ns", "list", "-q"); r.stdout != "default\nprod\nweb\n" {
		t.Errorf("ls -q: %q", r.stdout)
	}
	if r := knit(t, f.socket, "", "namespace", "ls", "-o", "json"); !strings.Contains(r.stdout, `"name": "prod"`) {
		t.Errorf("ls -o json: %q", r.stdout)
	}

	r = knit(t, f.socket, "", "namespace", "rm", "old", "busy", "nope")
	if r.code != 1 || r.stdout != "old\n" || !strings.Contains(r.stderr, "knit: namespace \"busy\" is in use by [container web]; remove them first\n") || !strings.Contains(r.stderr, "no answer for DELETE /v1/namespaces/nope") {
		t.Errorf("rm: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "delete", "ns", "old")
	if r.code != 0 || r.stdout != "namespace \"old\" deleted\n" {
		t.Errorf("delete ns: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// Client-side errors: exit 1, a message naming the namespace, nothing sent.
func TestNamespaceRefusesBeforeSending(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"namespace", "create", "Prod"}, `The Namespace "Prod" is invalid: metadata.name: Invalid value: "Prod": a lowercase RFC 1123 label`},
		{[]string{"namespace", "create", "prod", "--label", "env"}, `namespace "prod": --label "env" is not key=value`},
		{[]string{"namespace", "create", "prod", "--label", "bad key=x"}, `The Namespace "prod" is invalid: metadata.labels: Invalid value: "bad key"`},
		{[]string{"namespace", "create", "prod", "--label", "kubernetes.io/metadata.name=dev"}, `is always the namespace's name ("prod"); leave it out`},
		{[]string{"namespace", "create"}, "accepts 1 arg(s), received 0"},
		{[]string{"namespace", "label", "prod"}, `namespace "prod": at least one label update is required`},
		{[]string{"namespace", "label", "prod", "env=has space"}, `namespace "prod": invalid label value "has space"`},
		{[]string{"namespace", "label", "prod", "kubernetes.io/metadata.name-"}, `namespace "prod": label kubernetes.io/metadata.name is always the namespace's name; it cannot be set or removed`},
		{[]string{"namespace", "label", "a_b", "env=x"}, `The Namespace "a_b" is invalid: metadata.name`},
		{[]string{"label", "ns/prod", "env"}, `namespace "prod": invalid label spec "env"`},
		{[]string{"get", "ns", "-o", "xml"}, "unknown output format"},
	} {
		r := knit(t, f.socket, "", tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("knit %s: exit %d stdout %q stderr %q\nwant %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("knitd was called: %+v", reqs)
	}
}

func TestGetNamespaces(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{"GET /v1/namespaces": {200, namespaceFixtures()}})
	r := knit(t, f.socket, "", "get", "namespaces")
	want := `NAME      STATUS   AGE
default   Active   <unknown>
prod      Active   120m
web       Active   <unknown>
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("get ns: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = knit(t, f.socket, "", "get", "ns", "prod", "-o", "wide")
	want = `NAME   STATUS   AGE    LABELS
prod   Active   120m   env=prod,kubernetes.io/metadata.name=prod
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("get ns -o wide: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = knit(t, f.socket, "", "get", "ns", "prod", "nope")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "NAME   STATUS") || r.stderr != "Error from server (NotFound): namespaces \"nope\" not found\n" {
		t.Errorf("one missing: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "namespace/web", "-o", "yaml")
	var ns struct {
		APIVersion, Kind string
		Metadata         struct {
			Name   string
			Labels map[string]string
		}
		Status struct{ Phase string }
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &ns); err != nil || ns.Kind != "Namespace" || ns.APIVersion != "v1" || ns.Metadata.Name != "web" ||
		ns.Metadata.Labels[v1.NamespaceNameLabel] != "web" || ns.Status.Phase != "Active" {
		t.Errorf("-o yaml: %v\n%s", err, r.stdout)
	}
	if r := knit(t, f.socket, "", "get", "ns", "-o", "name", "-A"); r.stdout != "namespace/default\nnamespace/prod\nnamespace/web\n" {
		t.Errorf("-o name: %q %q", r.stdout, r.stderr)
	}
}
