package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

func TestParseLabelArgs(t *testing.T) {
	upd, err := parseLabelArgs("web", []string{"app=backend", "example.com/tier=api", "old-", "empty=", "old-"})
	want := v1.LabelUpdate{Set: map[string]string{"app": "backend", "example.com/tier": "api", "empty": ""}, Remove: []string{"old"}}
	if err != nil || !reflect.DeepEqual(upd, want) {
		t.Fatalf("got %+v %v", upd, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "at least one label update is required"},
		{[]string{"app"}, `invalid label spec "app"; write KEY=VALUE`},
		{[]string{"=x"}, `invalid label key "" in "=x"`},
		{[]string{"-app=x"}, `invalid label key "-app"`},
		{[]string{"app=has space"}, `invalid label value "has space"`},
		{[]string{"app=" + strings.Repeat("v", 64)}, "must be no more than 63"},
		{[]string{"a/b/c-"}, `invalid label key "a/b/c"`},
		{[]string{"app=a", "app-"}, "can not both modify and remove a label in the same command: app"},
		{[]string{"app=a", "app=b"}, `label "app" is given twice`},
	} {
		if _, err := parseLabelArgs("web", tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestLabelCommand(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{
		"POST /v1/containers/web/labels": {200, v1.Container{Name: "web", Labels: map[string]string{"app": "backend"}}},
		"POST /v1/containers/db/labels":  {409, v1.Error{Code: v1.CodeConflict, Message: `container "db": label "app" already has the value "x"; pass --overwrite to change it`}},
	})
	r := knit(t, f.socket, "", "label", "container/web", "app=backend", "tier-", "--overwrite")
	if r.code != 0 || r.stdout != "container/web labeled\n" {
		t.Fatalf("exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	var upd v1.LabelUpdate
	if err := json.Unmarshal(f.requests()[0].Body, &upd); err != nil || !upd.Overwrite || upd.Set["app"] != "backend" || upd.Remove[0] != "tier" {
		t.Errorf("sent %s", f.requests()[0].Body)
	}
	r = knit(t, f.socket, "", "label", "db", "app=y")
	if r.code != 1 || !strings.Contains(r.stderr, "pass --overwrite") {
		t.Errorf("conflict: %d %q", r.code, r.stderr)
	}
	n := len(f.requests())
	if r := knit(t, f.socket, "", "label", "web", "bad key=x"); r.code != 1 || len(f.requests()) != n {
		t.Errorf("bad key sent or accepted: %d %q", r.code, r.stderr)
	}
}
