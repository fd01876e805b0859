package netpol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/netns"
)

// Drop is one packet that network policy denied, as the kernel logged it.
type Drop struct {
	// Time is when the kernel logged the packet, or when it was read if
	// the kernel gave no timestamp.
	Time time.Time
	// Direction is "egress" (the source pod's policy denied it) or
	// "ingress" (the destination pod's).
	Direction string
	// Proto is the IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, …).
	Proto    uint8
	Src, Dst netip.Addr
	// SrcPort and DstPort are 0 for protocols without ports.
	SrcPort, DstPort uint16
	// Group is the denying group (policy.Compiled.GroupPolicies names its
	// policies).
	Group uint32
}

// DropReaderOptions configure NewDropReader.
type DropReaderOptions struct {
	// NetNSPath is the namespace whose table logs the drops, e.g.
	// /run/netns/NAME; empty is the calling thread's.
	NetNSPath string
	// Logger receives a line when reading fails for good; nil discards.
	Logger *slog.Logger
}

// DropReader delivers the packets network policy denies, read from the
// kernel's NFLOG group PolicyLogGroup, to a callback. At most a few hundred
// a second reach it (the rules' log rate limit); every drop is counted all
// the same (Dataplane.PolicyDropCounts).
type DropReader struct {
	nf     *nflog.Nflog
	cancel context.CancelFunc

	mu     sync.Mutex // held while fn runs, so Close waits for it
	closed bool
}

// NewDropReader binds to NFLOG group PolicyLogGroup and calls fn for every
// denied packet, from one goroutine, in the order the kernel logged them,
// until Close. Only one reader can bind the group in a namespace at a
// time. fn must not call Close.
func NewDropReader(opts DropReaderOptions, fn func(Drop)) (*DropReader, error) {
	ns, err := netns.Open(opts.NetNSPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close() // the socket keeps its namespace
	return newDropReader(ns, logger(opts), fn)
}

func logger(opts DropReaderOptions) *slog.Logger {
	if opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return opts.Logger
}

// newDropReader reads the drops of the namespace ns.
func newDropReader(ns *os.File, log *slog.Logger, fn func(Drop)) (*DropReader, error) {
	path := ns.Name()
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    int(ns.Fd()),
		Group:    PolicyLogGroup,
		Copymode: nflog.CopyPacket,
		Bufsize:  policySnaplen,
	})
	if err != nil {
		return nil, fmt.Errorf("open NFLOG group %d in %s: %w", PolicyLogGroup, path, err)
	}
	// A reader that falls behind loses messages (ENOBUFS) rather than
	// making the kernel wait; onErr reads on.
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		log.Debug("NFLOG socket: cannot ignore ENOBUFS", "error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &DropReader{nf: nf, cancel: cancel}
	hook := func(a nflog.Attribute) int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return 1
		}
		if d, ok := parseDrop(a); ok {
			fn(d)
		}
		return 0
	}
	onErr := func(err error) int {
		if ctx.Err() != nil {
			return 1 // Close: stop reading
		}
		var op *netlink.OpError
		if errors.As(err, &op) && (op.Timeout() || errors.Is(op.Err, unix.ENOBUFS)) {
			return 0
		}
		log.Warn("reading NFLOG group failed; policy drops are no longer reported", "group", PolicyLogGroup, "error", err)
		return 1
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, onErr); err != nil {
		cancel()
		nf.Close()
		return nil, fmt.Errorf("bind NFLOG group %d in %s: %w", PolicyLogGroup, path, err)
	}
	return r, nil
}

// Close stops the reader and releases its socket; fn is not called after
// it returns. Calling it again does nothing.
func (r *DropReader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	if err := r.nf.Close(); err != nil {
		return fmt.Errorf("close NFLOG socket: %w", err)
	}
	return nil
}

// parseDrop reads a logged packet: the direction from the prefix, the group
// from the mark, addresses, protocol and ports from the packet's headers.
// Messages of other rules logging to the same group are skipped.
func parseDrop(a nflog.Attribute) (Drop, bool) {
	if a.Prefix == nil || a.Payload == nil || a.Mark == nil {
		return Drop{}, false
	}
	var d Drop
	switch strings.TrimRight(*a.Prefix, "\x00") {
	case logPrefixEgress:
		d.Direction = "egress"
	case logPrefixIngress:
		d.Direction = "ingress"
	default:
		return Drop{}, false
	}
	if !parsePacket(*a.Payload, &d) {
		return Drop{}, false
	}
	d.Group = keyOfMark(*a.Mark) // the drop rule sets the mark to the group
	d.Time = time.Now()
	if a.Timestamp != nil {
		d.Time = *a.Timestamp
	}
	return d, true
}

// parsePacket fills addresses, protocol and ports from an IPv4 or IPv6
// packet (the log carries the packet from its network header).
func parsePacket(p []byte, d *Drop) bool {
	if len(p) < 1 {
		return false
	}
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < 20 || ihl < 20 || len(p) < ihl {
			return false
		}
		d.Proto = p[9]
		d.Src = netip.AddrFrom4([4]byte(p[12:16]))
		d.Dst = netip.AddrFrom4([4]byte(p[16:20]))
		if binary.BigEndian.Uint16(p[6:8])&0x1fff == 0 { // not a later fragment
			l4 = p[ihl:]
		}
	case 6:
		if len(p) < 40 {
			return false
		}
		d.Src = netip.AddrFrom16([16]byte(p[8:24]))
		d.Dst = netip.AddrFrom16([16]byte(p[24:40]))
		d.Proto, l4 = ip6Transport(p[6], p[40:])
	default:
		return false
	}
	switch d.Proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP, unix.IPPROTO_UDPLITE:
		if len(l4) >= 4 {
			d.SrcPort = binary.BigEndian.Uint16(l4[0:2])
			d.DstPort = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	return true
}

// ip6Transport skips IPv6 extension headers: it returns the transport
// protocol and its header, or nil for the header when it is not in b (a
// later fragment, or cut off by the log's snap length).
func ip6Transport(next byte, b []byte) (uint8, []byte) {
	for {
		switch next {
		case unix.IPPROTO_HOPOPTS, unix.IPPROTO_ROUTING, unix.IPPROTO_DSTOPTS:
			if len(b) < 8 {
				return next, nil
			}
			n := (int(b[1]) + 1) * 8
			if len(b) < n {
				return b[0], nil
			}
			next, b = b[0], b[n:]
		case unix.IPPROTO_FRAGMENT:
			if len(b) < 8 {
				return next, nil
			}
			if binary.BigEndian.Uint16(b[2:4])&0xfff8 != 0 { // a later fragment
				return b[0], nil
			}
			next, b = b[0], b[8:]
		default:
			return next, b
		}
	}
}
