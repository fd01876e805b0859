package e2e

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// dialFrom connects from inside ns (the host or the outside namespace) and
// returns the server's greeting.
func dialFrom(t *testing.T, ns *nstest.NS, network, addr string) (string, bool) {
	t.Helper()
	var line string
	var err error
	ns.Do(t, func() {
		var c net.Conn
		c, err = net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if network == "udp" {
			_, _ = c.Write([]byte("?"))
		}
		line, err = bufio.NewReader(c).ReadString('\n')
	})
	return strings.TrimSpace(line), err == nil
}

func TestPublishedPorts(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "web")
	h.knit("network", "create", "other")
	h.knit("run", "-d", "--name", "srv", "--network", "web",
		"-p", "8080:8080", "-p", "127.0.0.1:7070:8080", "-p", "8080", "--", bins.probe, "serve", "8080")
	h.waitLog("srv", "listening")
	h.knit("run", "-d", "--name", "dns", "--network", "web", "-p", "5353:5353/udp", "--", bins.probe, "udpserve", "5353")
	h.waitLog("dns", "listening")
	h.serve("x", "--network", "other")
	srvHost := h.container("srv").Hostname
	hostAddr := h.UplinkIP + ":8080"

	// From another machine: reaches, and the container sees the real client.
	out, ok := dialFrom(t, h.Outside, "tcp", hostAddr)
	if !ok || !strings.HasPrefix(out, srvHost+" 198.51.100.2:") {
		t.Errorf("outside → %s: %q %v; want srv seeing the client 198.51.100.2", hostAddr, out, ok)
	}
	if out, ok := dialFrom(t, h.Outside, "udp", h.UplinkIP+":5353"); !ok || !strings.Contains(out, " 198.51.100.2:") {
		t.Errorf("outside → udp 5353: %q %v", out, ok)
	}
	// From the host itself: its own address, and localhost.
	for _, addr := range []string{hostAddr, "127.0.0.1:8080", "127.0.0.1:7070"} {
		if out, ok := dialFrom(t, h.NS, "tcp", addr); !ok || !strings.HasPrefix(out, srvHost+" ") {
			t.Errorf("host → %s: %q %v", addr, out, ok)
		}
	}
	// A mapping bound to 127.0.0.1 does not answer on other addresses.
	if out, ok := dialFrom(t, h.Outside, "tcp", h.UplinkIP+":7070"); ok {
		t.Errorf("127.0.0.1-bound mapping answered on the uplink: %q", out)
	}
	// From a container on another network, and hairpin to itself.
	if out, ok := h.dial("x", hostAddr); !ok || !strings.HasPrefix(out, srvHost+" ") {
		t.Errorf("container on another network → %s: %q %v", hostAddr, out, ok)
	}
	if out, ok := h.dial("srv", hostAddr); !ok || !strings.HasPrefix(out, srvHost+" ") {
		t.Errorf("hairpin srv → its own published port: %q %v", out, ok)
	}
	// The ephemeral mapping got a port from the dynamic range, shown by knit port.
	ports := h.knit("port", "srv")
	if !strings.Contains(ports, "8080/tcp -> 0.0.0.0:8080") || !strings.Contains(ports, "8080/tcp -> 127.0.0.1:7070") || !strings.Contains(ports, "8080/tcp -> 0.0.0.0:49153") {
		t.Errorf("knit port srv:\n%s", ports)
	}
	if _, ok := dialFrom(t, h.Outside, "tcp", h.UplinkIP+":49153"); !ok {
		t.Errorf("ephemeral port 49153 does not answer")
	}

	// Conflicts: knit's own port, and a port a host process holds.
	if _, err := h.try("run", "-d", "--network", "web", "-p", "8080:80", "--", "sleep", "300"); err == nil || !strings.Contains(err.Error(), `host port 8080/tcp is already in use by container "srv"`) {
		t.Errorf("publishing a taken port: %v", err)
	}
	var ln net.Listener
	var err error
	h.NS.Do(t, func() { ln, err = net.Listen("tcp", ":6000") })
	must(t, err)
	defer ln.Close()
	if _, err := h.try("run", "-d", "--network", "web", "-p", "6000:80", "--", "sleep", "300"); err == nil || !strings.Contains(err.Error(), "host port 6000/tcp is already in use by process") {
		t.Errorf("publishing a port a host process holds: %v", err)
	}
	if _, err := h.try("run", "-d", "--network", "web", "-p", "192.0.2.77:80:80", "--", "sleep", "300"); err == nil || !strings.Contains(err.Error(), "192.0.2.77 is not an address of this host") {
		t.Errorf("publishing on a foreign address: %v", err)
	}
	if ps := h.knit("ps", "-q"); strings.Count(ps, "\n") != 3 {
		t.Errorf("refused runs left containers:\n%s", ps)
	}

	// Removal takes the mapping away.
	h.knit("rm", "-f", "srv")
	if out, ok := dialFrom(t, h.Outside, "tcp", hostAddr); ok {
		t.Errorf("port still answers after rm: %q", out)
	}
	// ... and frees the port for the next container.
	h.knit("run", "-d", "--name", "srv2", "--network", "web", "-p", "8080:8080", "--", bins.probe, "serve", "8080")
	h.waitLog("srv2", "listening")
	if out, ok := dialFrom(t, h.Outside, "tcp", hostAddr); !ok || !strings.HasPrefix(out, h.container("srv2").Hostname) {
		t.Errorf("reused port: %q %v", out, ok)
	}
}

// TestPublishedPortSurvivesRestart holds a connection from outside through a
// published port while knitd is killed and restarted.
func TestPublishedPortSurvivesRestart(t *testing.T) {
	h := newHost(t)
	h.serve("srv", "-p", "8080:8080")
	var c net.Conn
	var err error
	h.Outside.Do(t, func() { c, err = net.DialTimeout("tcp", h.UplinkIP+":8080", time.Second) })
	must(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	echo := func() error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := r.ReadByte()
		return err
	}
	must(t, echo())
	h.killKnitd()
	must(t, echo())
	h.startKnitd()
	// knitd is in sync when it answers (startKnitd), but its loops start
	// only then, and nothing tells when they are idle: sample the
	// connection over a short window to catch them breaking it. A window,
	// not a wait: there is no event to poll for.
	for range 5 {
		if err := echo(); err != nil {
			t.Fatalf("connection through the published port broke across the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := dialFrom(t, h.Outside, "tcp", h.UplinkIP+":8080"); !ok {
		t.Fatal("published port does not answer new connections after restart")
	}
}
