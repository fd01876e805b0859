package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/dns"
	"github.com/knit-net/knit/internal/driver"
	"github.com/knit-net/knit/internal/runner"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

// fakeKernel is every seam of the controller at once: runtime, network
// namespaces, networks, driver, data plane and DNS. It records calls
// (sorted per sync: published ports go to the data plane concurrently
// with the veths) and fails the calls it is told to.
type fakeKernel struct {
	mu      sync.Mutex
	calls   []string
	fail    map[string]error
	alive   map[string]bool // container ID → its process runs
	mounted map[string]bool // namespace files in place
	nextPid int
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{fail: map[string]error{}, alive: map[string]bool{}, mounted: map[string]bool{}, nextPid: 100}
}

func (k *fakeKernel) call(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, name)
	return k.fail[name]
}

func (k *fakeKernel) take() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := slices.Sorted(slices.Values(k.calls))
	k.calls = nil
	return strings.Join(s, "; ")
}

// Runtime.
func (k *fakeKernel) Adopt(id string) (int, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return 7, k.alive[id]
}

func (k *fakeKernel) Start(spec runner.Spec) (int, error) {
	if err := k.call("start " + spec.ID); err != nil {
		return 0, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.alive[spec.ID] = true
	k.nextPid++
	return k.nextPid, nil
}

func (k *fakeKernel) Stop(id string, _ time.Duration) error { return k.call("stop " + id) }
func (k *fakeKernel) Kill(id string) error {
	k.mu.Lock()
	delete(k.alive, id)
	k.mu.Unlock()
	return k.call("kill " + id)
}
func (k *fakeKernel) Remove(id string) error { return k.call("remove " + id) }

// Namespaces.
func (k *fakeKernel) Create(path string) error {
	if err := k.call("netns create " + filepath.Base(path)); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mounted[path] = true
	return nil
}

func (k *fakeKernel) Delete(path string) error {
	k.mu.Lock()
	delete(k.mounted, path)
	k.mu.Unlock()
	return k.call("netns delete " + filepath.Base(path))
}

func (k *fakeKernel) Mounted(path string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mounted[path], nil
}

// Networks, driver, data plane, DNS.
func (k *fakeKernel) Ensure(n *v1.Network) error      { return k.call("network " + n.Name) }
func (k *fakeKernel) EnsureNetwork(*v1.Network) error { return errors.New("not a container call") }
func (k *fakeKernel) DeleteNetwork(*v1.Network) error { return errors.New("not a container call") }
func (k *fakeKernel) EnsureEndpoint(ep driver.Endpoint) error {
	return k.call(fmt.Sprintf("endpoint %s %s gw=%v", ep.Spec.HostVeth, ep.Spec.Interface, ep.Gateways))
}
func (k *fakeKernel) DeleteEndpoint(ep driver.Endpoint) error {
	return k.call("delete endpoint " + ep.Spec.HostVeth)
}
func (k *fakeKernel) SetPorts(id string, ps []ports.Port) error {
	return k.call(fmt.Sprintf("ports %s %v", id, ps))
}
func (k *fakeKernel) SetContainer(c dns.Container) { k.call("dns " + c.Name) }
func (k *fakeKernel) DeleteContainer(id string)    { k.call("dns delete " + id) }

// harness is a controller on a memory store and a fakeKernel.
type harness struct {
	t   *testing.T
	st  store.Store
	k   *fakeKernel
	c   *Controller
	dir string
}

func newHarness(t *testing.T, st store.Store, k *fakeKernel, dir string) *harness {
	c := New(Options{Store: st, Runtime: k, Networks: k, Dataplane: k, Namespaces: k, DNS: k,
		Drivers: map[string]driver.Driver{v1.DriverBridge: k}, NetNSDir: dir,
		HostResolvConf: filepath.Join(dir, "no-resolv.conf"), Logger: slog.New(slog.DiscardHandler)})
	return &harness{t: t, st: st, k: k, c: c, dir: dir}
}

// put writes ctr (its generation bumped, as the API does) and returns it.
func (h *harness) put(ctr *v1.Container) {
	h.t.Helper()
	_, err := h.st.Update(context.Background(), func(tx store.Tx) error { return state.PutContainer(tx, ctr) })
	if err != nil {
		h.t.Fatal(err)
	}
}

// sync runs Sync on the stored record of name and returns its error and
// the record after it (nil when deleted).
func (h *harness) sync(name string) (error, *v1.Container) {
	h.t.Helper()
	ctx := context.Background()
	var b []byte
	if err := h.st.View(ctx, func(tx store.Tx) (err error) { b, _, err = tx.Get(state.ContainerKey(name)); return err }); err != nil {
		h.t.Fatal(err)
	}
	err := h.c.Sync(ctx, state.ContainerKey(name), b)
	return err, h.get(name)
}

// get reads the stored record of name (nil: none).
func (h *harness) get(name string) *v1.Container {
	h.t.Helper()
	var cur *v1.Container
	if err := h.st.View(context.Background(), func(tx store.Tx) (err error) { cur, err = state.GetContainer(tx, name); return err }); err != nil {
		h.t.Fatal(err)
	}
	return cur
}

var front = &v1.Network{ID: "f0f0f0f0f0f0", Name: "front", Driver: v1.DriverBridge, Bridge: "kn-f0f0f0f0",
	Subnets: []v1.Subnet{{Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}}}

var back = &v1.Network{ID: "b0b0b0b0b0b0", Name: "back", Driver: v1.DriverBridge, Bridge: "kn-b0b0b0b0", Internal: true,
	Subnets: []v1.Subnet{{Subnet: netip.MustParsePrefix("10.2.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")}}}

func endpoint(n *v1.Network, idx int, addr string) v1.Endpoint {
	return v1.Endpoint{Network: n.Name, NetworkID: n.ID, Interface: fmt.Sprint("eth", idx),
		HostVeth: fmt.Sprint("knvc0ffee00-", idx), Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}
}

// TestSyncTransitions feeds one container through its life and checks
// the calls each sync makes and the status it writes: start, a sync that
// changes nothing, connect and disconnect, an endpoint that fails and
// then recovers (the error shown and cleared), an exit (teardown,
// addresses released), removal; then a restarted daemon adopting a
// running container, a namespace file gone behind knit's back, a process
// that died while the daemon was down, and a start that fails.
func TestSyncTransitions(t *testing.T) {
	st := memstore.New()
	k := newFakeKernel()
	h := newHarness(t, st, k, t.TempDir())
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		return errors.Join(state.PutNetwork(tx, front), state.PutNetwork(tx, back))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctr := &v1.Container{ID: "c0ffee0000000000", Name: "web", Hostname: "web", Command: []string{"sleep", "1"},
		NetworkMode: v1.DriverBridge, Generation: 1, Endpoints: []v1.Endpoint{endpoint(front, 0, "10.1.0.2/24")},
		Ports:  []v1.PortMapping{{Protocol: "tcp", HostPort: 8080, ContainerPort: 80}},
		Status: v1.ContainerStatus{State: v1.StateCreated}}
	id := ctr.ID
	ep0 := "endpoint knvc0ffee00-0 eth0 gw=[10.1.0.1]"
	ports0 := "ports " + id + " [tcp *:8080 -> 10.1.0.2:80]"
	type step struct {
		name      string
		edit      func(c *v1.Container)
		before    func()
		wantCalls string
		wantErr   string
		want      func(c *v1.Container) string // "" when right
	}
	state := func(want string, gen int64, errText string) func(c *v1.Container) string {
		return func(c *v1.Container) string {
			if c == nil {
				return "record deleted"
			}
			if c.Status.State != want || c.Status.ObservedGeneration != gen || c.Status.Error != errText {
				return fmt.Sprintf("status %+v, want state %s, observed generation %d, error %q", c.Status, want, gen, errText)
			}
			return ""
		}
	}
	steps := []step{
		{name: "start", wantCalls: strings.Join([]string{"dns web", ep0, "netns create " + id, "network front", ports0, "start " + id}, "; "),
			want: state(v1.StateRunning, 1, "")},
		{name: "nothing changed", wantCalls: "dns web; " + ports0, want: state(v1.StateRunning, 1, "")},
		{name: "connect back", edit: func(c *v1.Container) {
			c.Generation = 2
			c.Endpoints = append(c.Endpoints, endpoint(back, 1, "10.2.0.2/24"))
		}, wantCalls: "dns web; endpoint knvc0ffee00-1 eth1 gw=[]; network back; " + ports0, want: state(v1.StateRunning, 2, "")},
		{name: "disconnect back", edit: func(c *v1.Container) {
			c.Generation = 3
			c.Endpoints = c.Endpoints[:1]
		}, wantCalls: "delete endpoint knvc0ffee00-1; dns web; " + ports0, want: state(v1.StateRunning, 3, "")},
		{name: "an endpoint fails", edit: func(c *v1.Container) {
			c.Generation = 4
			c.Endpoints = append(c.Endpoints, endpoint(back, 1, "10.2.0.2/24"))
		}, before: func() { k.fail["endpoint knvc0ffee00-1 eth1 gw=[]"] = errors.New("no such bridge") },
			wantCalls: "dns web; endpoint knvc0ffee00-1 eth1 gw=[]; network back; " + ports0,
			wantErr:   `interface eth1 on network "back": no such bridge`,
			want:      state(v1.StateRunning, 4, `interface eth1 on network "back": no such bridge`)},
		{name: "it recovers", before: func() { clear(k.fail) },
			wantCalls: "dns web; endpoint knvc0ffee00-1 eth1 gw=[]; network back; " + ports0, want: state(v1.StateRunning, 4, "")},
		{name: "the process exits", before: func() { k.Kill(id); k.take(); h.c.OnExit(id, 3) },
			wantCalls: "delete endpoint knvc0ffee00-0; delete endpoint knvc0ffee00-1; dns delete " + id + "; netns delete " + id + "; ports " + id + " []",
			want: func(c *v1.Container) string {
				if s := state(v1.StateExited, 4, "")(c); s != "" || c.Status.ExitCode != 3 || len(c.Endpoints[0].Addresses) != 0 {
					return fmt.Sprintf("%s; exit code %d, addresses %v", s, c.Status.ExitCode, c.Endpoints[0].Addresses)
				}
				return ""
			}},
		{name: "removed", edit: func(c *v1.Container) { c.Deleting = true },
			wantCalls: "delete endpoint knvc0ffee00-0; delete endpoint knvc0ffee00-1; dns delete " + id + "; kill " + id + "; netns delete " + id + "; ports " + id + " []; remove " + id,
			want:      func(c *v1.Container) string { return map[bool]string{true: "", false: "record still there"}[c == nil] }},
	}
	h.put(ctr)
	for _, s := range steps {
		if s.edit != nil { // the stored record, edited as the API would
			cur := h.get(ctr.Name)
			s.edit(cur)
			h.put(cur)
		}
		if s.before != nil {
			s.before()
		}
		err, cur := h.sync(ctr.Name)
		switch {
		case s.wantErr == "" && err != nil:
			t.Errorf("%s: Sync = %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Errorf("%s: Sync = %v, want an error containing %q", s.name, err, s.wantErr)
		}
		if got := k.take(); got != s.wantCalls {
			t.Errorf("%s: calls\n  %s\nwant\n  %s", s.name, got, s.wantCalls)
		}
		if msg := s.want(cur); msg != "" {
			t.Errorf("%s: %s", s.name, msg)
		}
	}
}

// TestRestartTransitions: a daemon that starts afresh (a new controller
// on the same store and kernel) adopts a running container without
// restarting it; finds a namespace file gone behind its back and says
// what to do; records a process that died while it was down; and turns a
// start that fails into an exited container with the reason, its kernel
// objects removed.
func TestRestartTransitions(t *testing.T) {
	st := memstore.New()
	k := newFakeKernel()
	dir := t.TempDir()
	_, err := st.Update(context.Background(), func(tx store.Tx) error { return state.PutNetwork(tx, front) })
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name, id string) *v1.Container {
		return &v1.Container{ID: id, Name: name, Hostname: name, Command: []string{"sleep", "1"},
			NetworkMode: v1.DriverBridge, Generation: 1, Endpoints: []v1.Endpoint{endpoint(front, 0, "10.1.0.2/24")},
			Status: v1.ContainerStatus{State: v1.StateRunning, ObservedGeneration: 1}}
	}
	old := newHarness(t, st, k, dir)
	adopted, lost, dead := mk("adopted", "aaaa000000000000"), mk("lost", "bbbb000000000000"), mk("dead", "cccc000000000000")
	for _, c := range []*v1.Container{adopted, lost, dead} {
		old.put(c)
		k.alive[c.ID] = c != dead
		k.mounted[filepath.Join(dir, c.ID)] = c != lost
	}
	h := newHarness(t, st, k, dir) // the restarted daemon
	for _, tc := range []struct {
		name, wantCalls, wantErr, wantState string
	}{
		{"adopted", "dns adopted; endpoint knvc0ffee00-0 eth0 gw=[10.1.0.1]; network front; ports aaaa000000000000 []", "", v1.StateRunning},
		{"lost", "", "network namespace file " + filepath.Join(dir, lost.ID) + " is gone while the process runs; remove the container (knit rm -f lost) and run it again", v1.StateRunning},
		{"dead", "delete endpoint knvc0ffee00-0; dns delete cccc000000000000; netns delete cccc000000000000; ports cccc000000000000 []", "", v1.StateExited},
	} {
		err, cur := h.sync(tc.name)
		if (tc.wantErr == "") != (err == nil) || err != nil && err.Error() != tc.wantErr {
			t.Errorf("%s: Sync = %v, want %q", tc.name, err, tc.wantErr)
		}
		if got := k.take(); got != tc.wantCalls {
			t.Errorf("%s: calls\n  %s\nwant\n  %s", tc.name, got, tc.wantCalls)
		}
		if cur.Status.State != tc.wantState || cur.Status.Error != tc.wantErr {
			t.Errorf("%s: status %+v, want %s with error %q", tc.name, cur.Status, tc.wantState, tc.wantErr)
		}
	}
	if !h.c.Applied()["knvc0ffee00-0"] || !h.c.LiveNetNS()[adopted.ID] || h.c.LiveNetNS()[lost.ID] {
		t.Errorf("kept from pruning: veths %v, namespaces %v", h.c.Applied(), h.c.LiveNetNS())
	}

	failing := mk("failing", "dddd000000000000")
	failing.Status = v1.ContainerStatus{State: v1.StateCreated}
	h.put(failing)
	k.fail["start "+failing.ID] = errors.New(`exec "sleep": not found`)
	err, cur := h.sync("failing")
	if err != nil {
		t.Errorf("a failed start is recorded, not retried: Sync = %v", err)
	}
	if got, want := k.take(), "delete endpoint knvc0ffee00-0; dns delete dddd000000000000; dns failing; endpoint knvc0ffee00-0 eth0 gw=[10.1.0.1]; netns create dddd000000000000; netns delete dddd000000000000; network front; ports dddd000000000000 []; ports dddd000000000000 []; start dddd000000000000"; got != want {
		t.Errorf("failed start: calls\n  %s\nwant\n  %s", got, want)
	}
	if cur.Status.State != v1.StateExited || cur.Status.ExitCode != 127 || !strings.Contains(cur.Status.Error, "not found") {
		t.Errorf("failed start: status %+v", cur.Status)
	}

	// Pruning after the restart: every namespace file but the adopted
	// container's goes.
	for _, id := range []string{adopted.ID, lost.ID, dead.ID, failing.ID, "eeee000000000000"} {
		if err := os.WriteFile(filepath.Join(dir, id), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.c.PruneNetNS(); err != nil {
		t.Fatal(err)
	}
	if got, want := k.take(), "netns delete bbbb000000000000; netns delete cccc000000000000; netns delete dddd000000000000; netns delete eeee000000000000"; got != want {
		t.Errorf("pruning: calls\n  %s\nwant\n  %s", got, want)
	}
}
