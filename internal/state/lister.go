package state

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"sync"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
)

// ContainerLister lists containers as ListContainers does, reading them
// in the caller's transaction, but decodes only the records that changed
// since its last call: a record whose bytes hash (with a seed of this
// process) and length are what they were is the container decoded then.
// The service and policy controllers list every container on every pass,
// and decoding 1,000 records each time was two thirds of knitd's CPU while
// containers were attached (perf).
//
// The containers it returns share their maps and slices with later calls:
// callers must not modify them. Safe for concurrent use.
type ContainerLister struct {
	seed maphash.Seed
	mu   sync.Mutex
	memo map[string]memoEntry
}

type memoEntry struct {
	hash uint64
	n    int
	c    v1.Container
}

// NewContainerLister returns a lister that remembers nothing yet.
func NewContainerLister() *ContainerLister {
	return &ContainerLister{seed: maphash.MakeSeed(), memo: map[string]memoEntry{}}
}

// List returns every container in name order, as tx holds them.
func (l *ContainerLister) List(tx store.Tx) ([]v1.Container, error) {
	kvs, err := tx.List(ContainersPrefix)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]v1.Container, 0, len(kvs))
	next := make(map[string]memoEntry, len(kvs))
	for _, kv := range kvs {
		h := maphash.Bytes(l.seed, kv.Value)
		e, ok := l.memo[kv.Key]
		if !ok || e.hash != h || e.n != len(kv.Value) {
			e = memoEntry{hash: h, n: len(kv.Value)}
			if err := json.Unmarshal(kv.Value, &e.c); err != nil {
				return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
		}
		next[kv.Key] = e
		out = append(out, e.c)
	}
	l.memo = next
	return out, nil
}
