package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// TestCNIBadInput execs knit-cni the way a runtime does, with broken input:
// each answer carries the spec's error code and a message that says what to
// fix, and nothing changes in knitd or in the pod's namespace.
func TestCNIBadInput(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "kc")
	p := newPod(t, "bad", "bad")
	conf := func(version, name, network string) string {
		return fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"knit","network":%q,"socket":%q}`, version, name, network, h.socket)
	}
	env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad", "CNI_NETNS=" + p.Path, "CNI_IFNAME=eth0"}
	without := func(drop string) []string {
		return slices.DeleteFunc(slices.Clone(env), func(s string) bool { return strings.HasPrefix(s, drop+"=") })
	}
	for _, tc := range []struct {
		name  string
		env   []string
		stdin string
		code  uint
		say   string
	}{
		{"malformed config", env, `{"cniVersion":"1.0.0","name":`, types.ErrDecodingFailure, "unmarshal"},
		{"unknown cniVersion", env, conf("9.9.9", "kt", "kc"), types.ErrIncompatibleCNIVersion, "incompatible CNI versions"},
		{"no network name", env, conf("1.0.0", "", "kc"), types.ErrInvalidNetworkConfig, "missing network name"},
		{"bad knit network name", env, conf("1.0.0", "kt", "a/b"), types.ErrInvalidNetworkConfig, `invalid "network"`},
		{"unknown knit network", env, conf("1.0.0", "kt", "nope"), types.ErrInvalidNetworkConfig, "knit network create nope"},
		{"no container ID", without("CNI_CONTAINERID"), conf("1.0.0", "kt", "kc"), types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID"},
		{"no netns", without("CNI_NETNS"), conf("1.0.0", "kt", "kc"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"netns does not exist", append(without("CNI_NETNS"), "CNI_NETNS=/run/netns/kt-does-not-exist"), conf("1.0.0", "kt", "kc"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"netns not a namespace", append(without("CNI_NETNS"), "CNI_NETNS=/etc/hostname"), conf("1.0.0", "kt", "kc"), types.ErrInvalidEnvironmentVariables, "not a network namespace"},
		{"bad static IP", env, strings.TrimSuffix(conf("1.0.0", "kt", "kc"), "}") + `,"runtimeConfig":{"ips":["10.0.0.300"]}}`, types.ErrInvalidNetworkConfig, "static address"},
		{"GC below 1.1.0", append(without("CNI_COMMAND"), "CNI_COMMAND=GC"), conf("1.0.0", "kt", "kc"), types.ErrIncompatibleCNIVersion, "GC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := execPlugin(t, tc.env, tc.stdin)
			var e types.Error
			if code == 0 || json.Unmarshal([]byte(out), &e) != nil {
				t.Fatalf("exit %d, stdout %q: want a CNI error", code, out)
			}
			if e.Code != tc.code || !strings.Contains(e.Error(), tc.say) {
				t.Errorf("error %d %q, want code %d saying %q", e.Code, e.Error(), tc.code, tc.say)
			}
		})
	}
	// Through libcni too: the runtime sees the code.
	r := newCNIRuntime(t, h.conflist("kt-cni", "nope", "1.0.0"))
	if _, err := r.add(p); cniCode(t, err) != types.ErrInvalidNetworkConfig {
		t.Errorf("libcni ADD on an unknown knit network: %v", err)
	}
	if got := h.psNames(); got != "" {
		t.Errorf("knit ps after bad input: %q, want nothing", got)
	}
	if _, err := p.Netlink.LinkByName("eth0"); err == nil {
		t.Error("bad input left eth0 in the pod")
	}
	out, code := execPlugin(t, []string{"CNI_COMMAND=VERSION"}, "")
	var info struct {
		Supported []string `json:"supportedVersions"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || !slices.Contains(info.Supported, "1.1.0") || !slices.Contains(info.Supported, "0.4.0") {
		t.Errorf("VERSION: exit %d %s", code, out)
	}
}

// TestCNIKnitdDown: STATUS says ready while knitd serves and the network
// exists, and answers 50 otherwise; ADD and DEL say how to fix a knitd that
// is not running.
func TestCNIKnitdDown(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "kc")
	r := newCNIRuntime(t, h.conflist("kt-cni", "kc", "1.1.0"))
	ctx, cancel := ctx30()
	defer cancel()
	must(t, r.cfg.GetStatusNetworkList(ctx, r.list))
	missing := newCNIRuntime(t, h.conflist("kt-cni", "nope", "1.1.0"))
	if err := missing.cfg.GetStatusNetworkList(ctx, missing.list); cniCode(t, err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a missing knit network: %v", err)
	}

	h.stopKnitd()
	want := fmt.Sprintf("knitd is not running at %s; start it (knitd) or set \"socket\" in the conflist", h.socket)
	err := r.cfg.GetStatusNetworkList(ctx, r.list)
	if cniCode(t, err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), want) {
		t.Errorf("STATUS with knitd stopped: %v", err)
	}
	p := newPod(t, "down", "down")
	if _, err := r.add(p); cniCode(t, err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), want) {
		t.Errorf("ADD with knitd stopped: %v", err)
	}
	err = r.del(&libcni.RuntimeConf{ContainerID: "down", IfName: "eth0"})
	if cniCode(t, err) != types.ErrTryAgainLater {
		t.Errorf("DEL with knitd stopped: %v", err)
	}
}
