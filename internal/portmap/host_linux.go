package portmap

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// socket is one bound socket read from /proc/net.
type socket struct {
	addr  netip.Addr
	port  uint16
	inode string
}

// HostSockets tells who holds a port in the caller's network namespace:
// a listening TCP socket, a bound UDP socket or an SCTP endpoint. It first
// tries to bind the port (microseconds); only a port that is taken costs a
// read of procNet (normally /proc/thread-self/net), whose TCP tables are
// machine-wide and take milliseconds to read. The returned function must run
// on a thread in that namespace.
func HostSockets(procNet string) HostHolder {
	var byProto map[string][]socket
	return func(proto string, ip netip.Addr, port uint16) string {
		if !bindTaken(proto, ip, port) {
			return ""
		}
		if byProto == nil {
			byProto = map[string][]socket{
				"tcp":  append(readProcNet(filepath.Join(procNet, "tcp"), "0A"), readProcNet(filepath.Join(procNet, "tcp6"), "0A")...),
				"udp":  append(readProcNet(filepath.Join(procNet, "udp"), ""), readProcNet(filepath.Join(procNet, "udp6"), "")...),
				"sctp": readSCTP(filepath.Join(procNet, "sctp", "eps")),
			}
		}
		for _, s := range byProto[proto] {
			if s.port != port {
				continue
			}
			if !ip.IsValid() || s.addr.IsUnspecified() || s.addr.Unmap() == ip {
				return owner(s.inode)
			}
		}
		return "" // taken only by a connection's local port, not a listener
	}
}

// bindTaken reports whether binding (proto, ip, port) fails with
// EADDRINUSE. SO_REUSEADDR keeps TIME_WAIT and similar leftovers from
// counting; every address family is tried when ip is unset.
func bindTaken(proto string, ip netip.Addr, port uint16) bool {
	typ, protocol := unix.SOCK_STREAM, 0
	switch proto {
	case "udp":
		typ = unix.SOCK_DGRAM
	case "sctp":
		protocol = unix.IPPROTO_SCTP
	}
	addrs := []netip.Addr{ip}
	if !ip.IsValid() {
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	for _, a := range addrs {
		fam, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(port), Addr: a.As16()})
		if a.Is4() {
			fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
		}
		fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, protocol)
		if err != nil {
			continue // family or protocol not available: nothing can hold it
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if a.Is6() {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		}
		err = unix.Bind(fd, sa)
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return true
		}
	}
	return false
}

// readProcNet parses /proc/net/{tcp,udp}{,6}; state "" accepts every state.
func readProcNet(path, state string) []socket {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || (state != "" && fs[3] != state) {
			continue
		}
		hostHex, portHex, ok := strings.Cut(fs[1], ":")
		port, err := strconv.ParseUint(portHex, 16, 16)
		if !ok || err != nil {
			continue
		}
		addr, ok := parseHexAddr(hostHex)
		if !ok {
			continue
		}
		out = append(out, socket{addr: addr, port: uint16(port), inode: fs[9]})
	}
	return out
}

// parseHexAddr decodes the kernel's hex address: 32-bit words in host
// (little-endian) byte order.
func parseHexAddr(s string) (netip.Addr, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

// readSCTP parses /proc/net/sctp/eps (ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS…).
func readSCTP(path string) []socket {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []socket
	for _, line := range strings.Split(string(data), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) < 9 {
			continue
		}
		port, err := strconv.ParseUint(fs[5], 10, 16)
		if err != nil {
			continue
		}
		for _, a := range fs[8:] {
			if addr, err := netip.ParseAddr(a); err == nil {
				out = append(out, socket{addr: addr, port: uint16(port), inode: fs[7]})
			}
		}
	}
	return out
}

// owner names the process holding the socket inode, by scanning /proc; only
// called for a conflict, so the scan's cost does not matter.
func owner(inode string) string {
	want := "socket:[" + inode + "]"
	pids, _ := os.ReadDir("/proc")
	for _, p := range pids {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if link, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); link == want {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return fmt.Sprintf("process %s (%s) on the host", p.Name(), strings.TrimSpace(string(comm)))
			}
		}
	}
	return "another process on the host"
}
