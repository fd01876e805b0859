// Package apiserver is knitd's REST/JSON API on a unix socket. It validates a
// request fully, then writes the store in one transaction; it never touches
// the kernel. Calls that change kernel state (running a container,
// connecting it) wait, by watching the store, until the reconcilers report
// that the kernel matches, so a command returns when its effect is real.
package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/store"
)

// HostView is the read-only look at the host that validation needs.
type HostView interface {
	// Routes are the host's routed prefixes (auto-picked subnets avoid them).
	Routes() []netip.Prefix
	// LinkExists reports whether a link with the name exists on the host.
	LinkExists(name string) bool
	// HasAddress reports whether ip is an address of the host.
	HasAddress(ip netip.Addr) bool
	// Sockets snapshots the host's bound sockets.
	Sockets() portmap.HostHolder
	// CheckEndpoint reports whether a container interface and its host veth
	// are in place (CNI CHECK), as an error naming what is missing.
	CheckEndpoint(netns, ifName, hostVeth string) error
}

// Options configure a Server.
type Options struct {
	Store  store.Store
	Pools  []ipam.Pool
	Host   HostView
	Logger *slog.Logger
	// LogPath returns the log file of a container ID.
	LogPath func(id string) string
	// WaitTimeout bounds how long a call waits for the reconcilers.
	WaitTimeout time.Duration
	// Services configures ClusterIP, node port and load balancer allocation.
	Services ServiceOptions
	// Policy answers policy traces and drops; PolicyApplied returns once the
	// policy data plane reflects a store revision.
	Policy        PolicyView
	PolicyApplied func(ctx context.Context, rev int64) error
	// Debug serves Go's profiler under /debug/pprof/ (the socket is root-only).
	Debug bool
}

// Server serves the API.
type Server struct {
	opts Options
	st   store.Store
	log  *slog.Logger
}

// New makes a server.
func New(opts Options) *Server {
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{opts: opts, st: opts.Store, log: opts.Logger}
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/networks", s.listNetworks)
	mux.HandleFunc("POST /v1/networks", s.createNetwork)
	mux.HandleFunc("POST /v1/networks/prune", s.pruneNetworks)
	mux.HandleFunc("GET /v1/networks/{name}", s.getNetwork)
	mux.HandleFunc("DELETE /v1/networks/{name}", s.deleteNetwork)
	mux.HandleFunc("POST /v1/networks/{name}/connect", s.connect)
	mux.HandleFunc("POST /v1/networks/{name}/disconnect", s.disconnect)
	mux.HandleFunc("GET /v1/containers", s.listContainers)
	mux.HandleFunc("POST /v1/containers", s.createContainer)
	mux.HandleFunc("GET /v1/containers/{name}", s.getContainer)
	mux.HandleFunc("DELETE /v1/containers/{name}", s.deleteContainer)
	mux.HandleFunc("POST /v1/containers/{name}/stop", s.stopContainer)
	mux.HandleFunc("GET /v1/containers/{name}/logs", s.logs)
	mux.HandleFunc("POST /v1/containers/{name}/labels", s.labelContainer)
	mux.HandleFunc("POST /v1/apply", s.apply)
	mux.HandleFunc("GET /v1/services", s.listServices)
	mux.HandleFunc("GET /v1/services/{namespace}/{name}", s.getService)
	mux.HandleFunc("DELETE /v1/services/{namespace}/{name}", s.deleteService)
	mux.HandleFunc("GET /v1/networkpolicies", s.listPolicies)
	mux.HandleFunc("GET /v1/networkpolicies/{namespace}/{name}", s.getPolicy)
	mux.HandleFunc("DELETE /v1/networkpolicies/{namespace}/{name}", s.deletePolicy)
	mux.HandleFunc("GET /v1/namespaces", s.listNamespaces)
	mux.HandleFunc("POST /v1/namespaces", s.createNamespace)
	mux.HandleFunc("POST /v1/namespaces/{name}/labels", s.labelNamespace)
	mux.HandleFunc("DELETE /v1/namespaces/{name}", s.deleteNamespace)
	mux.HandleFunc("POST /v1/policy/trace", s.policyTrace)
	mux.HandleFunc("GET /v1/policy/drops", s.policyDrops)
	mux.HandleFunc("POST /v1/cni/add", s.cniAdd)
	mux.HandleFunc("POST /v1/cni/check", s.cniCheck)
	mux.HandleFunc("POST /v1/cni/del", s.cniDel)
	mux.HandleFunc("POST /v1/cni/gc", s.cniGC)
	mux.HandleFunc("GET /v1/cni/status", s.cniStatus)
	if s.opts.Debug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, v1.NotFoundf("no API route %s %s; see docs/api.md", r.Method, r.URL.Path))
	})
	return mux
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, so a typo never silently does something else.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return v1.Invalidf("malformed request body for %s %s: %s; send one JSON object as described in docs/api.md", r.Method, r.URL.Path, err)
	}
	if dec.More() {
		return v1.Invalidf("malformed request body for %s %s: data after the JSON object; send exactly one object", r.Method, r.URL.Path)
	}
	return nil
}

// read runs fn in a read-only transaction and returns what it found.
func read[T any](ctx context.Context, st store.Store, fn func(store.Tx) (T, error)) (T, error) {
	var v T
	err := st.View(ctx, func(tx store.Tx) (err error) {
		v, err = fn(tx)
		return err
	})
	return v, err
}

// reply writes v with the status, or the error.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	var e *v1.Error
	if !errors.As(err, &e) {
		e = &v1.Error{Code: v1.CodeInternal, Message: err.Error()}
		if errors.Is(err, context.DeadlineExceeded) {
			e.Message = "timed out waiting for knitd to apply the change; see knitd's log for why (" + err.Error() + ")"
		}
	}
	writeJSON(w, httpStatus(e.Code), e)
}

// httpStatus maps an error code to the status the API answers with.
func httpStatus(code string) int {
	switch code {
	case v1.CodeInvalid:
		return http.StatusBadRequest
	case v1.CodeNotFound:
		return http.StatusNotFound
	case v1.CodeConflict:
		return http.StatusConflict
	case v1.CodeExhausted:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// newID returns 64 hex characters, like a Docker ID.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) waitCtx(r *http.Request, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.WaitTimeout+extra)
}
