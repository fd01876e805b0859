package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	v1 "github.com/knit-net/knit/api/v1"
)

// verifyEndpoint checks, inside the container's namespace, that the
// interface of c's endpoint on network is up and holds every address the API
// answered. It returns a one-line description of what it found.
func verifyEndpoint(nsPath string, c *v1.Container, network string) (string, error) {
	var ep *v1.Endpoint
	for i := range c.Endpoints {
		if c.Endpoints[i].Network == network {
			ep = &c.Endpoints[i]
		}
	}
	if ep == nil || len(ep.Addresses) == 0 {
		return "", fmt.Errorf("the answer for %s has no endpoint with an address on %s", c.Name, network)
	}
	ns, err := vnetns.GetFromPath(nsPath)
	if err != nil {
		return "", fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(ep.Interface)
	if err != nil {
		return "", fmt.Errorf("%s: interface %s: %w", c.Name, ep.Interface, err)
	}
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		return "", fmt.Errorf("%s: interface %s is down", c.Name, ep.Interface)
	}
	addrs, err := nh.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("%s: addresses of %s: %w", c.Name, ep.Interface, err)
	}
	var found []string
	for _, want := range ep.Addresses {
		ok := false
		for _, got := range addrs {
			ones, _ := got.Mask.Size()
			if got.IP.Equal(net.IP(want.Addr().AsSlice())) && ones == want.Bits() {
				ok = true
			}
		}
		if !ok {
			return "", fmt.Errorf("%s: interface %s lacks %s", c.Name, ep.Interface, want)
		}
		found = append(found, want.String())
	}
	return fmt.Sprintf("%s %s up (oper %s) with %s", c.Name, ep.Interface, a.OperState, strings.Join(found, ", ")), nil
}

// memory is knitd's resident memory from /proc/<pid>/status, in KiB: RSS
// in all, Anon (the Go heap and stacks) and File (mapped files: the binary's
// text and the bbolt store).
type memory struct {
	RSS  int64 `json:"rss_kib"`
	Anon int64 `json:"anon_kib"`
	File int64 `json:"file_kib"`
}

func readMemory(pid int) (memory, error) {
	var m memory
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("knitd memory: %w", err)
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), "\t")
		if dst := fields[key]; dst != nil {
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", dst); err != nil {
				return m, fmt.Errorf("knitd memory: parse %s %q: %w", key, rest, err)
			}
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("knitd memory: %w", err)
	}
	if found != len(fields) {
		return m, fmt.Errorf("knitd memory: /proc/%d/status lacks VmRSS, RssAnon or RssFile", pid)
	}
	return m, nil
}
