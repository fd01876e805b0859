package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestCNIAPI drives knitd's CNI endpoints directly (knit-cni is a thin
// client of these): add, idempotent re-add, check, del twice, gc.
func TestCNIAPI(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "pods")
	cl := client.New(h.socket)
	ctx := context.Background()
	pod := nstest.New(t, "pod")
	req := v1.CNIAttach{ContainerID: "ctr-1", NetNS: pod.Path, IfName: "net0", Network: "pods", PodName: "web", PodNamespace: "shop"}
	var res, again v1.CNIResult
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/add", req, &res))
	if res.Container != "web.shop" || res.Interface.Name != "net0" || len(res.IPs) != 1 || len(res.Routes) != 1 || len(res.DNS.Servers) != 1 {
		t.Fatalf("add result: %+v", res)
	}
	if l, err := pod.Netlink.LinkByName("net0"); err != nil || l.Attrs().HardwareAddr.String() != res.Interface.MAC {
		t.Fatalf("net0 in the pod namespace: %v %v", l, err)
	}
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/add", req, &again))
	if again.IPs[0] != res.IPs[0] {
		t.Fatalf("second ADD gave %v, first %v", again.IPs, res.IPs)
	}
	if ps := h.knit("ps"); !strings.Contains(ps, "web.shop") {
		t.Fatalf("knit ps does not show the attachment:\n%s", ps)
	}
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/check", req, &again))

	// GC keeps valid attachments and removes the others.
	req2 := v1.CNIAttach{ContainerID: "ctr-2", NetNS: nstest.New(t, "pod2").Path, IfName: "eth0", Network: "pods"}
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/add", req2, &again))
	var removed []string
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/gc", v1.CNIGC{Network: "pods", Valid: []v1.CNIAttachmentID{{ContainerID: "ctr-1", IfName: "net0"}}}, &removed))
	if strings.Join(removed, ",") != "ctr-2/eth0" {
		t.Fatalf("gc removed %v", removed)
	}

	// DEL with an empty netns, twice, and of something never added.
	req.NetNS = ""
	for range 2 {
		must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/del", req, nil))
	}
	must(t, cl.Do(ctx, http.MethodPost, "/v1/cni/del", v1.CNIAttach{ContainerID: "never", IfName: "eth0"}, nil))
	if err := cl.Do(ctx, http.MethodPost, "/v1/cni/check", req, nil); !v1.IsNotFound(err) {
		t.Fatalf("check after del: %v", err)
	}
	if _, err := pod.Netlink.LinkByName("net0"); err == nil {
		t.Fatal("net0 still in the pod namespace after DEL")
	}
	bad := v1.CNIAttach{ContainerID: "x", NetNS: "/run/netns/does-not-exist", IfName: "eth0", Network: "pods"}
	if err := cl.Do(ctx, http.MethodPost, "/v1/cni/add", bad, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("add with a missing netns: %v", err)
	}
	h.knit("network", "rm", "pods")
	assertClean(t, h)
}
