package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// toy is a feature in a few lines, as a new one would start: one set of
// ports it drops in the input hook, one chain. Adding it takes nothing
// of the engine but the Feature interface.
type toy struct {
	name  string
	order int
	ports *KeyedSet
	// comment is the chain rule's comment: changing it changes the shape.
	comment   string
	sent      string // the comment of the shape last returned
	planErr   error
	learned   bool // also a learned set, filled by the packet path
	aborts    int
	lastFull  bool
	committed int
}

func newToy(name string, order int) *toy {
	return &toy{name: name, order: order, ports: NewKeyedSet(name + "_ports"), comment: "knit: toy drops its ports"}
}

func (f *toy) Name() string { return f.name }

func (f *toy) Plan() (*Shape, bool, error) {
	if f.planErr != nil {
		return nil, false, f.planErr
	}
	if f.sent == f.comment {
		return nil, false, nil
	}
	f.sent = f.comment
	set := f.name + "_ports"
	s := &Shape{
		Sets: []SetSpec{{Set: &nftables.Set{Name: set, KeyType: nftables.TypeInetService}}},
		Chains: []ChainSpec{{Name: f.name, Rules: []Rule{{Comment: f.comment, Exprs: []expr.Any{
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: set},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}}}}},
		Hooks: []HookRule{{Hook: HookInput, Order: f.order, Rule: Rule{Comment: "knit: " + f.name,
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: f.name}}}}},
	}
	if f.learned {
		s.Sets = append(s.Sets, SetSpec{Learned: true, Set: &nftables.Set{Name: f.name + "_seen",
			KeyType: nftables.TypeInetService, Dynamic: true, HasTimeout: true}})
	}
	return s, false, nil
}

func (f *toy) Changes(_ Kernel, full bool) ([]SetChange, error) {
	f.lastFull = full
	return []SetChange{f.ports.Change(full)}, nil
}

func (f *toy) Commit() { f.ports.Commit(); f.committed++ }

func (f *toy) Abort() { f.ports.Abort(); f.sent = ""; f.aborts++ }

