package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
)

const bridge = "kb-pol"

// env is the run's namespaces: two copies of the same topology, one
// without policy and one with (side), so that traffic can be measured on
// both alternately in short windows, without switching the table between
// measurements.
type env struct {
	sides     [2]*side // without policy, with policy
	subnets   []netip.Prefix
	closeOnce sync.Once
}

// side is a host (knit's table, the bridge) with its client and server
// pods and the server's listeners.
type side struct {
	host, client, server *netNS
	ln                   net.Listener
	iperf                *exec.Cmd
}

func newEnv() (e *env, err error) {
	e = &env{subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/64")}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	for i, tag := range []string{"a", "b"} {
		if e.sides[i], err = newSide(tag); err != nil {
			return e, err
		}
	}
	time.Sleep(200 * time.Millisecond) // iperf3 binds
	return e, nil
}

func newSide(tag string) (s *side, err error) {
	s = &side{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	for _, x := range []struct {
		ns   **netNS
		role string
	}{{&s.host, "host"}, {&s.client, "client"}, {&s.server, "server"}} {
		if *x.ns, err = newNS(tag + "-" + x.role); err != nil {
			return s, err
		}
	}
	var on bool
	if err := s.host.do(func() (err error) { on, err = netpol.BridgeNetfilterOn(); return err }); err != nil {
		return s, err
	}
	if !on {
		return s, errors.New("br_netfilter is off (load it; bridge-nf-call-iptables=1): traffic within the bridge would not meet the policy")
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridge}}
	if err := s.host.nl.LinkAdd(br); err != nil {
		return s, fmt.Errorf("add bridge: %w", err)
	}
	if err := addrUp(s.host.nl, bridge, "10.1.0.1/16"); err != nil {
		return s, err
	}
	if err := podVeth(s.host, br, "kb-client", s.client, clientAddr.String()+"/16"); err != nil {
		return s, err
	}
	if err := podVeth(s.host, br, "kb-server", s.server, serverAddr.String()+"/16"); err != nil {
		return s, err
	}
	// Connections end with a reset (SO_LINGER 0), so no TIME_WAIT piles up.
	if err := s.client.sysctl("net/ipv4/ip_local_port_range", "1024 65535"); err != nil {
		return s, err
	}
	if err := s.server.do(func() (err error) {
		s.ln, err = net.Listen("tcp", net.JoinHostPort(serverAddr.String(), "8080"))
		return err
	}); err != nil {
		return s, fmt.Errorf("listen in server: %w", err)
	}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s.iperf = exec.Command("iperf3", "-s", "-B", serverAddr.String(), "-p", "5201")
	if err := s.server.do(s.iperf.Start); err != nil {
		return s, fmt.Errorf("start iperf3 server: %w", err)
	}
	return s, nil
}

func (e *env) close() {
	e.closeOnce.Do(func() {
		for _, s := range e.sides {
			if s != nil {
				s.close()
			}
		}
	})
}

func (s *side) close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.iperf != nil && s.iperf.Process != nil {
		s.iperf.Process.Kill()
		s.iperf.Wait()
	}
	for _, ns := range []*netNS{s.client, s.server, s.host} {
		if ns != nil {
			ns.close()
		}
	}
}

// connRate opens and resets TCP connections from the client to the server
// with workers clients for d, and returns connections per second.
func (e *side) connRate(workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	deadline := time.Now().Add(d)
	to := net.JoinHostPort(serverAddr.String(), "8080")
	for w := range workers {
		wg.Go(func() {
			errs[w] = e.client.do(func() error {
				for time.Now().Before(deadline) {
					c, err := net.DialTimeout("tcp", to, time.Second)
					if err != nil {
						return fmt.Errorf("connect client → %s: %w", to, err)
					}
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					n.Add(1)
				}
				return nil
			})
		})
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), errors.Join(errs...)
}

// throughput runs one iperf3 TCP stream from the client to the server for
// d and returns the bits per second the server received.
func (e *side) throughput(d time.Duration) (float64, error) {
	var out []byte
	err := e.client.do(func() (err error) {
		out, err = exec.Command("iperf3", "-c", serverAddr.String(), "-p", "5201", "-J",
			"-t", fmt.Sprint(int(d.Seconds()))).Output()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("iperf3 client: %w: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// pct returns the q-quantile of ds (q = 1: the maximum).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[int(q*float64(len(s)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
