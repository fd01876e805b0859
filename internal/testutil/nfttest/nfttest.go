// Package nfttest looks at knit's nftables table from tests: listings
// through the nft binary (for looking only; the product never runs it),
// made comparable, the table's handle, a foreign table beside knit's,
// and a log that records which kind of sync a Table did.
package nfttest

import (
	"bytes"
	"log/slog"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// Exec runs a command inside ns's network namespace (for looking at the
// kernel), through util-linux nsenter.
func Exec(ns *nstest.NS, name string, args ...string) ([]byte, error) {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path, name}, args...)...).CombinedOutput()
}

// Nft runs the nft binary inside ns and returns what it printed.
func Nft(t testing.TB, ns *nstest.NS, args ...string) string {
	t.Helper()
	nstest.RequireTool(t, "nft", "nftables")
	out, err := Exec(ns, "nft", args...)
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

var (
	counterRE  = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	elementsRE = regexp.MustCompile(`elements = \{([^}]*)\}`)
	handleRE   = regexp.MustCompile(`(?m)^table inet knit \{ # handle (\d+)$`)
)

// WithoutCounters removes the counters' values from a listing.
func WithoutCounters(listing string) string { return counterRE.ReplaceAllString(listing, "") }

// Canonical makes nft listings comparable: counters zeroed (whatever
// traffic passed) and set elements sorted on one line (hash sets list in
// hash order).
func Canonical(listing string) string {
	s := counterRE.ReplaceAllString(listing, "counter packets 0 bytes 0")
	return elementsRE.ReplaceAllStringFunc(s, func(m string) string {
		inner := elementsRE.FindStringSubmatch(m)[1]
		var elems []string
		for _, e := range strings.Split(inner, ",") {
			elems = append(elems, strings.TrimSpace(e))
		}
		slices.Sort(elems)
		return "elements = { " + strings.Join(elems, ", ") + " }"
	})
}

// List is "nft list table inet knit", canonical.
func List(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	return Canonical(Nft(t, ns, "list", "table", "inet", "knit"))
}

// HasTable reports whether ns has the table "family name".
func HasTable(t testing.TB, ns *nstest.NS, family, name string) bool {
	t.Helper()
	return strings.Contains(Nft(t, ns, "list", "tables"), "table "+family+" "+name+"\n")
}

// Handle returns the kernel handle of table inet knit.
func Handle(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	m := handleRE.FindStringSubmatch(Nft(t, ns, "-a", "list", "table", "inet", "knit"))
	if m == nil {
		t.Fatalf("no handle for table inet knit in %s", ns.Name)
	}
	return m[1]
}

// AddForeignTable creates "table ip foreign" with a chain and one rule
// through the library, as another program would.
func AddForeignTable(t testing.TB, ns *nstest.NS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "foreign", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("add foreign table: %v", err)
	}
}

// What a Table logs for a full sync and for a partial one.
const (
	LogFull    = `msg="synced nftables table"`
	LogPartial = `msg="synced nftables table elements"`
)

// Log records a Table's log lines; Logger writes to it.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Take returns the lines logged since the last call.
func (l *Log) Take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// Logger logs every level to l.
func (l *Log) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
