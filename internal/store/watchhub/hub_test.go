package watchhub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/store"
)

func put(rev int64, keys ...string) []store.Event {
	evs := make([]store.Event, len(keys))
	for i, k := range keys {
		evs[i] = store.Event{Type: store.EventPut, Key: k, Value: []byte(k), Rev: rev}
	}
	return evs
}

// recv reads n events or fails.
func recv(t *testing.T, ch <-chan store.Event, n int) []store.Event {
	t.Helper()
	var got []store.Event
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(got), n)
			}
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out after %d of %d events", len(got), n)
		}
	}
	return got
}

// closed drains ch and fails unless it is closed soon.
func closed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed")
		}
	}
}

// noLeaks fails the test if goroutines started during it outlive it.
func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for range 200 {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
	})
}

func TestOrderAndPrefix(t *testing.T) {
	noLeaks(t)
	h := New(0, Options{})
	defer h.Close()
	all, err := h.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := h.Watch(t.Context(), "networks/", 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Publish(1, put(1, "networks/a", "networks2/b"))
	h.Publish(2, put(2, "other"))
	h.Publish(3, put(3, "networks/c"))
	got := recv(t, all, 4)
	for i, want := range []string{"networks/a", "networks2/b", "other", "networks/c"} {
		if got[i].Key != want {
			t.Errorf("all[%d] = %q, want %q", i, got[i].Key, want)
		}
	}
	got = recv(t, nets, 2)
	if got[0].Key != "networks/a" || got[1].Key != "networks/c" || got[1].Rev != 3 {
		t.Errorf("prefix watch got %+v", got)
	}
	if h.Rev() != 3 {
		t.Errorf("Rev = %d, want 3", h.Rev())
	}
}

func TestOutOfOrderPublish(t *testing.T) {
	noLeaks(t)
	h := New(10, Options{})
	defer h.Close()
	ch, err := h.Watch(t.Context(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for rev := int64(20); rev > 10; rev-- {
		wg.Go(func() { h.Publish(rev, put(rev, fmt.Sprint(rev))) })
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	for i, ev := range recv(t, ch, 10) {
		if ev.Rev != int64(11+i) {
			t.Fatalf("event %d has rev %d, want %d", i, ev.Rev, 11+i)
		}
	}
}

func TestReplayAndCompaction(t *testing.T) {
	noLeaks(t)
	h := New(5, Options{RingSize: 4})
	defer h.Close()
	if _, err := h.Watch(t.Context(), "", 4); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch before the start revision: err = %v, want ErrCompacted", err)
	}
	for rev := int64(6); rev <= 9; rev++ {
		h.Publish(rev, put(rev, "k"))
	}
	ch, err := h.Watch(t.Context(), "", 5) // ring holds 6..9: full replay
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, 4); got[0].Rev != 6 || got[3].Rev != 9 {
		t.Errorf("replay = %+v", got)
	}
	h.Publish(10, put(10, "a", "b")) // evicts 6 and 7
	if _, err := h.Watch(t.Context(), "", 6); !errors.Is(err, store.ErrCompacted) {
		t.Errorf("err = %v, want ErrCompacted", err)
	}
	ch, err = h.Watch(t.Context(), "", 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, 4); got[0].Rev != 8 || got[3].Key != "b" {
		t.Errorf("replay = %+v", got)
	}
}

func TestSlowWatcherIsDropped(t *testing.T) {
	noLeaks(t)
	h := New(0, Options{RingSize: 4, MaxPending: 8})
	defer h.Close()
	slow, err := h.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for rev := int64(1); rev <= 20; rev++ {
		h.Publish(rev, put(rev, "k")) // must not block on slow
		if got := recv(t, fast, 1); got[0].Rev != rev {
			t.Fatalf("fast watcher got rev %d, want %d", got[0].Rev, rev)
		}
	}
	closed(t, slow)
}

func TestCancelAndClose(t *testing.T) {
	noLeaks(t)
	h := New(0, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	a, err := h.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Publish(1, put(1, "k"))
	cancel()
	closed(t, a)
	if _, err := h.Watch(ctx, "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("watch with done ctx: err = %v", err)
	}
	h.Close()
	closed(t, b)
	if _, err := h.Watch(t.Context(), "", 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("watch after close: err = %v", err)
	}
	h.Publish(2, put(2, "k")) // ignored, must not block or panic
	h.Close()
}
