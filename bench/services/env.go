package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// env is the run's three namespaces and the backend's listening socket.
type env struct {
	host, client, backend *netNS
	ln                    net.Listener
}

func newEnv() (*env, error) {
	e := &env{}
	var err error
	for _, x := range []struct {
		ns   **netNS
		role string
	}{{&e.host, "host"}, {&e.client, "cli"}, {&e.backend, "be"}} {
		if *x.ns, err = newNS(x.role); err != nil {
			e.close()
			return nil, err
		}
	}
	if err := e.wire(); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) wire() error {
	if err := e.host.sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	if err := veth(e.host, "kb-cli", "172.16.0.1/24", e.client, "172.16.0.2/24"); err != nil {
		return err
	}
	var addrs []string
	for i := range 10 {
		addrs = append(addrs, fmt.Sprintf("172.16.1.%d/24", 2+i))
	}
	if err := veth(e.host, "kb-be", "172.16.1.1/24", e.backend, addrs...); err != nil {
		return err
	}
	err := e.backend.do(func() error {
		var err error
		e.ln, err = net.Listen("tcp4", ":8080")
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in the backend namespace: %w", err)
	}
	go func() {
		for {
			c, err := e.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}

func (e *env) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	for _, ns := range []*netNS{e.client, e.backend, e.host} {
		if ns != nil {
			_ = ns.close()
		}
	}
}

// connectLatency connects from the client namespace to "to" n times, one
// connection at a time on a blocking socket, and returns how long each
// connect() took: the SYN's way through the rules (first packet: the nat
// chains run) and the SYN-ACK's way back. Each connection is reset at
// close (SO_LINGER 0), so that no TIME_WAIT builds up. 100 untimed
// connections warm up first.
func (e *env) connectLatency(to netip.AddrPort, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	err := e.client.do(func() error {
		for i := range n + 100 {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			start := time.Now()
			err = unix.Connect(fd, sa)
			took := time.Since(start)
			_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("connect %s: %w", to, err)
			}
			if i >= 100 {
				out = append(out, took)
			}
		}
		return nil
	})
	if errors.Is(err, unix.ECONNREFUSED) {
		err = fmt.Errorf("%w (the service has no endpoint in the table?)", err)
	}
	return out, err
}
