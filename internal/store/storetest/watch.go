package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/watchhub"
)

func testRevisions(t *testing.T, s store.Store) {
	if s.Rev() != 0 {
		t.Fatalf("new store at rev %d, want 0", s.Rev())
	}
	for want := int64(1); want <= 3; want++ {
		if rev := put(t, s, "k", fmt.Sprint(want)); rev != want || s.Rev() != want {
			t.Fatalf("update %d: rev %d, Rev() %d", want, rev, s.Rev())
		}
	}
	// Updates that change nothing keep the revision.
	noops := map[string]func(store.Tx) error{
		"read only":         func(tx store.Tx) error { _, _, err := tx.Get("k"); return err },
		"delete missing":    func(tx store.Tx) error { return tx.Delete("missing") },
		"put then delete":   func(tx store.Tx) error { _ = tx.Put("new", nil); return tx.Delete("new") },
		"nothing at all":    func(store.Tx) error { return nil },
		"failed with write": func(tx store.Tx) error { _ = tx.Put("k", nil); return errors.New("no") },
	}
	for name, fn := range noops {
		rev, err := s.Update(t.Context(), fn)
		if err == nil && rev != 3 {
			t.Errorf("%s: update returned rev %d, want 3", name, rev)
		}
		if s.Rev() != 3 {
			t.Errorf("%s: Rev() = %d, want 3", name, s.Rev())
		}
	}
	if rev := del(t, s, "k"); rev != 4 {
		t.Errorf("delete: rev %d, want 4", rev)
	}
	if _, rev, err := s.List(t.Context(), ""); err != nil || rev != 4 {
		t.Errorf("list rev = %d, %v; want 4", rev, err)
	}
}

func testModRev(t *testing.T, s store.Store) {
	r1 := put(t, s, "a", "1")
	r2 := put(t, s, "b", "1")
	r3 := put(t, s, "a", "2", "c", "1")
	kvs, _, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a": r3, "b": r2, "c": r3}
	if len(kvs) != len(want) {
		t.Fatalf("list = %v", kvs)
	}
	for _, kv := range kvs {
		if kv.ModRev != want[kv.Key] {
			t.Errorf("%s: ModRev %d, want %d (revs %d %d %d)", kv.Key, kv.ModRev, want[kv.Key], r1, r2, r3)
		}
	}
}

func testWatch(t *testing.T, s store.Store) {
	r0 := put(t, s, "old", "x")
	ch := watch(t, s, "", r0)
	r1 := put(t, s, "b", "1", "a", "1")
	r2 := del(t, s, "old", "missing")
	r3 := update(t, s, func(tx store.Tx) error {
		if err := tx.Put("a", []byte("2")); err != nil {
			return err
		}
		return tx.Delete("b")
	})
	expect(t, ch,
		ev(store.EventPut, "a", "1", r1), ev(store.EventPut, "b", "1", r1),
		ev(store.EventDelete, "old", "", r2),
		ev(store.EventPut, "a", "2", r3), ev(store.EventDelete, "b", "", r3))
	quiet(t, ch)
}

func testWatchPrefix(t *testing.T, s store.Store) {
	ch := watch(t, s, "networks/", s.Rev())
	r1 := put(t, s, "networks2/x", "x", "networks/a", "a", "endpoints/e", "e")
	put(t, s, "networks2/y", "y")
	r3 := del(t, s, "networks/a")
	expect(t, ch, ev(store.EventPut, "networks/a", "a", r1), ev(store.EventDelete, "networks/a", "", r3))
	quiet(t, ch)
}

func testWatchReplay(t *testing.T, s store.Store) {
	r1 := put(t, s, "a", "1")
	r2 := put(t, s, "b", "1")
	r3 := del(t, s, "a")
	expect(t, watch(t, s, "", 0),
		ev(store.EventPut, "a", "1", r1), ev(store.EventPut, "b", "1", r2), ev(store.EventDelete, "a", "", r3))
	ch := watch(t, s, "", r2)
	expect(t, ch, ev(store.EventDelete, "a", "", r3))
	r4 := put(t, s, "c", "1")
	expect(t, ch, ev(store.EventPut, "c", "1", r4))
	quiet(t, watch(t, s, "", r4))
}

// putMany writes n keys under prefix in one Update.
func putMany(t *testing.T, s store.Store, prefix string, n int) int64 {
	t.Helper()
	return update(t, s, func(tx store.Tx) error {
		for i := range n {
			if err := tx.Put(fmt.Sprintf("%s%06d", prefix, i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
}

func testWatchCompacted(t *testing.T, s store.Store) {
	r1 := put(t, s, "a", "1")
	// One commit with more events than the ring holds pushes out r1 and
	// part of r2 itself.
	r2 := putMany(t, s, "bulk/", watchhub.DefaultRingSize+1)
	for _, after := range []int64{0, r1} {
		if _, err := s.Watch(t.Context(), "", after); !errors.Is(err, store.ErrCompacted) {
			t.Errorf("watch after %d: err = %v, want ErrCompacted", after, err)
		}
	}
	// The recovery path: List, then watch from the listed revision.
	_, rev, err := s.List(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if rev != r2 {
		t.Errorf("list rev = %d, want %d", rev, r2)
	}
	ch := watch(t, s, "a", rev)
	r3 := put(t, s, "a", "2")
	expect(t, ch, ev(store.EventPut, "a", "2", r3))
}

func testSlowWatcher(t *testing.T, s store.Store) {
	slow := watch(t, s, "slow/", s.Rev())
	fast := watch(t, s, "fast/", s.Rev())
	// Never reading slow must neither block commits nor keep the events.
	putMany(t, s, "slow/", watchhub.DefaultMaxPending+1)
	r := put(t, s, "fast/a", "1")
	expect(t, fast, ev(store.EventPut, "fast/a", "1", r))
	closed(t, slow)
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Watch(ctx, "", s.Rev())
	if err != nil {
		t.Fatal(err)
	}
	r := put(t, s, "a", "1")
	expect(t, ch, ev(store.EventPut, "a", "1", r))
	cancel()
	closed(t, ch)
	if _, err := s.Watch(canceled(), "", s.Rev()); !errors.Is(err, context.Canceled) {
		t.Errorf("watch with canceled ctx: err = %v", err)
	}
	if err := s.View(canceled(), func(store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("view with canceled ctx: err = %v", err)
	}
	if _, err := s.Update(canceled(), func(store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("update with canceled ctx: err = %v", err)
	}
}

func testClosed(t *testing.T, s store.Store) {
	r := put(t, s, "a", "1")
	ch := watch(t, s, "", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed(t, ch)
	if _, err := s.Watch(t.Context(), "", r); !errors.Is(err, store.ErrClosed) {
		t.Errorf("watch: err = %v, want ErrClosed", err)
	}
	if err := s.View(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("view: err = %v, want ErrClosed", err)
	}
	if _, err := s.Update(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("update: err = %v, want ErrClosed", err)
	}
	if _, _, err := s.List(t.Context(), ""); !errors.Is(err, store.ErrClosed) {
		t.Errorf("list: err = %v, want ErrClosed", err)
	}
}
