package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dialN connects "ADDR,N" N times (each a new connection, so a new load
// balancing decision) and prints the first word of each greeting: the
// server's host name, or "FAIL" and why. Names are resolved with the
// container's resolv.conf search list, as applications do.
func dialN(arg string) {
	addr, count, _ := strings.Cut(arg, ",")
	n, err := strconv.Atoi(count)
	if err != nil {
		n = 1
	}
	d := net.Dialer{Timeout: time.Second, Resolver: &net.Resolver{PreferGo: true}}
	for range n {
		start := time.Now()
		var c net.Conn
		var err error
		if strings.HasPrefix(addr, "udp:") {
			c, err = d.Dial("udp", strings.TrimPrefix(addr, "udp:"))
		} else {
			c, err = d.Dial("tcp", strings.TrimPrefix(addr, "tcp:"))
		}
		if err != nil {
			fmt.Println("FAIL", err, time.Since(start).Round(time.Millisecond))
			continue
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if strings.HasPrefix(addr, "udp:") {
			_, _ = c.Write([]byte("?"))
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			fmt.Println("FAIL read:", err)
			continue
		}
		fmt.Println(strings.Fields(line)[0])
	}
}

// lookup resolves NAME through the container's resolv.conf (search list and
// ndots included) and prints the sorted addresses, one per line.
func lookup(name string) {
	r := &net.Resolver{PreferGo: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		fmt.Println(a)
	}
}

// readyServe serves "PORT,HEALTHPORT,READYFILE": the greeting of serve on
// PORT, and HTTP on HEALTHPORT where GET /healthz answers 200 while
// READYFILE exists and 503 otherwise.
func readyServe(arg string) {
	f := strings.Split(arg, ",")
	if len(f) != 3 {
		fmt.Println("FAIL usage: readyserve PORT,HEALTHPORT,READYFILE")
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(f[2]); err != nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", ":"+f[1])
	if err != nil {
		fmt.Println("FAIL listen:", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, mux) }()
	serve(f[0])
}