func (f *toy) put(ports ...uint16) {
	for _, p := range ports {
		f.ports.Put(nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
}

func newLoggedTable(t *testing.T, ns *nstest.NS, fs ...Feature) (*Table, *nfttest.Log) {
	t.Helper()
	l := &nfttest.Log{}
	tb, err := New(Options{NetNSPath: ns.Path, Logger: l.Logger()}, fs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb, l
}

func mustSync(t *testing.T, tb *Table, l *nfttest.Log, want string) {
	t.Helper()
	if err := tb.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := l.Take(); !strings.Contains(got, want) {
		t.Fatalf("log %q, want %s", got, want)
	}
}

// TestToyFeature: a feature the engine has never heard of gets its set,
// its chain and its rule in the input hook; element changes go out as
// partial syncs, a change of shape as a full one; features' rules in a
// base chain follow their Order.
func TestToyFeature(t *testing.T) {
	ns := nstest.New(t, "nft")
	a, b := newToy("toy_a", 20), newToy("toy_b", 10)
	tb, log := newLoggedTable(t, ns, a, b)
	a.put(8080, 9090)
	mustSync(t, tb, log, nfttest.LogFull)
	got := nfttest.List(t, ns)
	for _, want := range []string{
		"\tset toy_a_ports {\n\t\ttype inet_service\n\t\tcomment \"knit\"\n\t\telements = { 8080, 9090 }\n\t}",
		"\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n" +
			"\t\tjump toy_b comment \"knit: toy_b\"\n\t\tjump toy_a comment \"knit: toy_a\"\n\t}",
		"\tchain toy_a {\n\t\tth dport @toy_a_ports drop comment \"knit: toy drops its ports\"\n\t}",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table:\n%s\nwant it to contain:\n%s", got, want)
		}
	}

	mustSync(t, tb, log, nfttest.LogPartial) // nothing changed
	a.ports.Delete(binary.BigEndian.AppendUint16(nil, 9090))
	b.put(53)
	mustSync(t, tb, log, "changes=2")
	if got := nfttest.List(t, ns); !strings.Contains(got, "elements = { 8080 }") || !strings.Contains(got, "elements = { 53 }") {
		t.Errorf("after a partial sync:\n%s", got)
	}

	a.comment = "knit: toy drops its ports, reworded"
	mustSync(t, tb, log, nfttest.LogFull)
	if got := nfttest.List(t, ns); !strings.Contains(got, "reworded") || !strings.Contains(got, "elements = { 8080 }") {
		t.Errorf("after a change of shape:\n%s", got)
	}
}

// TestFeatureErrorSendsNothing: a feature's error fails the sync before
// anything is sent, and the features that had planned are aborted.
func TestFeatureErrorSendsNothing(t *testing.T) {
	ns := nstest.New(t, "nft")
	a, b := newToy("toy_a", 0), newToy("toy_b", 0)
	tb, log := newLoggedTable(t, ns, a, b)
	a.put(1)
	mustSync(t, tb, log, nfttest.LogFull)
	before := nfttest.List(t, ns)
	a.put(2)
	b.planErr = errors.New("bad input")
	err := tb.Sync()
	if err == nil || !strings.Contains(err.Error(), "toy_b: bad input") {
		t.Fatalf("Sync = %v, want toy_b's error", err)
	}
	if a.aborts != 1 {
		t.Errorf("toy_a aborted %d times, want 1", a.aborts)
	}
	if got := nfttest.List(t, ns); got != before {
		t.Errorf("a failed sync changed the table:\n%s\nwas:\n%s", got, before)
	}
	b.planErr = nil
	mustSync(t, tb, log, nfttest.LogFull) // after an error, a full one
	if !strings.Contains(nfttest.List(t, ns), "elements = { 1, 2 }") {
		t.Errorf("table:\n%s", nfttest.List(t, ns))
	}
}

// TestTwoFeaturesOneName: two features cannot share a set or chain name.
func TestTwoFeaturesOneName(t *testing.T) {
	ns := nstest.New(t, "nft")
	tb, _ := newLoggedTable(t, ns, newToy("toy", 0), newToy("toy", 0))
	if err := tb.Sync(); err == nil || !strings.Contains(err.Error(), "set toy_ports of feature toy is also toy's") {
		t.Errorf("Sync = %v", err)
	}
	if nfttest.HasTable(t, ns, "inet", TableName) {
		t.Error("a refused sync created the table")
	}
}

// TestBatches: thousands of elements go out in messages of at most 512
// (the library silently truncates bigger ones), in a full sync and in a
// partial one.
func TestBatches(t *testing.T) {
	ns := nstest.New(t, "nft")
	a := newToy("toy", 0)
	tb, log := newLoggedTable(t, ns, a)
	for p := range uint16(3000) {
		a.put(10000 + p)
	}
	mustSync(t, tb, log, nfttest.LogFull)
	for p := range uint16(2000) {
		a.put(20000 + p)
	}
	mustSync(t, tb, log, "changes=2000")
	elems, err := tb.Elements("toy_ports")
	if err != nil || len(elems) != 5000 {
		t.Errorf("set holds %d elements (%v), want 5000", len(elems), err)
	}
}

// TestRecovery: a partial sync that fails (the table was deleted behind
// knit's back) is followed at once by a full one, and the hourly full
// sync repairs what a partial one cannot see. Other tables are never
// touched, Delete included.
func TestRecovery(t *testing.T) {
	ns := nstest.New(t, "nft")
	nfttest.AddForeignTable(t, ns)
	foreign := nfttest.Nft(t, ns, "list", "table", "ip", "foreign")
	a := newToy("toy", 0)
	tb, log := newLoggedTable(t, ns, a)
	a.put(1)
	mustSync(t, tb, log, nfttest.LogFull)
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(knitTable())
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	a.put(2)
	if err := tb.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := log.Take(); !strings.Contains(got, "partial nftables sync failed") || !strings.Contains(got, nfttest.LogFull) {
		t.Errorf("log %q; want a failed partial sync, then a full one", got)
	}
	if !strings.Contains(nfttest.List(t, ns), "elements = { 1, 2 }") {
		t.Errorf("table after recovery:\n%s", nfttest.List(t, ns))
	}

	nfttest.Nft(t, ns, "add", "element", "inet", "knit", "toy_ports", "{ 7 }")
	mustSync(t, tb, log, nfttest.LogPartial)
	tb.mu.Lock()
	tb.fullAt = time.Now().Add(-fullResyncInterval)
	tb.mu.Unlock()
	mustSync(t, tb, log, nfttest.LogFull)
	if got := nfttest.List(t, ns); !strings.Contains(got, "elements = { 1, 2 }") {
		t.Errorf("the hourly full sync left:\n%s", got)
	}
	if err := tb.Delete(); err != nil {
		t.Fatal(err)
	}
	if nfttest.HasTable(t, ns, "inet", TableName) || nfttest.Nft(t, ns, "list", "table", "ip", "foreign") != foreign {
		t.Errorf("after Delete: tables\n%s", nfttest.Nft(t, ns, "list", "tables"))
	}
}

// TestLearnedSetKept: what the packet path put in a learned set survives
// full syncs; a set no feature renders any more is removed.
func TestLearnedSetKept(t *testing.T) {
	ns := nstest.New(t, "nft")
	a := newToy("toy", 0)
	a.learned = true
	tb, log := newLoggedTable(t, ns, a)
	mustSync(t, tb, log, nfttest.LogFull)
	nfttest.Nft(t, ns, "add", "element", "inet", "knit", "toy_seen", "{ 443 timeout 1h }")
	tb.ForceFull()
	mustSync(t, tb, log, nfttest.LogFull)
	if got := nfttest.Nft(t, ns, "list", "set", "inet", "knit", "toy_seen"); !strings.Contains(got, "443") {
		t.Errorf("a full sync emptied the learned set:\n%s", got)
	}
	a.learned, a.comment = false, "knit: without the learned set"
	mustSync(t, tb, log, "removing nftables set no longer rendered")
	if strings.Contains(nfttest.List(t, ns), "toy_seen") {
		t.Errorf("the set no feature renders is still there:\n%s", nfttest.List(t, ns))
	}
}

// TestKeyedSet: a KeyedSet sends what changed since the last commit, all
// for a full sync, and keeps what was put between Change and Commit for
// the next one.
func TestKeyedSet(t *testing.T) {
	s := NewKeyedSet("s")
	key := func(b byte) []byte { return []byte{b} }
	s.Put(nftables.SetElement{Key: key(1), Val: []byte{1}})
	s.Put(nftables.SetElement{Key: key(2), Val: []byte{2}})
	describe := func(c SetChange) string { return fmt.Sprintf("del=%d add=%d", len(c.Del), len(c.Add)) }
	if got := describe(s.Change(false)); got != "del=0 add=2" {
		t.Errorf("first change: %s", got)
	}
	s.Put(nftables.SetElement{Key: key(3)}) // between Change and Commit
	s.Commit()
	s.Put(nftables.SetElement{Key: key(1), Val: []byte{9}}) // a new value
	s.Put(nftables.SetElement{Key: key(2), Val: []byte{2}}) // the same again
	s.Delete(key(4))                                        // never there
	if got := describe(s.Change(false)); got != "del=1 add=2" {
		t.Errorf("second change: %s (want 1 re-added with its value, 3 added)", got)
	}
	s.Abort()
	if got := describe(s.Change(false)); got != "del=0 add=3" {
		t.Errorf("after Abort: %s, want everything", got)
	}
}
