package nft

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// syncLog records a Dataplane's log lines.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// take returns the lines logged since the last call.
func (l *syncLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

func newLoggedDataplane(t *testing.T, ns *nstest.NS) (*Dataplane, *syncLog) {
	t.Helper()
	l := &syncLog{}
	d, err := New(Options{NetNSPath: ns.Path,
		Logger: slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	must(t, "New", err)
	t.Cleanup(func() { d.Close() })
	return d, l
}

const (
	logFull    = `msg="synced nftables table"`
	logPartial = `msg="synced nftables table elements"`
)

// TestPartialSyncTransitions: after the first, full sync, element-only
// changes go out as partial syncs, and the table is after each exactly
// what a full sync of that config into an empty namespace gives.
func TestPartialSyncTransitions(t *testing.T) {
	ns := nstest.New(t, "nft")
	d, log := newLoggedDataplane(t, ns)
	retargeted := sampleConfig()
	retargeted.Ports[0].ContainerIP = addr("10.1.0.9")
	retargeted.Ports = append(retargeted.Ports[1:], mapping(t, "udp * 9 10.3.0.9 9"))
	networks := retargeted
	networks.Networks = []Network{
		{Bridge: "kn-front", Subnets: pfx("10.1.0.0/23", "fd00:1::/64"), Internal: true},
		{Bridge: "kn-new", Subnets: pfx("10.9.0.0/16", "fd00:9::/64")},
	}
	steps := []struct {
		name string
		cfg  Config
		want string
	}{
		{"sample", sampleConfig(), logFull},
		{"same again", sampleConfig(), logPartial},
		{"retarget, remove and add ports", retargeted, logPartial},
		{"networks change", networks, logPartial},
		{"3,000 ports, no service", manyPorts(3000), logFull}, // no count chains
		{"empty", Config{}, logPartial},
		{"sample again", sampleConfig(), logFull},
	}
	handle := ""
	for _, s := range steps {
		mustSync(t, d, s.cfg)
		if got := log.take(); !strings.Contains(got, s.want) {
			t.Errorf("after %q: log %q, want %s", s.name, got, s.want)
		}
		if handle == "" {
			handle = tableHandle(t, ns)
		}
		fresh := nstest.New(t, "nftref")
		mustSync(t, newDataplane(t, fresh), s.cfg)
		if got, want := listKnit(t, ns), listKnit(t, fresh); got != want {
			t.Errorf("after %q:\n%s\nwant (fresh sync):\n%s", s.name, got, want)
		}
		if got := tableHandle(t, ns); got != handle {
			t.Errorf("after %q: table handle %s, want %s", s.name, got, handle)
		}
	}
}

// TestPartialSyncRecovers: a partial sync that fails (the table was
// deleted behind knit's back) is followed at once by a full one; what a
// partial sync cannot see (a foreign element in knit's map) is repaired
// by the next full sync, at the latest an hour later.
func TestPartialSyncRecovers(t *testing.T) {
	ns := nstest.New(t, "nft")
	d, log := newLoggedDataplane(t, ns)
	mustSync(t, d, sampleConfig())
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	must(t, "nftables conn", err)
	c.DelTable(knitTable())
	must(t, "delete table behind knit's back", c.Flush())
	log.take()

	more := sampleConfig()
	more.Ports = append(more.Ports, mapping(t, "tcp * 81 10.1.0.2 81"))
	mustSync(t, d, more)
	if got := log.take(); !strings.Contains(got, "partial nftables sync failed") || !strings.Contains(got, logFull) {
		t.Errorf("log %q; want a failed partial sync, then a full one", got)
	}
	want := listKnit(t, ns)
	if !strings.Contains(want, "tcp . 81 : 10.1.0.2 . 81") {
		t.Errorf("table after recovery:\n%s", want)
	}

	// An invalid config changes nothing and keeps the applied state.
	bad := more
	bad.Ports = append(bad.Ports, bad.Ports[0])
	if err := d.Sync(bad); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("Sync(duplicate port) = %v", err)
	}

	foreign := nftables.SetElement{Key: concat([]byte{6}, be16(7)), Val: concat([]byte{10, 9, 9, 9}, be16(7))}
	must(t, "add foreign element", c.SetAddElements(&nftables.Set{Table: knitTable(), Name: mapPortsAny4}, []nftables.SetElement{foreign}))
	must(t, "add foreign element", c.Flush())
	mustSync(t, d, more)
	if got := log.take(); !strings.Contains(got, logPartial) {
		t.Errorf("log %q; want a partial sync", got)
	}
	if got := listKnit(t, ns); !strings.Contains(got, "10.9.9.9") {
		t.Errorf("a partial sync only sends its own changes; the foreign element is gone already:\n%s", got)
	}

	d.mu.Lock()
	d.applied.fullAt = time.Now().Add(-fullResyncInterval)
	d.mu.Unlock()
	mustSync(t, d, more)
	if got := log.take(); !strings.Contains(got, logFull) {
		t.Errorf("log %q; want a full sync an hour after the last", got)
	}
	if got := listKnit(t, ns); got != want {
		t.Errorf("full sync left:\n%s\nwant:\n%s", got, want)
	}
}
