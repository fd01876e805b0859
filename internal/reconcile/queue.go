package reconcile

import (
	"sync"
	"time"
)

// queue is a set of dirty keys, each handed to at most one worker at a time:
// a key added while it is being synced is synced again afterwards.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	order    []string
	dirty    map[string]bool
	active   map[string]bool
	failures map[string]int
	closed   bool
}

func newQueue() *queue {
	q := &queue{dirty: map[string]bool{}, active: map[string]bool{}, failures: map[string]int{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if !q.active[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.order[0]
	q.order = q.order[1:]
	delete(q.dirty, key)
	q.active[key] = true
	return key, true
}

func (q *queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	if q.dirty[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// backoff counts a failure of key and returns how long to wait: 50 ms
// doubling up to 30 s.
func (q *queue) backoff(key string) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.failures[key]
	q.failures[key] = n + 1
	d := 50 * time.Millisecond << min(n, 10)
	return min(d, 30*time.Second)
}

func (q *queue) forget(key string) {
	q.mu.Lock()
	delete(q.failures, key)
	q.mu.Unlock()
}

func (q *queue) shutdown() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
