package portmap

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

func parse(t *testing.T, s string) v1.PortMapping {
	t.Helper()
	p, err := v1.ParsePortSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func publish(st store.Store, owner string, host HostHolder, ports ...v1.PortMapping) ([]v1.PortMapping, error) {
	var out []v1.PortMapping
	_, err := st.Update(context.Background(), func(tx store.Tx) (err error) {
		out, err = Publish(tx, owner, ports, host)
		return err
	})
	return out, err
}

func TestPublishConflictsAndRelease(t *testing.T) {
	st := memstore.New()
	if _, err := publish(st, "web", nil, parse(t, "8080:80"), parse(t, "127.0.0.1:9000-9001:90-91/udp")); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"8080:81":              `host port 8080/tcp is already in use by container "web"`,
		"127.0.0.1:8080:81":    `container "web"`,
		"9001:1/udp":           `host port 9001/udp is already in use by container "web"`,
		"127.0.0.1:9000:1/udp": `container "web"`,
	} {
		if _, err := publish(st, "other", nil, parse(t, spec)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("publish %s: %v; want %q", spec, err, want)
		}
	}
	for _, spec := range []string{"8080:80/udp", "127.0.0.2:9000:1/udp", "8081:80"} {
		if _, err := publish(st, "other", nil, parse(t, spec)); err != nil {
			t.Errorf("publish %s: %v", spec, err)
		}
	}
	// Ephemeral ports skip what is taken, and Release frees only the owner's.
	got, err := publish(st, "e1", func(_ string, _ netip.Addr, port uint16) string {
		if port == EphemeralLow {
			return "process 1 (init) on the host"
		}
		return ""
	}, parse(t, "80"))
	if err != nil || got[0].HostPort != EphemeralLow+1 {
		t.Fatalf("ephemeral = %v, %v; want %d", got, err, EphemeralLow+1)
	}
	_, _ = st.Update(context.Background(), func(tx store.Tx) error { return Release(tx, "someone-else", got) })
	if _, err := publish(st, "e2", nil, got[0]); err == nil {
		t.Fatal("Release by a non-owner freed the port")
	}
	_, _ = st.Update(context.Background(), func(tx store.Tx) error { return Release(tx, "e1", got) })
	if _, err := publish(st, "e2", nil, got[0]); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestHostSocketsNamesTheHolder(t *testing.T) {
	ns := nstest.New(t, "ports")
	ns.Do(t, func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		holder := HostSockets("/proc/thread-self/net")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		if who := holder("tcp", netip.Addr{}, port); !strings.Contains(who, "process") || !strings.Contains(who, "on the host") {
			t.Errorf("holder of %d = %q", port, who)
		}
		if who := holder("tcp", netip.MustParseAddr("127.0.0.2"), port); who != "" {
			t.Errorf("a listener on 127.0.0.1 blocks 127.0.0.2: %q", who)
		}
		if who := holder("udp", netip.Addr{}, port); who != "" {
			t.Errorf("tcp listener blocks udp: %q", who)
		}
		// A connection's local port is not a listener: free to publish.
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		local := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		if who := holder("tcp", netip.Addr{}, local); who != "" {
			t.Errorf("a client's local port %d counts as held: %q", local, who)
		}
	})
}
