// Package e2e drives the real knitd and knit binaries. Each test gets a
// throwaway "host" network namespace with an uplink to an "outside"
// namespace, runs knitd inside the host namespace (entering only its network
// namespace, so container namespace files stay visible), and uses the CLI
// like a user would. Everything is removed when the test ends.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

var bins struct{ knitd, knit, probe string }

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped: needs root (network namespaces, links, nftables)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "knit-e2e-bin")
	if err != nil {
		panic(err)
	}
	bins.knitd, bins.knit, bins.probe = filepath.Join(dir, "knitd"), filepath.Join(dir, "knit"), filepath.Join(dir, "probe")
	for out, pkg := range map[string]string{bins.knitd: "./cmd/knitd", bins.knit: "./cmd/knit", bins.probe: "./test/e2e/probe"} {
		args := []string{"build", "-o", out}
		if raceEnabled && pkg != "./test/e2e/probe" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Host is a test "host": a namespace running knitd, with an uplink to an
// outside namespace that serves TCP on OutsideAddr.
type Host struct {
	t       *testing.T
	NS      *nstest.NS
	Outside *nstest.NS
	dir     string
	socket  string
	knitd   *exec.Cmd
	logFile *os.File
	// UplinkIP is the host's address towards the outside; OutsideAddr is the
	// outside server.
	UplinkIP, OutsideAddr string
	// seen receives the client address of each connection to the outside server.
	seen chan string
}

func newHost(t *testing.T) *Host {
	t.Helper()
	h := &Host{t: t, NS: nstest.New(t, "host"), Outside: nstest.New(t, "out"), dir: t.TempDir(), seen: make(chan string, 100)}
	h.socket = filepath.Join(h.dir, "knit.sock")
	h.UplinkIP, h.OutsideAddr = "198.51.100.1", "198.51.100.2:9000"
	h.wireUplink()
	h.startKnitd()
	t.Cleanup(h.cleanup)
	return h
}

// wireUplink connects host and outside with a veth and routes the host's
// default route through it.
func (h *Host) wireUplink() {
	t := h.t
	la := netlink.NewLinkAttrs()
	la.Name = "kt-up"
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "kt-down", PeerNamespace: netlink.NsFd(h.Outside.Handle)}
	must(t, h.NS.Netlink.LinkAdd(veth))
	up, err := h.NS.Netlink.LinkByName("kt-up")
	must(t, err)
	addr, _ := netlink.ParseAddr(h.UplinkIP + "/24")
	must(t, h.NS.Netlink.AddrAdd(up, addr))
	must(t, h.NS.Netlink.LinkSetUp(up))
	down, err := h.Outside.Netlink.LinkByName("kt-down")
	must(t, err)
	oaddr, _ := netlink.ParseAddr("198.51.100.2/24")
	must(t, h.Outside.Netlink.AddrAdd(down, oaddr))
	must(t, h.Outside.Netlink.LinkSetUp(down))
	_, dst, _ := net.ParseCIDR("0.0.0.0/0")
	must(t, h.NS.Netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: dst, Gw: net.ParseIP("198.51.100.2")}))
	var ln net.Listener
	h.Outside.Do(t, func() { ln, err = net.Listen("tcp", h.OutsideAddr) })
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case h.seen <- c.RemoteAddr().String():
			default:
			}
			fmt.Fprintf(c, "outside %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
}

func (h *Host) startKnitd() {
	t := h.t
	f, err := os.OpenFile(filepath.Join(h.dir, "knitd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	h.logFile = f
	resolv := filepath.Join(h.dir, "resolv.conf")
	must(t, os.WriteFile(resolv, []byte("nameserver 198.51.100.2\nsearch example.test\n"), 0o644))
	cmd := exec.Command("nsenter", "--net="+h.NS.Path, bins.knitd,
		"--state-dir", filepath.Join(h.dir, "state"), "--run-dir", filepath.Join(h.dir, "run"), "--socket", h.socket,
		"--resolv-conf", resolv,
		"--address-pool", "base=10.200.0.0/16,size=24", "--lb-pool", "198.51.100.200/29", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = f, f
	must(t, cmd.Start())
	h.knitd = cmd
	// knitd opens its socket only after recovering what an earlier knitd
	// left, so an answer means it is up and in sync with the kernel.
	if !eventually(t, 30*time.Second, "knitd to answer on its socket", func() error {
		_, err := h.try("network", "ls")
		return err
	}) {
		t.Fatalf("knitd did not come up; its log:\n%s", h.daemonLog())
	}
}

// killKnitd ends knitd the hard way (kill -9), as a crash would.
func (h *Host) killKnitd() {
	_ = h.knitd.Process.Signal(syscall.SIGKILL)
	_ = h.knitd.Wait()
}

func (h *Host) stopKnitd() {
	_ = h.knitd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = h.knitd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.knitd.Process.Kill()
		<-done
	}
}

func (h *Host) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "knitd.log"))
	return string(b)
}

