package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// forward sends r to the client's upstreams (the default ones when it has
// none) over the transport it came on, and relays the answer as the upstream
// wrote it, with the client's ID. No upstream answering in time is SERVFAIL.
func (s *Server) forward(w dns.ResponseWriter, r *dns.Msg, cl *client, tcp bool) {
	ups := cl.upstreams
	if len(ups) == 0 {
		ups = s.upstreams
	}
	q := *r // a shallow copy, to pack it with an ID of the server's own
	q.Id = dns.Id()
	query, err := q.Pack()
	if err != nil {
		s.log.Debug("dns: pack query to forward", "name", r.Question[0].Name, "err", err)
		s.writeRcode(w, r, dns.RcodeServerFailure)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	answer, err := s.exchange(ctx, query, ups, tcp)
	if err != nil {
		s.log.Debug("dns: forward", "name", r.Question[0].Name, "err", err)
		s.writeRcode(w, r, dns.RcodeServerFailure)
		return
	}
	binary.BigEndian.PutUint16(answer, r.Id)
	if _, err := w.Write(answer); err != nil {
		s.log.Debug("dns: write forwarded answer", "name", r.Question[0].Name, "err", err)
	}
}

// exchangeUpstreams tries the upstreams in order until one answers, giving
// each an equal share of the time left. An upstream answering SERVFAIL or
// REFUSED is passed over while others remain (as a stub resolver would), and
// its answer is returned if none does better. An address the server itself
// listens on is skipped.
func (s *Server) exchangeUpstreams(ctx context.Context, query []byte, ups []netip.AddrPort, tcp bool) ([]byte, error) {
	if len(ups) == 0 {
		return nil, errors.New("dns: forward: no upstream servers")
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.timeout)
	}
	self := *s.self.Load()
	var errs []error
	var fallback []byte
	for i, up := range ups {
		if self[up] {
			errs = append(errs, fmt.Errorf("dns: forward to %s: that is this server", up))
			continue
		}
		share := time.Until(deadline) / time.Duration(len(ups)-i)
		answer, err := exchangeOne(ctx, up, query, tcp, time.Now().Add(share))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rc := answer[3] & 0xf; (rc == dns.RcodeServerFailure || rc == dns.RcodeRefused) && i < len(ups)-1 {
			fallback = answer
			continue
		}
		return answer, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, errors.Join(errs...)
}

// bufPool holds 64 KiB read buffers for answers from upstreams.
var bufPool = sync.Pool{New: func() any { return new([dns.MaxMsgSize]byte) }}

// exchangeOne sends the packed query to one upstream and returns its answer,
// checked to be the answer to that query.
func exchangeOne(ctx context.Context, up netip.AddrPort, query []byte, tcp bool, deadline time.Time) ([]byte, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	wrap := func(err error) error { return fmt.Errorf("dns: forward to %s/%s: %w", up, network, err) }
	var conn net.Conn
	var err error
	if tcp {
		d := net.Dialer{Deadline: deadline}
		conn, err = d.DialContext(ctx, network, up.String())
	} else { // a new socket, so a new random port, for every query; no resolver
		conn, err = net.DialUDP(network, nil, net.UDPAddrFromAddrPort(up))
	}
	if err != nil {
		return nil, wrap(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, wrap(err)
	}
	dc := &dns.Conn{Conn: conn}
	if _, err := dc.Write(query); err != nil {
		return nil, wrap(err)
	}
	buf := bufPool.Get().(*[dns.MaxMsgSize]byte)
	defer bufPool.Put(buf)
	for {
		n, err := dc.Read(buf[:])
		if err != nil {
			return nil, wrap(err)
		}
		if err := checkAnswer(query, buf[:n]); err != nil {
			if tcp {
				return nil, wrap(err)
			}
			continue // UDP: a stray datagram; ours may still come
		}
		return slices.Clone(buf[:n]), nil
	}
}

// checkAnswer tells whether answer answers query: same ID, the QR bit, and
// the same question (a truncated answer may leave the question out).
func checkAnswer(query, answer []byte) error {
	if len(answer) < 12 {
		return errors.New("short answer")
	}
	if answer[0] != query[0] || answer[1] != query[1] {
		return errors.New("answer ID does not match")
	}
	if answer[2]&0x80 == 0 {
		return errors.New("not an answer")
	}
	if binary.BigEndian.Uint16(answer[4:]) == 0 && answer[2]&0x02 != 0 {
		return nil
	}
	qname, qoff, err := dns.UnpackDomainName(query, 12)
	if err != nil {
		return fmt.Errorf("query question: %w", err)
	}
	aname, aoff, err := dns.UnpackDomainName(answer, 12)
	if err != nil {
		return fmt.Errorf("answer question: %w", err)
	}
	if !strings.EqualFold(qname, aname) || len(query) < qoff+4 || len(answer) < aoff+4 ||
		string(query[qoff:qoff+4]) != string(answer[aoff:aoff+4]) {
		return errors.New("answer is for another question")
	}
	return nil
}
