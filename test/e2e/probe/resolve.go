package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolve sends one query, as the container's resolver would, and prints
// "RCODE" then one answer per line ("A 10.1.0.2", "PTR app.").
func resolve(arg string) {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(conf.Servers) == 0 {
		fmt.Println("FAIL resolv.conf:", err)
		os.Exit(1)
	}
	name, network, _ := strings.Cut(arg, "@")
	name, typ, _ := strings.Cut(name, "/")
	qtype := dns.TypeA
	if typ != "" {
		qtype = dns.StringToType[strings.ToUpper(typ)]
	}
	if qtype == dns.TypePTR && !strings.HasSuffix(name, ".arpa") {
		name, _ = dns.ReverseAddr(name)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	if network == "" {
		c.Net = "udp"
	}
	start := time.Now()
	r, _, err := c.Exchange(m, conf.Servers[0]+":"+conf.Port)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	fmt.Println(dns.RcodeToString[r.Rcode], time.Since(start).Round(time.Millisecond))
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			fmt.Println("A", v.A, v.Hdr.Ttl)
		case *dns.AAAA:
			fmt.Println("AAAA", v.AAAA, v.Hdr.Ttl)
		case *dns.PTR:
			fmt.Println("PTR", v.Ptr, v.Hdr.Ttl)
		default:
			fmt.Println(dns.TypeToString[rr.Header().Rrtype], strings.Join(strings.Fields(rr.String())[4:], " "))
		}
	}
}
