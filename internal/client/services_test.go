package client

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// fakeKnitd serves handler on a unix socket and returns a client for it.
func fakeKnitd(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "knit.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return New(sock)
}

type seen struct {
	method, uri string
	body        []byte
}

func recorder(t *testing.T, status int, answer any) (*Client, *seen) {
	s := &seen{}
	c := fakeKnitd(t, func(w http.ResponseWriter, r *http.Request) {
		s.method, s.uri = r.Method, r.URL.RequestURI()
		s.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(answer)
	})
	return c, s
}

func TestServiceCalls(t *testing.T) {
	ctx := context.Background()

	c, s := recorder(t, 200, v1.ApplyResult{Objects: []v1.AppliedObject{{Kind: "Service", Namespace: "default", Name: "a", Action: v1.ApplyCreated}}})
	res, err := c.Apply(ctx, v1.ApplyRequest{DryRun: true, Services: []v1.Service{{APIVersion: "v1", Kind: "Service", Metadata: v1.ObjectMeta{Name: "a"}}}})
	if err != nil || s.method != "POST" || s.uri != "/v1/apply" || len(res.Objects) != 1 || res.Objects[0].String() != "service/a created" {
		t.Fatalf("Apply: %v %+v %+v", err, s, res)
	}
	var req v1.ApplyRequest
	if err := json.Unmarshal(s.body, &req); err != nil || !req.DryRun || req.Services[0].Metadata.Name != "a" {
		t.Errorf("Apply body %s", s.body)
	}

	c, s = recorder(t, 200, []v1.Service{{Metadata: v1.ObjectMeta{Name: "x"}}})
	svcs, err := c.ListServices(ctx, "team a")
	if err != nil || s.method != "GET" || s.uri != "/v1/services?namespace=team+a" || len(svcs) != 1 {
		t.Errorf("ListServices: %v %+v", err, s)
	}
	if _, err := c.ListServices(ctx, ""); err != nil || s.uri != "/v1/services" {
		t.Errorf("ListServices all: %v %+v", err, s)
	}

	c, s = recorder(t, 200, v1.ServiceDetail{Service: v1.Service{Metadata: v1.ObjectMeta{Name: "web"}}})
	d, err := c.GetService(ctx, "default", "web")
	if err != nil || s.method != "GET" || s.uri != "/v1/services/default/web" || d.Service.Metadata.Name != "web" {
		t.Errorf("GetService: %v %+v", err, s)
	}

	c, s = recorder(t, 200, struct{}{})
	if err := c.DeleteService(ctx, "default", "web"); err != nil || s.method != "DELETE" || s.uri != "/v1/services/default/web" {
		t.Errorf("DeleteService: %v %+v", err, s)
	}

	c, s = recorder(t, 200, v1.Container{Name: "app", Labels: map[string]string{"app": "web"}})
	ctr, err := c.LabelContainer(ctx, "app", v1.LabelUpdate{Set: map[string]string{"app": "web"}, Remove: []string{"old"}, Overwrite: true})
	if err != nil || s.method != "POST" || s.uri != "/v1/containers/app/labels" || ctr.Labels["app"] != "web" {
		t.Errorf("LabelContainer: %v %+v", err, s)
	}
	var upd v1.LabelUpdate
	if err := json.Unmarshal(s.body, &upd); err != nil || !upd.Overwrite || upd.Remove[0] != "old" || upd.Set["app"] != "web" {
		t.Errorf("LabelContainer body %s", s.body)
	}
}

func TestServiceNotFound(t *testing.T) {
	c, _ := recorder(t, 404, v1.Error{Code: v1.CodeNotFound, Message: `service "default/web" not found`})
	_, err := c.GetService(context.Background(), "default", "web")
	if !v1.IsNotFound(err) {
		t.Fatalf("err = %v, want a not-found *v1.Error", err)
	}
}