// cleanup removes every container (killing their processes), stops knitd and
// unmounts anything left under the run directory.
func (h *Host) cleanup() {
	if h.knitd.ProcessState == nil {
		if out, err := h.try("ps", "-a", "-q"); err == nil {
			for _, name := range strings.Fields(out) {
				if _, err := h.try("rm", "-f", name); err != nil {
					h.t.Logf("cleanup: rm -f %s: %v", name, err)
				}
			}
		}
		h.stopKnitd()
	}
	files, _ := netns.List(filepath.Join(h.dir, "run", "netns"))
	for _, f := range files {
		_ = netns.Delete(filepath.Join(h.dir, "run", "netns", f))
	}
	_ = syscall.Unmount(filepath.Join(h.dir, "run", "netns"), syscall.MNT_DETACH)
	h.logFile.Close()
	if h.t.Failed() {
		h.t.Logf("knitd log:\n%s", h.daemonLog())
	}
}

// try runs the knit CLI and returns its stdout, or an error with stderr.
func (h *Host) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.knit, append([]string{"--socket", h.socket}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("knit %s: %w: %s%s", strings.Join(args, " "), err, stderr.String(), out)
	}
	return string(out), nil
}

// knit runs the CLI and fails the test on error.
func (h *Host) knit(args ...string) string {
	h.t.Helper()
	out, err := h.try(args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// container returns the inspected container.
func (h *Host) container(name string) v1.Container {
	h.t.Helper()
	var cs []v1.Container
	must(h.t, json.Unmarshal([]byte(h.knit("inspect", name)), &cs))
	return cs[0]
}

// ip returns the container's IPv4 address on a network.
func (h *Host) ip(name, network string) string {
	h.t.Helper()
	for _, ep := range h.container(name).Endpoints {
		if ep.Network == network {
			for _, a := range ep.Addresses {
				if a.Addr().Is4() {
					return a.Addr().String()
				}
			}
		}
	}
	h.t.Fatalf("container %s has no IPv4 address on %s", name, network)
	return ""
}

// serve runs a detached container with probe serving TCP on 8080.
func (h *Host) serve(name string, flags ...string) {
	h.t.Helper()
	args := append([]string{"run", "-d", "--name", name}, flags...)
	h.knit(append(args, "--", bins.probe, "serve", "8080")...)
	h.waitLog(name, "listening")
}

// dial runs probe dial inside a container and reports success and output.
func (h *Host) dial(from, addr string) (string, bool) {
	out, err := h.try("exec", from, "--", bins.probe, "dial", addr)
	return strings.TrimSpace(out), err == nil
}

// waitLog waits until the container has logged want and returns its log.
func (h *Host) waitLog(name, want string) string {
	h.t.Helper()
	var out string
	if !eventually(h.t, 20*time.Second, fmt.Sprintf("container %s to log %q", name, want), func() error {
		var err error
		if out, err = h.try("logs", name); err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("its log so far:\n%s", out)
		}
		return nil
	}) {
		h.t.FailNow()
	}
	return out
}

// holdOKs counts the "ok N" lines that "probe hold" has logged in container
// id (one per ten exchanges, about one a second). It reads the log file that
// the container writes itself, so it works while knitd is down.
func (h *Host) holdOKs(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(h.dir, "run", "containers", id, "log"))
	if err != nil {
		return 0, err
	}
	if strings.Contains(string(b), "FAIL") {
		return 0, fmt.Errorf("the connection broke:\n%s", b)
	}
	return strings.Count(string(b), "ok "), nil
}

// holdAdvances is a condition for eventually: container id's "probe hold"
// logs another "ok" line after the call to holdAdvances.
func (h *Host) holdAdvances(id string) func() error {
	mark, _ := h.holdOKs(id)
	return func() error {
		n, err := h.holdOKs(id)
		if err == nil && n <= mark {
			err = fmt.Errorf("still %d ok lines", n)
		}
		return err
	}
}

// pollInterval is the pause between eventually's attempts.
const pollInterval = 50 * time.Millisecond

// eventually calls cond every pollInterval until it returns nil and then
// returns true. If cond still fails on the first call that starts after
// timeout, eventually reports what was awaited and cond's last error with
// t.Errorf and returns false; callers that cannot go on call t.FailNow.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		last := time.Now().After(deadline)
		err := cond()
		if err == nil {
			return true
		}
		if last {
			t.Errorf("gave up after %v waiting for %s: %v", timeout, what, err)
			return false
		}
		time.Sleep(pollInterval)
	}
}

// links lists the host namespace's link names.
func (h *Host) links() []string {
	ls, err := h.NS.Netlink.LinkList()
	must(h.t, err)
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	return names
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// nft runs the nft binary inside the host namespace (to look, never to change).
func (h *Host) nft(args ...string) string {
	h.t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + h.NS.Path, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("nft %v: %v: %s", args, err, out)
	}
	return string(out)
}

func itoa(i int) string { return fmt.Sprint(i) }
