// Package watchhub is the in-process watch machinery shared by the store
// backends. A backend publishes the events of every commit to a Hub after the
// commit succeeded; the Hub keeps the most recent events in a ring so that
// watchers can resume from a recent revision, and fans events out to watchers.
//
// Slow watcher policy: publishing never blocks on a watcher. Each watcher has
// its own goroutine and an in-memory queue that grows as needed up to
// Options.MaxPending undelivered events. A watcher that would exceed that
// limit is dropped: its queue is discarded and its channel closed, and the
// consumer must List again and watch from the listed revision (as it must
// after ErrCompacted). The channel is also closed when the watch context ends
// or the hub closes; Close waits for every watcher goroutine to exit.
package watchhub

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/knit-net/knit/internal/store"
)

const (
	// DefaultRingSize is how many recent events a hub keeps for replay. Every
	// watcher in knitd is in-process and starts from a revision it has just
	// read, so replays are short; the ring only has to cover the events of a
	// burst. Each event holds a copy of its value (about 1 KiB for a
	// container), so the ring is a fixed cost of about 2 MiB at most.
	DefaultRingSize = 2048
	// DefaultMaxPending is how many undelivered events a watcher may have
	// before it is dropped. It leaves room for a full replay plus as many
	// live events.
	DefaultMaxPending = 2 * DefaultRingSize
)

// Options tunes a Hub. Zero fields take their defaults.
type Options struct {
	// RingSize is how many recent events are kept for replay.
	RingSize int
	// MaxPending is how many undelivered events one watcher may have before
	// its channel is closed. It is raised to RingSize if smaller, so that a
	// replay always fits.
	MaxPending int
}

// Hub keeps recent events and delivers them to watchers. It is safe for
// concurrent use.
type Hub struct {
	maxPending int

	mu   sync.Mutex
	cond *sync.Cond // signalled when rev advances or the hub closes
	ring []store.Event
	head int // index of the oldest kept event
	n    int // number of kept events
	// compacted is the highest revision with events no longer kept: a watch
	// must start after it.
	compacted int64
	rev       int64                   // last published revision
	early     map[int64][]store.Event // published ahead of a missing revision
	watchers  map[*watcher]struct{}
	closed    bool
	wg        sync.WaitGroup // watcher goroutines
}

// New returns a hub whose store is at revision rev. Events up to rev were
// never published here, so watches must start at rev or later.
func New(rev int64, opts Options) *Hub {
	if opts.RingSize <= 0 {
		opts.RingSize = DefaultRingSize
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	opts.MaxPending = max(opts.MaxPending, opts.RingSize)
	h := &Hub{
		maxPending: opts.MaxPending,
		ring:       make([]store.Event, opts.RingSize),
		compacted:  rev,
		rev:        rev,
		early:      make(map[int64][]store.Event),
		watchers:   make(map[*watcher]struct{}),
	}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// Rev returns the last published revision.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// Publish hands the hub the events of the commit with revision rev; every
// event must carry that revision. Revisions must be published exactly once
// each and without gaps, but may arrive out of order from concurrent
// committers: events are delivered in revision order, and Publish returns once
// rev and every revision before it were delivered to watchers (or the hub
// closed). It never waits on a watcher.
func (h *Hub) Publish(rev int64, events []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if _, dup := h.early[rev]; dup || rev <= h.rev {
		panic(fmt.Sprintf("watchhub: revision %d published twice", rev))
	}
	h.early[rev] = events
	for {
		evs, ok := h.early[h.rev+1]
		if !ok {
			break
		}
		delete(h.early, h.rev+1)
		h.rev++
		h.deliver(evs)
	}
	h.cond.Broadcast()
	h.wait(rev)
}

// Wait returns once revision rev was published, or the hub closed. A backend
// calls it before reporting a revision it read from storage, so that Rev and
// watches never lag behind what the backend returned.
func (h *Hub) Wait(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wait(rev)
}

func (h *Hub) wait(rev int64) {
	for h.rev < rev && !h.closed {
		h.cond.Wait()
	}
}

// deliver appends events to the ring and queues them to matching watchers.
func (h *Hub) deliver(events []store.Event) {
	for _, ev := range events {
		if h.n == len(h.ring) {
			h.compacted = h.ring[h.head].Rev
			h.ring[h.head] = store.Event{}
			h.head = (h.head + 1) % len(h.ring)
			h.n--
		}
		h.ring[(h.head+h.n)%len(h.ring)] = ev
		h.n++
	}
	for w := range h.watchers {
		if !w.push(events, h.maxPending) {
			h.drop(w)
		}
	}
}

// Watch returns a channel of every event on keys with the prefix whose
// revision is greater than afterRev, starting with kept events. It returns
// store.ErrCompacted if some of those events are no longer kept and
// store.ErrClosed after Close. The channel is closed when ctx ends, the hub
// closes, or the watcher falls MaxPending events behind.
func (h *Hub) Watch(ctx context.Context, prefix string, afterRev int64) (<-chan store.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watch %q: %w", prefix, err)
	}
	afterRev = max(afterRev, 0) // no event has a revision below 1
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, store.ErrClosed
	}
	if afterRev < h.compacted {
		return nil, fmt.Errorf("watch %q after revision %d (oldest allowed is %d): %w",
			prefix, afterRev, h.compacted, store.ErrCompacted)
	}
	w := newWatcher(ctx, prefix)
	for i := range h.n {
		ev := h.ring[(h.head+i)%len(h.ring)]
		if ev.Rev > afterRev && strings.HasPrefix(ev.Key, prefix) {
			w.queue = append(w.queue, ev)
		}
	}
	w.pending = len(w.queue)
	h.watchers[w] = struct{}{}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(w.out)
		w.run()
		h.mu.Lock()
		h.drop(w)
		h.mu.Unlock()
	}()
	return w.out, nil
}

// drop stops w and forgets it. h.mu must be held.
func (h *Hub) drop(w *watcher) {
	if _, ok := h.watchers[w]; ok {
		delete(h.watchers, w)
		close(w.stop)
	}
}

// Close closes every watch channel, makes later Watch calls fail with
// store.ErrClosed and releases waiting Publish calls. It waits for all
// watcher goroutines to exit. Calling it again does nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for w := range h.watchers {
		h.drop(w)
	}
	h.early = nil
	h.cond.Broadcast()
	h.mu.Unlock()
	h.wg.Wait()
}
