// Command knit-dnsbench serves knit's embedded DNS server (internal/dns) for
// bench/dns/run.sh, loaded with the same name set the peers get: the
// aardvark-dns network file that the peers' script writes with -k DIR. Every
// container in that file (the benchmark client included) is put on one
// network, and -filler more containers on other networks, which the client
// cannot see, make the index as large as a busy host's. It listens on the
// file's first-line addresses until SIGINT or SIGTERM.
//
//	knit-dnsbench -names DIR/aardvark/db-peers-net [-port 53] [-upstream 127.0.0.1:5353] [-filler 1000]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/knit-net/knit/internal/dns"
)

func main() {
	names := flag.String("names", "", "aardvark-dns network file (first line: listen addresses; then <id> <ipv4s> <ipv6s> <names>)")
	port := flag.Uint("port", 53, "port to serve on")
	upstream := flag.String("upstream", "", "default upstream, ADDR:PORT (none: forwarded names get SERVFAIL)")
	filler := flag.Int("filler", 1000, "extra containers on other networks, invisible to the client")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the serving time to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "knit-dnsbench: -cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*names, uint16(*port), *upstream, *filler); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "knit-dnsbench:", err)
		os.Exit(1)
	}
}

func run(path string, port uint16, upstream string, filler int) error {
	listen, cs, err := readNetworkFile(path)
	if err != nil {
		return err
	}
	opts := dns.Options{Port: port, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if upstream != "" {
		up, err := netip.ParseAddrPort(upstream)
		if err != nil {
			return fmt.Errorf("-upstream: %w", err)
		}
		opts.Upstreams = []netip.AddrPort{up}
	}
	heap0 := heapBytes()
	s := dns.New(opts)
	for _, c := range cs {
		s.SetContainer(c)
	}
	for i := range filler {
		s.SetContainer(fillerContainer(i))
	}
	total := len(cs) + filler
	fmt.Fprintf(os.Stderr, "knit-dnsbench: %d containers (%d on the client's network, %d filler), index %.0f bytes per container\n",
		total, len(cs), filler, float64(heapBytes()-heap0)/float64(max(total, 1)))
	if err := s.SetListenAddrs(listen); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "knit-dnsbench: serving on %v port %d, GOMAXPROCS %d\n", listen, port, runtime.GOMAXPROCS(0))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return s.Close()
}

// readNetworkFile reads an aardvark-dns network file: the first line has the
// addresses to listen on (comma-separated); each next line is one container,
// "<id> <ipv4s> <ipv6s> <names>" with comma-separated lists. Its first name
// becomes the container's name, the others aliases; the network is the
// file's name.
func readNetworkFile(path string) ([]netip.Addr, []dns.Container, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read name set: %w", err)
	}
	defer f.Close()
	network := filepath.Base(path)
	var listen []netip.Addr
	var cs []dns.Container
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			for _, a := range list(text) {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return nil, nil, fmt.Errorf("%s:1: listen address: %w", path, err)
				}
				listen = append(listen, ip)
			}
			continue
		}
		if text == "" {
			continue
		}
		f := strings.Split(text, " ")
		if len(f) != 4 {
			return nil, nil, fmt.Errorf("%s:%d: want <id> <ipv4s> <ipv6s> <names>, got %q", path, line, text)
		}
		ep := dns.Endpoint{NetworkID: network}
		for _, a := range append(list(f[1]), list(f[2])...) {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			ep.Addrs = append(ep.Addrs, ip)
		}
		names := list(f[3])
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("%s:%d: no name", path, line)
		}
		ep.Aliases = names[1:]
		cs = append(cs, dns.Container{ID: f[0], Name: names[0], Endpoints: []dns.Endpoint{ep}})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(listen) == 0 {
		return nil, nil, fmt.Errorf("%s: no listen address on the first line", path)
	}
	return listen, cs, nil
}

// fillerContainer i is on network filler-<i/250>, at 10.254.<i/250>.<i%250+1>
// (an address only in the index: nothing sends from it).
func fillerContainer(i int) dns.Container {
	return dns.Container{
		ID:       fmt.Sprintf("filler%06d", i),
		Name:     fmt.Sprintf("fill-%d", i),
		Hostname: fmt.Sprintf("fill-host-%d", i),
		Endpoints: []dns.Endpoint{{
			NetworkID: fmt.Sprintf("filler-%d", i/250),
			Addrs:     []netip.Addr{netip.AddrFrom4([4]byte{10, 254, byte(i / 250), byte(i%250 + 1)})},
			Aliases:   []string{fmt.Sprintf("fill-alias-%d", i)},
		}},
	}
}

func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func heapBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
