package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/store"
)

func testPutGetDelete(t *testing.T, s store.Store) {
	if _, ok := get(t, s, "networks/a"); ok {
		t.Fatal("empty store has networks/a")
	}
	put(t, s, "networks/a", `{"a":1}`, "empty", "")
	if v, ok := get(t, s, "networks/a"); !ok || v != `{"a":1}` {
		t.Errorf("get = %q, %v; want {\"a\":1}, true", v, ok)
	}
	if v, ok := get(t, s, "empty"); !ok || v != "" {
		t.Errorf("get empty value = %q, %v; want \"\", true", v, ok)
	}
	put(t, s, "networks/a", "2")
	if v, _ := get(t, s, "networks/a"); v != "2" {
		t.Errorf("after overwrite get = %q, want 2", v)
	}
	del(t, s, "networks/a", "never-existed")
	if _, ok := get(t, s, "networks/a"); ok {
		t.Error("networks/a still exists after delete")
	}
	_, err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("", []byte("x")) })
	if !errors.Is(err, store.ErrEmptyKey) {
		t.Errorf("put empty key: err = %v, want ErrEmptyKey", err)
	}
}

func testListPrefix(t *testing.T, s store.Store) {
	put(t, s, "networks/b", "b", "networks2/x", "x", "networks/a", "a", "networks", "n",
		"endpoints/e", "e", "networks/a/sub", "s")
	kvs, rev, err := s.List(t.Context(), "networks/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	if want := []string{"networks/a", "networks/a/sub", "networks/b"}; !slices.Equal(keys, want) {
		t.Errorf("list networks/ = %q, want %q", keys, want)
	}
	if len(kvs) > 0 && string(kvs[0].Value) != "a" {
		t.Errorf("networks/a value = %q", kvs[0].Value)
	}
	if rev != s.Rev() {
		t.Errorf("list rev = %d, Rev() = %d", rev, s.Rev())
	}
	all, _, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || !slices.IsSortedFunc(all, func(a, b store.KV) int { return cmp.Compare(a.Key, b.Key) }) {
		t.Errorf("list all: %d keys, sorted=%v", len(all), all)
	}
	none, _, err := s.List(t.Context(), "zzz/")
	if err != nil || len(none) != 0 {
		t.Errorf("list zzz/ = %v, %v; want nothing", none, err)
	}
}

