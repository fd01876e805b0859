package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/knit-net/knit/internal/store"
)

// PassLoop is the whole-state counterpart of Loop: whenever anything under
// its prefixes changes, it runs one Pass that recomputes everything from the
// store and applies it. It suits derived state where one change can affect
// any number of outputs (a label change moves a container between services
// and policies). Changes that arrive while a pass runs are folded into the
// next one; a failed pass is retried with backoff; a periodic resync repairs
// drift.
type PassLoop struct {
	name     string
	st       store.Store
	prefixes []string
	pass     func(ctx context.Context) error
	log      *slog.Logger
	resync   time.Duration
	poke     chan struct{}

	mu      sync.Mutex
	applied int64         // store revision the last pass reflects
	waiters chan struct{} // closed and replaced after every pass
}

// NewPassLoop makes a loop; Run starts it.
func NewPassLoop(name string, st store.Store, prefixes []string, resync time.Duration, log *slog.Logger, pass func(ctx context.Context) error) *PassLoop {
	if log == nil {
		log = slog.Default()
	}
	return &PassLoop{name: name, st: st, prefixes: prefixes, pass: pass, log: log, resync: resync,
		poke: make(chan struct{}, 1), waiters: make(chan struct{})}
}

// Poke asks for a pass.
func (l *PassLoop) Poke() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// Sync runs one pass now (for startup, before the loop runs).
func (l *PassLoop) Sync(ctx context.Context) error { return l.run(ctx) }

// Applied returns once a pass has applied a store revision of at least rev.
func (l *PassLoop) Applied(ctx context.Context, rev int64) error {
	for {
		l.mu.Lock()
		done, ch := l.applied >= rev, l.waiters
		l.mu.Unlock()
		if done {
			return nil
		}
		l.Poke() // rev may be a write under a prefix this loop does not watch
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to apply revision %d: %w", l.name, rev, ctx.Err())
		}
	}
}

// Run watches the prefixes and runs passes until ctx ends.
func (l *PassLoop) Run(ctx context.Context) {
	for _, prefix := range l.prefixes {
		go l.watch(ctx, prefix)
	}
	resync := time.NewTicker(l.resync)
	defer resync.Stop()
	l.Poke()
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.poke:
		case <-resync.C:
		}
		if err := l.run(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Error("pass failed; retrying", "loop", l.name, "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			l.Poke()
			continue
		}
		backoff = 10 * time.Millisecond
	}
}

func (l *PassLoop) run(ctx context.Context) error {
	rev := l.st.Rev() // what the pass reads is at least this new
	if err := l.pass(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	if rev > l.applied {
		l.applied = rev
	}
	close(l.waiters)
	l.waiters = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// watch pokes the loop on every change under prefix, watching again when
// the store drops a watcher that fell behind.
func (l *PassLoop) watch(ctx context.Context, prefix string) {
	for ctx.Err() == nil {
		ch, err := l.st.Watch(ctx, prefix, l.st.Rev())
		if err != nil {
			l.log.Warn("watch failed; retrying", "loop", l.name, "prefix", prefix, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		l.Poke()
		for range ch {
			l.Poke()
		}
	}
}
