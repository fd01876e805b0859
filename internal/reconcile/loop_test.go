package reconcile

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

func put(t *testing.T, st store.Store, key, val string) {
	t.Helper()
	if _, err := st.Update(context.Background(), func(tx store.Tx) error { return tx.Put(key, []byte(val)) }); err != nil {
		t.Fatal(err)
	}
}

// recorder remembers the last value synced per key and fails a key a given
// number of times first.
type recorder struct {
	mu       sync.Mutex
	last     map[string]string
	failures map[string]int
	active   map[string]bool
	overlap  atomic.Bool
}

func (r *recorder) Sync(_ context.Context, key string, value []byte) error {
	r.mu.Lock()
	if r.active[key] {
		r.overlap.Store(true)
	}
	r.active[key] = true
	r.mu.Unlock()
	time.Sleep(time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active[key] = false
	if r.failures[key] > 0 {
		r.failures[key]--
		return errors.New("injected")
	}
	if value == nil {
		r.last[key] = "<deleted>"
	} else {
		r.last[key] = string(value)
	}
	return nil
}

func (r *recorder) get(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[key]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestLoopSyncsInitialEventsRetriesAndDeletes(t *testing.T) {
	st := memstore.New()
	put(t, st, "things/a", "1")
	rec := &recorder{last: map[string]string{}, failures: map[string]int{"things/b": 2}, active: map[string]bool{}}
	l := New(st, rec, Options{Name: "test", Prefix: "things/", Workers: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, kvs, err := l.Initial(ctx)
	if err != nil || len(kvs) != 1 || rec.get("things/a") != "1" {
		t.Fatalf("Initial: %v %v %q", err, kvs, rec.get("things/a"))
	}
	done := make(chan struct{})
	go func() { l.Run(ctx, rev); close(done) }()

	put(t, st, "things/b", "x") // fails twice, then succeeds through backoff
	put(t, st, "other/c", "ignored")
	for i := range 50 {
		put(t, st, "things/a", string(rune('a'+i%26)))
	}
	put(t, st, "things/a", "final")
	eventually(t, "things/a final", func() bool { return rec.get("things/a") == "final" })
	eventually(t, "things/b after retries", func() bool { return rec.get("things/b") == "x" })
	if rec.get("other/c") != "" {
		t.Error("a key outside the prefix was synced")
	}
	if _, err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete("things/a") }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delete seen", func() bool { return rec.get("things/a") == "<deleted>" })
	if rec.overlap.Load() {
		t.Error("one key was synced by two workers at once")
	}
	cancel()
	<-done
}

func TestQueueBackoffGrowsAndCaps(t *testing.T) {
	q := newQueue()
	var last time.Duration
	for i := range 20 {
		d := q.backoff("k")
		if i > 0 && d < last {
			t.Fatalf("backoff shrank: %v after %v", d, last)
		}
		last = d
	}
	if last != 30*time.Second {
		t.Fatalf("backoff cap = %v", last)
	}
	q.forget("k")
	if d := q.backoff("k"); d != 50*time.Millisecond {
		t.Fatalf("after forget: %v", d)
	}
}