func testValuesAreCopied(t *testing.T, s store.Store) {
	buf := []byte("before")
	update(t, s, func(tx store.Tx) error { return tx.Put("k", buf) })
	copy(buf, "XXXXXX")
	err := s.View(t.Context(), func(tx store.Tx) error {
		v, _, err := tx.Get("k")
		if err != nil {
			return err
		}
		copy(v, "YYYYYY")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, err := s.List(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	copy(kvs[0].Value, "ZZZZZZ")
	if v, _ := get(t, s, "k"); v != "before" {
		t.Errorf("stored value changed through a caller's slice: %q", v)
	}
}

func testReadYourWrites(t *testing.T, s store.Store) {
	put(t, s, "a", "old", "b", "b")
	update(t, s, func(tx store.Tx) error {
		if err := tx.Put("a", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("c", []byte("c")); err != nil {
			return err
		}
		if err := tx.Delete("b"); err != nil {
			return err
		}
		if v, ok, err := tx.Get("a"); err != nil || !ok || string(v) != "new" {
			t.Errorf("get a in tx = %q, %v, %v; want new", v, ok, err)
		}
		if _, ok, err := tx.Get("b"); err != nil || ok {
			t.Errorf("get deleted b in tx: ok=%v err=%v", ok, err)
		}
		kvs, err := tx.List("")
		if err != nil {
			return err
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, kv.Key+"="+string(kv.Value))
		}
		if want := []string{"a=new", "c=c"}; !slices.Equal(got, want) {
			t.Errorf("list in tx = %q, want %q", got, want)
		}
		return nil
	})
}

func testErrorAborts(t *testing.T, s store.Store) {
	rev := put(t, s, "a", "1")
	ch := watch(t, s, "", rev)
	boom := errors.New("boom")
	got, err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("a", []byte("2")); err != nil {
			return err
		}
		if err := tx.Put("b", []byte("2")); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update err = %v (rev %d), want boom", err, got)
	}
	if v, _ := get(t, s, "a"); v != "1" {
		t.Errorf("a = %q after aborted update, want 1", v)
	}
	if _, ok := get(t, s, "b"); ok {
		t.Error("b exists after aborted update")
	}
	if s.Rev() != rev {
		t.Errorf("Rev = %d after aborted update, want %d", s.Rev(), rev)
	}
	quiet(t, ch)
	next := put(t, s, "c", "3")
	expect(t, ch, ev(store.EventPut, "c", "3", rev+1))
	if next != rev+1 {
		t.Errorf("next rev = %d, want %d", next, rev+1)
	}
}

func testViewRejectsWrites(t *testing.T, s store.Store) {
	put(t, s, "a", "1")
	err := s.View(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("a", []byte("2")); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("put in view: err = %v, want ErrReadOnly", err)
		}
		if err := tx.Delete("a"); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("delete in view: err = %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, s, "a"); v != "1" {
		t.Errorf("a = %q, want 1", v)
	}
}

func testTxDone(t *testing.T, s store.Store) {
	var leaked store.Tx
	update(t, s, func(tx store.Tx) error { leaked = tx; return nil })
	if err := leaked.Put("a", nil); !errors.Is(err, store.ErrTxDone) {
		t.Errorf("put after update: err = %v, want ErrTxDone", err)
	}
	if err := s.View(t.Context(), func(tx store.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := leaked.Get("a"); !errors.Is(err, store.ErrTxDone) {
		t.Errorf("get after view: err = %v, want ErrTxDone", err)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	const n = 50
	start := s.Rev()
	ch := watch(t, s, "counter", start)
	revs := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rev, err := s.Update(t.Context(), func(tx store.Tx) error {
				v, _, err := tx.Get("counter")
				if err != nil {
					return err
				}
				c, _ := strconv.Atoi(string(v))
				return tx.Put("counter", []byte(strconv.Itoa(c+1)))
			})
			if err != nil {
				t.Errorf("update: %v", err)
			}
			revs[i] = rev
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "counter"); v != strconv.Itoa(n) {
		t.Errorf("counter = %s, want %d", v, n)
	}
	slices.Sort(revs)
	for i, rev := range revs {
		if rev != start+int64(i)+1 {
			t.Fatalf("sorted update revisions %v, want %d..%d", revs, start+1, start+n)
		}
	}
	for i := 1; i <= n; i++ {
		expect(t, ch, ev(store.EventPut, "counter", strconv.Itoa(i), start+int64(i)))
	}
}

// testConcurrentFailures mixes failing and succeeding concurrent Updates (in
// bolt, a failing fn makes the rest of its batch run again).
func testConcurrentFailures(t *testing.T, s store.Store) {
	const n, ok = 40, 30
	ch := watch(t, s, "", s.Rev())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.Update(t.Context(), func(tx store.Tx) error {
				if err := tx.Put(fmt.Sprintf("k%02d", i), []byte("v")); err != nil {
					return err
				}
				if i >= ok {
					return errFail
				}
				return nil
			})
			if (i >= ok) != errors.Is(err, errFail) {
				t.Errorf("update %d: err = %v", i, err)
			}
		})
	}
	wg.Wait()
	kvs, rev, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != ok || rev != ok {
		t.Fatalf("after %d good updates: %d keys at rev %d", ok, len(kvs), rev)
	}
	for i := 1; i <= ok; i++ {
		select {
		case got := <-ch:
			if got.Rev != int64(i) || got.Type != store.EventPut {
				t.Fatalf("event %d: %s", i, fmtEvent(got))
			}
		case <-time.After(timeout):
			t.Fatalf("timed out waiting for event %d", i)
		}
	}
	quiet(t, ch)
}

var errFail = errors.New("planned failure")
