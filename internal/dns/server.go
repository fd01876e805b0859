// Package dns is knit's embedded DNS server: what Docker's embedded DNS and
// podman's aardvark-dns are to their containers. knitd serves it on every
// bridge's gateway addresses; containers find it in their resolv.conf.
//
// The rules a container gets (names compare case-insensitively, answers carry
// Options.TTL):
//
//   - The client is the container owning the query's source address. It sees
//     the containers it shares a network with, by Name, Hostname and the
//     Aliases of the shared network, and gets their addresses on the shared
//     networks: A for IPv4, AAAA for IPv6. Several containers with one name
//     give all their addresses, rotated per query (round robin). Only exact
//     names match ("web" or "web."); search domains are the client's business.
//   - PTR for an address of such a container gives its name.
//   - A name (or address) of a knit container on none of the client's networks
//     is NXDOMAIN, never forwarded. A visible name asked for a type it has no
//     record of is NOERROR without answers (NODATA).
//   - Everything else is forwarded to the client's Upstreams, or the default
//     ones, over the transport the query came on, with its EDNS0 record and
//     a fresh ID (the client's is restored on the answer). A truncated UDP
//     answer is passed on truncated, so the client retries over TCP, which is
//     forwarded over TCP. Upstreams are tried in order within Options.Timeout;
//     when none answers: SERVFAIL.
//   - Internal clients get REFUSED at once for anything not local.
//   - Unknown clients (a source address no container owns, such as a process
//     in the host's namespace) see no container: knit names are NXDOMAIN to
//     them, anything else is forwarded to the default upstreams.
//   - Malformed queries get FORMERR (or nothing, when even the header is
//     unreadable); a panic in the handler is answered SERVFAIL.
//
// Kubernetes Services (SetServices) have the names of the Kubernetes
// DNS-Based Service Discovery specification, schema 1.1.0, in the zone
// Options.ClusterDomain (cluster.local). The zone is served once SetServices
// has been called; until then its names are forwarded like any other.
//
//   - Every client sees the services, containers, internal ones and unknown
//     ones alike: the zone is answered by the server alone (authoritative),
//     never forwarded nor REFUSED, and before container names.
//   - <svc>.<ns>.svc.<zone>: A/AAAA of the service's ClusterIPs. For a
//     headless service, the addresses of its ready endpoints, rotated; with
//     none, the name does not exist (NXDOMAIN, the specification's 2.4.1).
//     For an ExternalName service, a CNAME; to an A or AAAA question, the
//     target's records follow it, found as the client would find them: in
//     the zone, among the containers it sees, or from its upstreams (not for
//     internal clients), within half of Options.Timeout. When that fails, the
//     CNAME alone is the answer.
//   - <hostname>.<svc>.<ns>.svc.<zone>: a headless endpoint's addresses. An
//     endpoint without a Hostname is named by its first address, dashed
//     (10-1-2-3, fd00--1).
//   - _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV, for the named ports: to
//     <svc>.<ns>.svc.<zone> and the service port, or for a headless service
//     one per endpoint serving the port, to its name and target port;
//     priority 0, weight 100; the targets' addresses in the additional
//     section. A port or protocol the service does not have is NXDOMAIN.
//   - PTR of a ClusterIP gives <svc>.<ns>.svc.<zone>, of a headless
//     endpoint's address <hostname>.<svc>.<ns>.svc.<zone>, to every client,
//     and before a container's name for the same address: a pod of a
//     StatefulSet must find its own name back from its address. An address
//     with several such names gives one: a ClusterIP's, else one from a
//     Hostname rather than a dashed address, else the first in order.
//   - dns-version.<zone> TXT "1.1.0"; <a>-<b>-<c>-<d>.<ns>.pod.<zone> A
//     a.b.c.d for any namespace (deprecated, still required: 2.6).
//   - Any other name in the zone is NXDOMAIN, except the names above records
//     (the zone, svc.<zone>, a namespace with services, _tcp.<svc>...),
//     which exist: NOERROR without answers (NODATA), as for a name asked for
//     a type it has no record of.
//
// Design notes.
//
//   - Queries never lock. SetContainer and DeleteContainer build a new
//     immutable index (snapshot) under a mutex and publish it through an
//     atomic pointer. A change writes only what differs for the container:
//     the tables of the networks where its names, addresses or PTR target
//     change (connecting it to a network leaves its other networks' tables
//     shared, however large), and in those tables and the global maps
//     (clients by address, known names), only the shards holding the keys it
//     writes (smap.go). So a change costs about the same at 1,000 containers
//     as at 10,000, and the index takes under 1 KiB per container.
//   - Services are indexed apart from containers, since SetServices gives
//     them all at once: it builds a new index of every name in the zone (one
//     Go map, about 700 bytes per service) and publishes it with one atomic
//     store, so queries never wait for it; 10,000 services take about 50 ms.
//     The service controller gives every service on every pass, so a call
//     that changes nothing is recognized by a hash of its input (2 ms) and
//     keeps the index.
//   - UDP is read by the server's own loops, not dns.Server's: recvmmsg takes
//     the queries waiting on the socket in one call, a query for a local name
//     is answered from its wire form (fastpath.go: no unpacking, no
//     allocation, no goroutine), and the answers leave in one sendmmsg.
//     Service A/AAAA questions take that path too; CNAME, SRV, TXT and PTR
//     answers, and pod names, do not. Anything else is unpacked and handed
//     to ServeDNS in a goroutine, since forwarding (and following an
//     ExternalName) blocks. The fast path is an optimisation only: for every
//     query it answers, ServeDNS gives the same answer, which the fuzz test
//     checks. TCP goes through dns.Server to ServeDNS.
//   - Every forwarded UDP query gets a socket of its own, so a random source
//     port besides its random ID, as a stub resolver's would: a shared socket
//     would forward faster, but an off-path attacker would then have only the
//     ID to guess. An upstream that is one of the server's own addresses is
//     skipped, so a host whose resolv.conf points at a bridge cannot loop.
package dns

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits.
const (
	// DefaultTTL is the TTL of local answers when Options.TTL is 0. Answers
	// must not outlive container changes for long, so 5 s is also the most.
	DefaultTTL = 5
	// DefaultTimeout is how long a forwarded query may take in total, over
	// every upstream tried.
	DefaultTimeout = 2 * time.Second
	// DefaultClusterDomain is Kubernetes' default cluster domain.
	DefaultClusterDomain = "cluster.local"
	// ednsSize is the UDP payload size the server advertises (DNS flag day
	// 2020) and the largest local answer it sends over UDP.
	ednsSize = 1232
	// maxInflight bounds the UDP queries handled off the fast path at once
	// (mostly forwards waiting on an upstream); beyond it, queries are dropped
	// and the client retries.
	maxInflight = 1024
)

