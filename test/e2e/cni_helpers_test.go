package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// cniBins builds knit-cni once, next to the knit binary (where knit cni
// install looks for it), and a plugin directory holding it as "knit", the
// conflists' type. Both live in TestMain's binary directory and go with it.
var cniBins struct {
	once              sync.Once
	plugin, pluginDir string
	err               error
}

func knitCNI(t *testing.T) (plugin, pluginDir string) {
	t.Helper()
	cniBins.once.Do(func() {
		dir := filepath.Dir(bins.knit)
		cniBins.plugin, cniBins.pluginDir = filepath.Join(dir, "knit-cni"), filepath.Join(dir, "cni-plugins")
		args := []string{"build", "-o", cniBins.plugin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/knit-cni")...)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			cniBins.err = fmt.Errorf("build knit-cni: %w\n%s", err, b)
			return
		}
		if err := os.MkdirAll(cniBins.pluginDir, 0o755); err != nil {
			cniBins.err = err
			return
		}
		// A race-built binary sleeps a second at exit (GORACE atexit_sleep_ms);
		// the wrapper turns that off for the many execs libcni makes.
		wrapper := fmt.Sprintf("#!/bin/sh\nGORACE=atexit_sleep_ms=0 exec %s \"$@\"\n", cniBins.plugin)
		cniBins.err = os.WriteFile(filepath.Join(cniBins.pluginDir, "knit"), []byte(wrapper), 0o755)
	})
	if cniBins.err != nil {
		t.Fatal(cniBins.err)
	}
	return cniBins.plugin, cniBins.pluginDir
}

// conflist is a knit network configuration list for the host's knitd.
func (h *Host) conflist(name, network, cniVersion string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion": %q, "name": %q, "plugins": [{"type": "knit", "network": %q, "socket": %q,
		"capabilities": {"portMappings": true, "ips": true, "mac": true}}]}`, cniVersion, name, network, h.socket))
}

// cniRuntime is a CNI runtime as podman or containerd are: libcni with its
// own result cache.
type cniRuntime struct {
	t    *testing.T
	cfg  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

func newCNIRuntime(t *testing.T, conflist []byte) *cniRuntime {
	t.Helper()
	_, dir := knitCNI(t)
	list, err := libcni.ConfListFromBytes(conflist)
	must(t, err)
	return &cniRuntime{t: t, cfg: libcni.NewCNIConfigWithCacheDir([]string{dir}, t.TempDir(), nil), list: list}
}

func ctx30() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// pod is a container namespace with a CNI identity.
type pod struct {
	*nstest.NS
	id   string
	args [][2]string
	caps map[string]any
}

func newPod(t *testing.T, id, name string) *pod {
	p := &pod{NS: nstest.New(t, "pod"), id: id, caps: map[string]any{}}
	if name != "" {
		p.args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", name}}
	}
	return p
}

func (p *pod) rt() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.Path, IfName: "eth0", Args: p.args, CapabilityArgs: p.caps}
}

func (r *cniRuntime) add(p *pod) (*types100.Result, error) {
	ctx, cancel := ctx30()
	defer cancel()
	res, err := r.cfg.AddNetworkList(ctx, r.list, p.rt())
	if err != nil {
		return nil, err
	}
	return types100.GetResult(res)
}

func (r *cniRuntime) mustAdd(p *pod) *types100.Result {
	r.t.Helper()
	res, err := r.add(p)
	must(r.t, err)
	return res
}

func (r *cniRuntime) check(p *pod) error {
	ctx, cancel := ctx30()
	defer cancel()
	return r.cfg.CheckNetworkList(ctx, r.list, p.rt())
}

func (r *cniRuntime) del(rt *libcni.RuntimeConf) error {
	ctx, cancel := ctx30()
	defer cancel()
	return r.cfg.DelNetworkList(ctx, r.list, rt)
}

// cniContainers maps the CNI container IDs knitd knows to knit's names.
func (h *Host) cniContainers() map[string]string {
	h.t.Helper()
	var cs []v1.Container
	must(h.t, json.Unmarshal([]byte(h.knit("ps", "-a", "-o", "json")), &cs))
	m := map[string]string{}
	for _, c := range cs {
		if c.CNI != nil {
			m[c.CNI.ContainerID] = c.Name
		}
	}
	return m
}

func (h *Host) psNames() string {
	h.t.Helper()
	names := strings.Fields(h.knit("ps", "-a", "-q"))
	sort.Strings(names)
	return strings.Join(names, ",")
}

// cniCode returns the spec error code in err, failing the test when err
// carries none.
func cniCode(t *testing.T, err error) uint {
	t.Helper()
	var te *types.Error
	if err == nil {
		t.Fatal("no error")
	}
	if !asTypesError(err, &te) {
		t.Fatalf("error %v (%T) carries no CNI error code", err, err)
	}
	return te.Code
}

func asTypesError(err error, target **types.Error) bool {
	for err != nil {
		if e, ok := err.(*types.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// execPlugin runs knit-cni directly (no libcni in between, which would
// refuse some bad input itself) and returns its stdout and exit code.
func execPlugin(t *testing.T, env []string, stdin string) (string, int) {
	t.Helper()
	plugin, dir := knitCNI(t)
	cmd := exec.Command(plugin)
	cmd.Env = append([]string{"CNI_PATH=" + dir, "GORACE=atexit_sleep_ms=0"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// serveTCP answers each connection on addr inside ns with "hello from NAME".
func serveTCP(t *testing.T, ns *nstest.NS, addr, name string) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = net.Listen("tcp", addr) })
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %s\n", name)
			c.Close()
		}
	}()
}

// podDial connects from inside ns and returns the first line served.
func podDial(t *testing.T, ns *nstest.NS, addr string) (string, error) {
	t.Helper()
	var line string
	var err error
	ns.Do(t, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		n, rerr := c.Read(b)
		line, err = strings.TrimSpace(string(b[:n])), rerr
	})
	return line, err
}
