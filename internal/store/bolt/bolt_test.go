package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/bolt"
	"github.com/knit-net/knit/internal/store/storetest"
)

func open(tb testing.TB, path string) store.Store {
	tb.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "knit.db"))
	})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "knit.db")
	s := open(t, path)
	defer s.Close()
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	storetest.NoLeaks(t)
	path := filepath.Join(t.TempDir(), "knit.db")
	s := open(t, path)
	put := func(s store.Store, k, v string) int64 {
		rev, err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put(k, []byte(v)) })
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put(s, "a", "1")
	r2 := put(s, "b", "2")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if s.Rev() != r2 {
		t.Fatalf("reopened at rev %d, want %d", s.Rev(), r2)
	}
	kvs, rev, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rev != r2 || len(kvs) != 2 || string(kvs[1].Value) != "2" || kvs[1].ModRev != r2 {
		t.Fatalf("after reopen: rev %d, kvs %+v", rev, kvs)
	}
	// Events from before the restart are gone; watching from the current
	// revision works.
	if _, err := s.Watch(t.Context(), "", r2-1); !errors.Is(err, store.ErrCompacted) {
		t.Errorf("watch before restart revision: err = %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(t.Context(), "", r2)
	if err != nil {
		t.Fatal(err)
	}
	if r3 := put(s, "a", "3"); r3 != r2+1 {
		t.Errorf("first update after reopen: rev %d, want %d", r3, r2+1)
	}
	select {
	case ev := <-ch:
		if ev.Key != "a" || ev.Rev != r2+1 {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after reopen")
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knit.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	s2, err := bolt.Open(path)
	if err == nil {
		s2.Close()
		t.Fatal("second open of a file in use succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second open took %v", d)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("unclear error: %v", err)
	}
	t.Logf("second open: %v", err)
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bolt.Open(filepath.Join(file, "knit.db")) // parent is a file
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("open under a file: err = %v", err)
	}
}

func BenchmarkUpdate(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "knit.db"))
	defer s.Close()
	val := []byte(`{"name":"frontend","subnet":"10.0.0.0/24"}`)
	for b.Loop() {
		if _, err := s.Update(b.Context(), func(tx store.Tx) error { return tx.Put("networks/frontend", val) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "knit.db"))
	defer s.Close()
	val := []byte(`{"name":"frontend","subnet":"10.0.0.0/24"}`)
	var n atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		key := "networks/" + string(rune('a'+n.Add(1)%26))
		for pb.Next() {
			if _, err := s.Update(b.Context(), func(tx store.Tx) error { return tx.Put(key, val) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