// Options configure a Server.
type Options struct {
	// Port to serve on, UDP and TCP, on every listen address: 53 in production.
	Port uint16
	// Upstreams are the default upstream servers (knitd passes the host's
	// resolv.conf servers). A zero port means 53.
	Upstreams []netip.AddrPort
	// TTL of local answers: 0 means DefaultTTL; more than 5 is cut to 5.
	TTL uint32
	// Timeout for a forwarded query, all upstreams together: 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// ClusterDomain is the zone of Kubernetes Service names (services.go):
	// "" means DefaultClusterDomain.
	ClusterDomain string
}

// Server is knit's embedded DNS server. Its methods are safe for concurrent
// use.
type Server struct {
	port      uint16
	upstreams []netip.AddrPort
	ttl       uint32
	timeout   time.Duration
	log       *slog.Logger

	snap atomic.Pointer[snapshot]
	rr   atomic.Uint32 // round-robin counter

	// zone is Options.ClusterDomain, lowercase, without a trailing dot.
	zone string
	// svcs is the index of the Kubernetes services, nil until the first
	// SetServices: until then the zone is not served.
	svcs    atomic.Pointer[svcIndex]
	svcMu   sync.Mutex   // serializes SetServices; guards svcSum
	svcSum  uint64       // digest of the services of the last SetServices
	svcSeed maphash.Seed // of the digest
	svcBuf  []byte       // the services serialized for the digest

	// exchange forwards a packed query; tests replace it.
	exchange func(ctx context.Context, query []byte, ups []netip.AddrPort, tcp bool) ([]byte, error)
	// self is the set of addresses the server listens on, with its port: never
	// forwarded to, lest a query loop.
	self     atomic.Pointer[map[netip.AddrPort]bool]
	inflight chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // UDP readers and off-path handlers
	// readers is the number of reader loops per UDP socket. Reads of one
	// socket are serialized anyway (the socket's lock, Go's fd lock); a second
	// loop helps only with cores to spare, sending one batch while another is
	// read. With one loop per 2 cores, measured on 2 cores, dnsperf plus the
	// server got about 15 % more answers through than with two.
	readers int

	mu        sync.Mutex // guards reg and listeners
	reg       registry
	listeners map[netip.Addr]*listener
	closed    bool
}

// New returns a server that knows no containers and listens nowhere until
// SetListenAddrs.
func New(opts Options) *Server {
	s := &Server{
		port:      opts.Port,
		ttl:       opts.TTL,
		timeout:   opts.Timeout,
		log:       opts.Logger,
		inflight:  make(chan struct{}, maxInflight),
		reg:       newRegistry(),
		listeners: map[netip.Addr]*listener{},
		readers:   max(1, min(runtime.GOMAXPROCS(0)/2, 4)),
	}
	if s.ttl == 0 || s.ttl > DefaultTTL {
		s.ttl = DefaultTTL
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.zone = clusterDomain(opts.ClusterDomain, s.log)
	s.svcSeed = maphash.MakeSeed()
	s.upstreams = normalize(Container{Upstreams: opts.Upstreams}).Upstreams
	s.exchange = s.exchangeUpstreams
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.snap.Store(&snapshot{})
	s.self.Store(&map[netip.AddrPort]bool{})
	return s
}

// Close stops serving: it closes every listener, cancels forwards in flight
// and waits for the server's goroutines. The server cannot be used again.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	err := s.setListenAddrsLocked(nil)
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
