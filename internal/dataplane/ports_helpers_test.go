package dataplane

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// namedPort is where serveNamed listens, for TCP and for UDP.
const namedPort = 8081

// serveNamed listens on bind:8081 (bind "" = every address) for TCP and
// UDP in ns and answers every line or datagram with "NAME PEER": which
// server was reached and the client address it saw.
func serveNamed(t *testing.T, ns *nstest.NS, name, bind string) {
	t.Helper()
	serveNamedOn(t, ns, name, bind, namedPort)
}

// serveNamedOn is serveNamed on another port.
func serveNamedOn(t *testing.T, ns *nstest.NS, name, bind string, port int) {
	t.Helper()
	addr := net.JoinHostPort(bind, strconv.Itoa(port))
	var ln net.Listener
	var pc net.PacketConn
	var lerr, perr error
	ns.Do(t, func() {
		ln, lerr = net.Listen("tcp", addr)
		pc, perr = net.ListenPacket("udp", addr)
	})
	must(t, "listen tcp "+addr+" in "+ns.Name, lerr)
	must(t, "listen udp "+addr+" in "+ns.Name, perr)
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				answer := name + " " + c.RemoteAddr().(*net.TCPAddr).IP.String() + "\n"
				for sc := bufio.NewScanner(c); sc.Scan(); {
					if _, err := c.Write([]byte(answer)); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name+" "+from.(*net.UDPAddr).IP.String()+"\n"), from)
		}
	}()
}

// portProbe asks proto ("tcp" or "udp") to:port from the namespace from.
// want is the answer "NAME PEER" expected from serveNamed, or "" when the
// attempt must fail (no connection, or no answer).
type portProbe struct {
	from, proto, to, want string
}

// checkPorts runs the probes concurrently and reports every mismatch.
func (tp *topology) checkPorts(t *testing.T, stage string, probes []portProbe) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			timeout := okTimeout
			if p.want == "" {
				timeout = blockedTimeout
			}
			got, err := askPort(t, tp.ns(p.from), p.proto, p.to, timeout)
			switch {
			case p.want == "" && err == nil:
				t.Errorf("%s: %s → %s/%s answered %q; want no answer", stage, p.from, p.to, p.proto, got)
			case p.want != "" && err != nil:
				t.Errorf("%s: %s → %s/%s: %v; want %q", stage, p.from, p.to, p.proto, err, p.want)
			case p.want != "" && got != p.want:
				t.Errorf("%s: %s → %s/%s answered %q; want %q", stage, p.from, p.to, p.proto, got, p.want)
			}
		})
	}
	wg.Wait()
}

// askPort dials to from inside ns, sends one line and returns the answer.
func askPort(t *testing.T, ns *nstest.NS, proto, to string, timeout time.Duration) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout(proto, to, timeout) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	return exchange(c, timeout)
}

// exchange sends one line on c and reads one line back within timeout.
func exchange(c net.Conn, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// setSysctl writes a /proc/sys file from a thread inside ns, which is how
// per-namespace sysctls are set without exec.
func setSysctl(t *testing.T, ns *nstest.NS, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var err error
	ns.Do(t, func() { err = os.WriteFile(path, []byte(value), 0o644) })
	must(t, "write "+path+" in "+ns.Name, err)
}

// prepareForPorts does what knit's bridge driver and daemon do for
// published ports, which this package does not: route_localnet on the
// bridges (DNAT of 127.0.0.1) and hairpin mode on the container ports (a
// container reaching its own published port comes back out of the bridge
// port it entered by when br_netfilter bridges the DNATed frame). Named
// servers run in a1, a2 and c1.
func (tp *topology) prepareForPorts(t *testing.T) {
	t.Helper()
	for _, br := range []string{"kt-bra", "kt-brc"} {
		setSysctl(t, tp.host, "net.ipv4.conf."+br+".route_localnet", "1")
	}
	for _, name := range []string{"a1", "a2", "c1", "c2"} {
		l, err := tp.host.Netlink.LinkByName("kt-" + name)
		must(t, "find kt-"+name, err)
		must(t, "hairpin on kt-"+name, tp.host.Netlink.LinkSetHairpin(l, true))
		if name != "c2" {
			serveNamed(t, tp.ctr[name], name, "")
		}
	}
}

// mapping is a Port from "proto hostIP hostPort containerIP containerPort"
// (hostIP "*" for a wildcard).
func mapping(t testing.TB, s string) ports.Port {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 5 {
		t.Fatalf("mapping %q: want 5 fields", s)
	}
	hp, err1 := strconv.ParseUint(f[2], 10, 16)
	cp, err2 := strconv.ParseUint(f[4], 10, 16)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("mapping %q: %v", s, err)
	}
	p := ports.Port{Proto: f[0], HostPort: uint16(hp), ContainerIP: netip.MustParseAddr(f[3]), ContainerPort: uint16(cp)}
	if f[1] != "*" {
		p.HostIP = netip.MustParseAddr(f[1])
	}
	return p
}

// be16 encodes a port in network byte order.
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
