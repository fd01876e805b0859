package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
)

// startUpstreams runs two name servers in the outside namespace: the host's
// resolver at 198.51.100.2 (the harness's resolv.conf) and a second one at
// 198.51.100.3 for --dns. Each answers example.test with its own address,
// and big.test with more records than fit a small UDP answer.
func (h *Host) startUpstreams() {
	t := h.t
	down, err := h.Outside.Netlink.LinkByName("kt-down")
	must(t, err)
	addr, _ := netlink.ParseAddr("198.51.100.3/24")
	must(t, h.Outside.Netlink.AddrAdd(down, addr))
	for ip, answer := range map[string]string{"198.51.100.2": "203.0.113.7", "198.51.100.3": "203.0.113.8"} {
		handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			q := r.Question[0]
			switch strings.ToLower(q.Name) {
			case "example.test.":
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(answer)})
			case "big.test.":
				for i := range 60 {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 9, 0, byte(i))})
				}
				if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
					m.Truncate(512)
				}
			default:
				m.Rcode = dns.RcodeNameError
			}
			_ = w.WriteMsg(m)
		})
		for _, network := range []string{"udp", "tcp"} {
			srv := &dns.Server{Addr: ip + ":53", Net: network, Handler: handler}
			var err error
			h.Outside.Do(t, func() {
				if network == "udp" {
					srv.PacketConn, err = net.ListenPacket("udp", srv.Addr)
				} else {
					srv.Listener, err = net.Listen("tcp", srv.Addr)
				}
			})
			must(t, err)
			go func() { _ = srv.ActivateAndServe() }()
			t.Cleanup(func() { _ = srv.Shutdown() })
		}
	}
}

// resolve asks from inside a container and returns the rcode and answers.
func (h *Host) resolve(from, query string) (string, []string) {
	h.t.Helper()
	out, err := h.try("exec", from, "--", bins.probe, "resolve", query)
	if err != nil {
		h.t.Fatalf("resolve %s from %s: %v", query, from, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rcode := strings.Fields(lines[0])[0]
	var answers []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		answers = append(answers, f[0]+" "+f[1])
	}
	return rcode, answers
}

func TestDNS(t *testing.T) {
	h := newHost(t)
	h.startUpstreams()
	h.knit("network", "create", "frontend", "--ipv6")
	h.knit("network", "create", "backend", "--internal")
	h.knit("run", "-d", "--name", "web", "--hostname", "webhost", "--network", "frontend", "--network", "backend", "--", "sleep", "300")
	h.knit("run", "-d", "--name", "app", "--network", "backend", "--alias", "svc", "--", "sleep", "300")
	h.knit("run", "-d", "--name", "db", "--network", "backend", "--alias", "svc", "--alias", "database", "--", "sleep", "300")
	h.knit("run", "-d", "--name", "x", "--network", "frontend", "--dns", "198.51.100.3", "--dns-search", "corp.test",
		"--dns-option", "ndots:2", "--add-host", "api.local:192.168.1.100", "--", "sleep", "300")
	appIP, dbIP, webBack := h.ip("app", "backend"), h.ip("db", "backend"), h.ip("web", "backend")

	expect := func(from, query, wantRcode string, want ...string) {
		t.Helper()
		rcode, answers := h.resolve(from, query)
		if rcode != wantRcode || strings.Join(answers, ",") != strings.Join(want, ",") {
			t.Errorf("%s asks %s: %s %v; want %s %v", from, query, rcode, answers, wantRcode, want)
		}
	}
	expect("app", "db", "NOERROR", "A "+dbIP)
	expect("app", "DB", "NOERROR", "A "+dbIP)       // case-insensitive
	expect("app", "database", "NOERROR", "A "+dbIP) // alias
	expect("app", "web", "NOERROR", "A "+webBack)   // the address on the shared network
	expect("app", "webhost", "NOERROR", "A "+webBack)
	expect("x", "app", "NXDOMAIN") // not on a shared network
	expect("x", "web", "NOERROR", "A "+h.ip("web", "frontend"))
	expect("app", appIP+"/PTR", "NOERROR", "PTR app.")
	expect("app", "db/AAAA", "NOERROR") // no IPv6 on backend: no data

	// An alias shared by two containers answers both, rotating.
	_, first := h.resolve("web", "svc")
	_, second := h.resolve("web", "svc")
	if len(first) != 2 || len(second) != 2 || first[0] == second[0] {
		t.Errorf("svc answers %v then %v; want both addresses, rotating", first, second)
	}
	// AAAA on a dual-stack network.
	if rcode, ans := h.resolve("x", "web/AAAA"); rcode != "NOERROR" || len(ans) != 1 || !strings.HasPrefix(ans[0], "AAAA ") {
		t.Errorf("web/AAAA from x: %s %v", rcode, ans)
	}

	// Forwarding: host upstream; the container's --dns; TCP after truncation.
	expect("web", "example.test", "NOERROR", "A 203.0.113.7")
	expect("x", "example.test", "NOERROR", "A 203.0.113.8")
	if out := h.knit("exec", "web", "--", bins.probe, "resolve", "big.test@tcp"); strings.Count(out, "\nA ") != 60 {
		t.Errorf("big.test over TCP: %s", out)
	}
	// Only internal networks: outside names are refused at once.
	expect("app", "example.test", "REFUSED")

	// Files.
	resolv := h.knit("exec", "x", "--", "cat", "/etc/resolv.conf")
	var nets []v1.Network
	must(t, json.Unmarshal([]byte(h.knit("network", "inspect", "frontend")), &nets))
	gw := nets[0].Subnets[0].Gateway.String()
	// Kubernetes' search domains come first; a given ndots is kept.
	for _, want := range []string{"nameserver " + gw, "search default.svc.cluster.local svc.cluster.local cluster.local corp.test\n", "options ndots:2\n"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("x's resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if hosts := h.knit("exec", "x", "--", "cat", "/etc/hosts"); !strings.Contains(hosts, "192.168.1.100\tapi.local") {
		t.Errorf("--add-host missing:\n%s", hosts)
	}

	// Names go with the container and come back with new ones; knitd restarts keep them.
	h.knit("stop", "-t", "0", "db")
	expect("web", "db", "NXDOMAIN") // unknown now: forwarded, and the upstream does not know it either
	h.killKnitd()
	h.startKnitd()
	expect("app", "svc", "NOERROR", "A "+appIP)
	h.knit("run", "-d", "--name", "db2", "--network", "backend", "--alias", "database", "--", "sleep", "300")
	expect("app", "database", "NOERROR", "A "+h.ip("db2", "backend"))
}
