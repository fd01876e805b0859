// Command probe is the end-to-end tests' traffic tool, run inside containers:
//
//	probe serve PORT         TCP server: answers each connection with
//	                         "<hostname> <client address>\n", then echoes
//	probe dial ADDR          connect (1 s timeout), print the answer, exit 0;
//	                         exit 1 if the connection fails
//	probe hold ADDR          connect and exchange a byte every 100 ms until
//	                         killed; any failure prints FAIL and exits 1
//	probe udpserve PORT      UDP server: answers each datagram with
//	                         "<hostname> <client address>\n"
//	probe udpdial ADDR       send one datagram, print the answer (1 s timeout)
//	probe resolve NAME[/TYPE][@tcp]
//	                         ask the first nameserver of /etc/resolv.conf;
//	                         print the rcode and the answers, one per line
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve PORT | dial ADDR | hold ADDR")
		os.Exit(2)
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		serve(arg)
	case "dial":
		dial(arg)
	case "hold":
		hold(arg)
	case "udpserve":
		udpServe(arg)
	case "udpdial":
		udpDial(arg)
	case "resolve":
		resolve(arg)
	case "dialn":
		dialN(arg)
	case "lookup":
		lookup(arg)
	case "multiserve":
		multiServe(arg)
	case "reach":
		reach(arg)
	case "readyserve":
		readyServe(arg)
	default:
		fmt.Fprintln(os.Stderr, "probe: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func serve(port string) {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Println("FAIL listen:", err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	fmt.Println("listening", port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s %s\n", host, c.RemoteAddr())
			_, _ = io.Copy(c, c)
		}()
	}
}

func dial(addr string) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("FAIL read:", err)
		os.Exit(1)
	}
	fmt.Print(line)
}

func hold(addr string) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		fmt.Println("FAIL greeting:", err)
		os.Exit(1)
	}
	fmt.Println("connected")
	for i := 0; ; i++ {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			fmt.Println("FAIL write:", err)
			os.Exit(1)
		}
		if _, err := r.ReadByte(); err != nil {
			fmt.Println("FAIL read:", err)
			os.Exit(1)
		}
		if i%10 == 0 {
			fmt.Println("ok", i)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func udpServe(port string) {
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		fmt.Println("FAIL listen:", err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	fmt.Println("listening", port)
	buf := make([]byte, 1500)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", host, from)), from)
	}
}

func udpDial(addr string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("?")); err != nil {
		fmt.Println("FAIL write:", err)
		os.Exit(1)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Println("FAIL read:", err)
		os.Exit(1)
	}
	fmt.Print(string(buf[:n]))
}
