// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens a fresh, empty
// store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// The suite relies on the shared watch hub's default limits
// (watchhub.DefaultRingSize and watchhub.DefaultMaxPending) to test
// compaction and slow watchers.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/store"
)

// timeout bounds every wait for an event or a closed channel.
const timeout = 10 * time.Second

// Run runs the conformance suite, one subtest per property. open must return
// a new empty store each time; Run closes it at the end of the subtest (so
// Close must tolerate being called again if open also arranges it). Subtests
// also fail if they leave goroutines behind.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGetDelete", testPutGetDelete},
		{"ListPrefix", testListPrefix},
		{"ValuesAreCopied", testValuesAreCopied},
		{"ReadYourWrites", testReadYourWrites},
		{"ErrorAborts", testErrorAborts},
		{"ViewRejectsWrites", testViewRejectsWrites},
		{"TxDoneAfterReturn", testTxDone},
		{"Revisions", testRevisions},
		{"ModRev", testModRev},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentFailures", testConcurrentFailures},
		{"Watch", testWatch},
		{"WatchPrefix", testWatchPrefix},
		{"WatchReplay", testWatchReplay},
		{"WatchCompacted", testWatchCompacted},
		{"SlowWatcherDropped", testSlowWatcher},
		{"WatchContextCancel", testWatchCancel},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NoLeaks(t)
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// NoLeaks fails t if it ends with more goroutines than it started with (after
// a grace period for goroutines that are exiting). Call it before anything
// that starts goroutines; tests using it must not run in parallel.
func NoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

// update runs fn in an Update and fails t on error.
func update(t *testing.T, s store.Store, fn func(store.Tx) error) int64 {
	t.Helper()
	rev, err := s.Update(t.Context(), fn)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	return rev
}

// put writes key=value pairs (alternating) in one Update and returns its
// revision.
func put(t *testing.T, s store.Store, kvs ...string) int64 {
	t.Helper()
	return update(t, s, func(tx store.Tx) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := tx.Put(kvs[i], []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

// del deletes keys in one Update and returns its revision.
func del(t *testing.T, s store.Store, keys ...string) int64 {
	t.Helper()
	return update(t, s, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// get reads key outside of any other transaction.
func get(t *testing.T, s store.Store, key string) (string, bool) {
	t.Helper()
	var (
		v  []byte
		ok bool
	)
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		v, ok, err = tx.Get(key)
		return err
	})
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(v), ok
}

// watch starts a watch that ends with the test.
func watch(t *testing.T, s store.Store, prefix string, afterRev int64) <-chan store.Event {
	t.Helper()
	ch, err := s.Watch(t.Context(), prefix, afterRev)
	if err != nil {
		t.Fatalf("watch %q after %d: %v", prefix, afterRev, err)
	}
	return ch
}

// ev builds an expected event; a delete has no value.
func ev(typ store.EventType, key, value string, rev int64) store.Event {
	e := store.Event{Type: typ, Key: key, Rev: rev}
	if typ == store.EventPut {
		e.Value = []byte(value)
	}
	return e
}

func fmtEvent(e store.Event) string {
	return fmt.Sprintf("%v %q=%q@%d", e.Type, e.Key, e.Value, e.Rev)
}

// expect reads len(want) events from ch and compares them with want.
func expect(t *testing.T, ch <-chan store.Event, want ...store.Event) {
	t.Helper()
	for i, w := range want {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatalf("event %d: channel closed, want %s", i, fmtEvent(w))
			}
			if got.Type != w.Type || got.Key != w.Key || got.Rev != w.Rev ||
				!bytes.Equal(got.Value, w.Value) || (w.Type == store.EventDelete && got.Value != nil) {
				t.Fatalf("event %d: got %s, want %s", i, fmtEvent(got), fmtEvent(w))
			}
		case <-time.After(timeout):
			t.Fatalf("event %d: timed out waiting for %s", i, fmtEvent(w))
		}
	}
}

// quiet fails if an event arrives on ch within a short time.
func quiet(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %s", fmtEvent(got))
		}
		t.Fatal("channel closed unexpectedly")
	case <-time.After(50 * time.Millisecond):
	}
}

// closed drains ch and fails unless it is closed within the timeout.
func closed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

// canceled returns a context that is already canceled.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
