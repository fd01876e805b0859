// Package memstore is an in-memory store.Store for tests and tools. Nothing is
// persisted. Transactions are serialized by a read-write mutex: View calls run
// concurrently, an Update runs alone and runs its fn exactly once.
package memstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/watchhub"
)

type entry struct {
	value  []byte // never modified once stored
	modRev int64
}

type memStore struct {
	hub *watchhub.Hub

	mu     sync.RWMutex
	data   map[string]entry
	rev    int64
	closed bool
}

// New returns an empty store at revision 0.
func New() store.Store {
	return &memStore{
		hub:  watchhub.New(0, watchhub.Options{}),
		data: make(map[string]entry),
	}
}

func (s *memStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: view: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	t := &tx{s: s}
	defer t.finish()
	return fn(t)
}

func (s *memStore) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: update: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	t := &tx{s: s, writes: make(map[string]*entry), rev: s.rev + 1}
	err := fn(t)
	t.finish()
	if err != nil {
		return 0, err
	}
	events := s.apply(t)
	if len(events) == 0 {
		return s.rev, nil
	}
	s.rev = t.rev
	// Publishing under s.mu keeps events in commit order; it never blocks.
	s.hub.Publish(t.rev, events)
	return t.rev, nil
}

// apply commits t's writes to s.data and returns their events in key order.
func (s *memStore) apply(t *tx) []store.Event {
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var events []store.Event
	for _, k := range keys {
		e := t.writes[k]
		if e != nil {
			s.data[k] = *e
			events = append(events, store.Event{Type: store.EventPut, Key: k, Value: clone(e.value), Rev: t.rev})
		} else if _, ok := s.data[k]; ok {
			delete(s.data, k)
			events = append(events, store.Event{Type: store.EventDelete, Key: k, Rev: t.rev})
		}
	}
	return events
}

func (s *memStore) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	var (
		kvs []store.KV
		rev int64
	)
	err := s.View(ctx, func(t store.Tx) error {
		var err error
		kvs, err = t.List(prefix)
		rev = s.rev // s.mu is read-locked by View
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return kvs, rev, nil
}

func (s *memStore) Watch(ctx context.Context, prefix string, afterRev int64) (<-chan store.Event, error) {
	ch, err := s.hub.Watch(ctx, prefix, afterRev)
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	return ch, nil
}

func (s *memStore) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// Close drops the data and closes every watch. Closing twice is harmless.
func (s *memStore) Close() error {
	s.mu.Lock()
	s.closed = true
	s.data = nil
	s.mu.Unlock()
	s.hub.Close()
	return nil
}

// tx is a transaction on a memStore. Writes are buffered in writes (a nil
// entry is a delete) and applied when fn returns nil. Like every store.Tx it
// must not be used from several goroutines at once.
type tx struct {
	s      *memStore
	writes map[string]*entry // nil for View
	rev    int64             // revision this Update commits as, if it writes
	done   bool
}

func (t *tx) finish() { t.done = true }

func (t *tx) Get(key string) ([]byte, bool, error) {
	if t.done {
		return nil, false, store.ErrTxDone
	}
	if e, ok := t.writes[key]; ok {
		if e == nil {
			return nil, false, nil
		}
		return clone(e.value), true, nil
	}
	e, ok := t.s.data[key]
	if !ok {
		return nil, false, nil
	}
	return clone(e.value), true, nil
}

func (t *tx) List(prefix string) ([]store.KV, error) {
	if t.done {
		return nil, store.ErrTxDone
	}
	var kvs []store.KV
	add := func(k string, e entry) {
		kvs = append(kvs, store.KV{Key: k, Value: clone(e.value), ModRev: e.modRev})
	}
	for k, e := range t.s.data {
		if _, written := t.writes[k]; !written && strings.HasPrefix(k, prefix) {
			add(k, e)
		}
	}
	for k, e := range t.writes {
		if e != nil && strings.HasPrefix(k, prefix) {
			add(k, *e)
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs, nil
}

func (t *tx) Put(key string, value []byte) error {
	if err := t.writable(key); err != nil {
		return fmt.Errorf("memstore: put %q: %w", key, err)
	}
	t.writes[key] = &entry{value: clone(value), modRev: t.rev}
	return nil
}

func (t *tx) Delete(key string) error {
	if err := t.writable(key); err != nil {
		return fmt.Errorf("memstore: delete %q: %w", key, err)
	}
	t.writes[key] = nil
	return nil
}

func (t *tx) writable(key string) error {
	switch {
	case t.done:
		return store.ErrTxDone
	case t.writes == nil:
		return store.ErrReadOnly
	case key == "":
		return store.ErrEmptyKey
	}
	return nil
}

// clone copies b; the copy of an empty value is empty but not nil.
func clone(b []byte) []byte {
	return append([]byte{}, b...)
}
