// Package probe runs containers' readiness probes from the host: a TCP
// connect or an HTTP GET to the container's address, every period, each
// bounded by a timeout. A container is ready after one success and unready
// after one failure (a refused connection fails at once), so an endpoint
// that stops serving leaves its services within about a period. Results
// are reported only when they change.
package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Target is one container's probe.
type Target struct {
	Addr    netip.Addr
	Port    uint16
	HTTP    bool
	Path    string
	Period  time.Duration
	Timeout time.Duration
}

// Manager runs one goroutine per target.
type Manager struct {
	report func(key string, ready bool)

	mu      sync.Mutex
	running map[string]*prober
}

type prober struct {
	t      Target
	cancel context.CancelFunc
	done   chan struct{}
}

// New makes a Manager that calls report(key, ready) on every change of a
// target's result, and once for its first result.
func New(report func(key string, ready bool)) *Manager {
	return &Manager{report: report, running: map[string]*prober{}}
}

// Set makes the running probes exactly targets (by key): new ones start,
// changed ones restart, missing ones stop.
func (m *Manager) Set(targets map[string]Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, p := range m.running {
		if t, ok := targets[key]; !ok || t != p.t {
			p.cancel()
			delete(m.running, key)
		}
	}
	for key, t := range targets {
		if _, ok := m.running[key]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &prober{t: t, cancel: cancel, done: make(chan struct{})}
		m.running[key] = p
		go m.run(ctx, key, p)
	}
}

// Close stops every probe and waits for them.
func (m *Manager) Close() {
	m.mu.Lock()
	ps := m.running
	m.running = map[string]*prober{}
	m.mu.Unlock()
	for _, p := range ps {
		p.cancel()
		<-p.done
	}
}

func (m *Manager) run(ctx context.Context, key string, p *prober) {
	defer close(p.done)
	tick := time.NewTicker(p.t.Period)
	defer tick.Stop()
	known, last := false, false
	for {
		ok := Check(ctx, p.t) == nil
		if ctx.Err() != nil {
			return
		}
		if !known || ok != last {
			known, last = true, ok
			m.report(key, ok)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Check runs t once.
func Check(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	addr := net.JoinHostPort(t.Addr.String(), strconv.Itoa(int(t.Port)))
	if !t.HTTP {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+t.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "knit-probe/1")
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return nil
}

// probeClient keeps no connections: a probe must see a server that stopped
// accepting, not a pooled connection.
var probeClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
