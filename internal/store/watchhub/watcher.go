package watchhub

import (
	"context"
	"strings"
	"sync"

	"github.com/knit-net/knit/internal/store"
)

// watcher is one Watch call: a queue filled by Publish and drained into out by
// the watcher's own goroutine, so that publishing never waits on a consumer.
type watcher struct {
	ctx    context.Context
	prefix string
	out    chan store.Event
	wake   chan struct{} // capacity 1: the queue grew
	stop   chan struct{} // closed by the hub on overflow or Close

	mu      sync.Mutex
	queue   []store.Event // not yet taken by run
	pending int           // queued plus taken but not yet sent
}

func newWatcher(ctx context.Context, prefix string) *watcher {
	return &watcher{
		ctx:    ctx,
		prefix: prefix,
		out:    make(chan store.Event),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
}

// push queues the events matching the prefix. It reports false, queueing
// nothing, if that would leave more than limit events undelivered.
func (w *watcher) push(events []store.Event, limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ev := range events {
		if strings.HasPrefix(ev.Key, w.prefix) {
			n++
		}
	}
	if n == 0 {
		return true
	}
	if w.pending+n > limit {
		w.queue = nil
		return false
	}
	for _, ev := range events {
		if strings.HasPrefix(ev.Key, w.prefix) {
			w.queue = append(w.queue, ev)
		}
	}
	w.pending += n
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns and clears the queue.
func (w *watcher) take() []store.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// sent records that one taken event was delivered.
func (w *watcher) sent() {
	w.mu.Lock()
	w.pending--
	w.mu.Unlock()
}

// run delivers queued events until the context ends or the hub stops the
// watcher. The caller closes out afterwards.
func (w *watcher) run() {
	for {
		batch := w.take()
		if len(batch) == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.ctx.Done():
				return
			case <-w.stop:
				return
			}
		}
		for _, ev := range batch {
			select {
			case w.out <- ev:
				w.sent()
			case <-w.ctx.Done():
				return
			case <-w.stop:
				return
			}
		}
	}
}
