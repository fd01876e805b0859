package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// multiServe serves "P1,P2,...": TCP and UDP on each port, answering the
// host name (TCP greets, UDP answers each datagram), and logs SCTP INITs
// seen on a raw socket ("sctp SRC DPORT") — the kernel here has no SCTP
// stack, so SCTP reachability is observed one way, at the receiver.
func multiServe(arg string) {
	host, _ := os.Hostname()
	for _, p := range strings.Split(arg, ",") {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Println("FAIL listen:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					continue
				}
				fmt.Fprintf(c, "%s %s\n", host, c.RemoteAddr())
				c.Close()
			}
		}()
		pc, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			fmt.Println("FAIL listen:", err)
			os.Exit(1)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err == nil {
					_, _ = pc.WriteTo([]byte(host+"\n"), from)
				}
			}
		}()
	}
	go sctpListen()
	fmt.Println("listening", arg)
	select {}
}

func sctpListen() {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, 132)
	if err != nil {
		fmt.Println("FAIL sctp raw socket:", err)
		return
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil || n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+12 {
			continue
		}
		src := from.(*syscall.SockaddrInet4).Addr
		fmt.Printf("sctp %s %d\n", netip.AddrFrom4(src), binary.BigEndian.Uint16(buf[ihl+2:]))
	}
}

// reach probes "proto:addr:port,..." in parallel and prints one line per
// target: "tcp:10.0.0.2:80 ok" or "... fail". A denied connection is
// dropped, so a short timeout decides. SCTP targets are sent one INIT (see
// multiServe) and print "sent".
func reach(arg string) {
	targets := strings.Split(arg, ",")
	out := make([]string, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = t + " " + reachOne(t)
		}()
	}
	wg.Wait()
	for _, l := range out {
		fmt.Println(l)
	}
}

func reachOne(t string) string {
	proto, addr, _ := strings.Cut(t, ":")
	const timeout = 700 * time.Millisecond
	switch proto {
	case "tcp":
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return "fail"
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			return "fail"
		}
		return "ok"
	case "udp":
		c, err := net.Dial("udp", addr)
		if err != nil {
			return "fail"
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("?")); err != nil {
			return "fail"
		}
		if _, err := c.Read(make([]byte, 64)); err != nil {
			return "fail"
		}
		return "ok"
	case "sctp":
		if err := sctpInit(addr); err != nil {
			return "fail " + err.Error()
		}
		return "sent"
	}
	return "fail unknown protocol"
}

// sctpInit sends one SCTP INIT chunk to addr through a raw socket, with a
// correct CRC32c so conntrack takes it as a new association.
func sctpInit(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, 132)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	pkt := make([]byte, 12+20)
	sport, _ := strconv.Atoi(fmt.Sprint(40000 + os.Getpid()%20000))
	binary.BigEndian.PutUint16(pkt[0:], uint16(sport))
	binary.BigEndian.PutUint16(pkt[2:], ap.Port())
	// verification tag 0 (INIT), checksum at 8, filled below
	chunk := pkt[12:]
	chunk[0] = 1 // INIT
	binary.BigEndian.PutUint16(chunk[2:], 20)
	binary.BigEndian.PutUint32(chunk[4:], 0x4b4e4954) // initiate tag
	binary.BigEndian.PutUint32(chunk[8:], 65536)      // a_rwnd
	binary.BigEndian.PutUint16(chunk[12:], 1)         // outbound streams
	binary.BigEndian.PutUint16(chunk[14:], 1)         // inbound streams
	binary.BigEndian.PutUint32(chunk[16:], 1)         // initial TSN
	sum := crc32.Checksum(pkt, crc32.MakeTable(crc32.Castagnoli))
	binary.LittleEndian.PutUint32(pkt[8:], sum)
	return syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: ap.Addr().As4()})
}
