// Package reconcile runs level-triggered control loops: it watches a store
// prefix, queues the keys that changed, and calls a Sync function that makes
// the kernel match the store for one key. A key is never synced by two
// workers at once; a failed sync is retried with exponential backoff; a
// periodic resync queues every key again so drift is repaired even without
// events. After a watch falls behind, the loop lists again and carries on.
package reconcile

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/knit-net/knit/internal/store"
)

// Syncer makes the world match the store for one key. value is nil when the
// key is absent. Sync must be idempotent.
type Syncer interface {
	Sync(ctx context.Context, key string, value []byte) error
}

// SyncFunc adapts a function to Syncer.
type SyncFunc func(ctx context.Context, key string, value []byte) error

// Sync calls f.
func (f SyncFunc) Sync(ctx context.Context, key string, value []byte) error {
	return f(ctx, key, value)
}

// Options configure a Loop.
type Options struct {
	Name    string // for logs
	Prefix  string // store prefix watched
	Workers int    // parallel syncs of different keys; default 1
	Resync  time.Duration
	Logger  *slog.Logger
}

// Loop is one control loop.
type Loop struct {
	opts  Options
	st    store.Store
	sync  Syncer
	queue *queue
}

// New makes a loop; Run starts it.
func New(st store.Store, s Syncer, opts Options) *Loop {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Loop{opts: opts, st: st, sync: s, queue: newQueue()}
}

// Enqueue asks for key to be synced (e.g. after a kernel event).
func (l *Loop) Enqueue(key string) { l.queue.add(key) }

// Initial lists the prefix once and syncs every key in it before returning,
// so the caller can prune what nothing wants afterwards. It returns the
// revision to watch from.
func (l *Loop) Initial(ctx context.Context) (int64, []store.KV, error) {
	kvs, rev, err := l.st.List(ctx, l.opts.Prefix)
	if err != nil {
		return 0, nil, err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, l.opts.Workers)
	for _, kv := range kvs {
		wg.Add(1)
		sem <- struct{}{}
		go func(kv store.KV) {
			defer func() { <-sem; wg.Done() }()
			if err := l.sync.Sync(ctx, kv.Key, kv.Value); err != nil {
				l.opts.Logger.Warn("initial sync failed; will retry", "loop", l.opts.Name, "key", kv.Key, "err", err)
				l.queue.add(kv.Key)
			}
		}(kv)
	}
	wg.Wait()
	return rev, kvs, nil
}

// Run watches from rev and syncs until ctx ends.
func (l *Loop) Run(ctx context.Context, rev int64) {
	var wg sync.WaitGroup
	for range l.opts.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); l.work(ctx) }()
	}
	go func() { <-ctx.Done(); l.queue.shutdown() }()
	if l.opts.Resync > 0 {
		go l.resync(ctx)
	}
	l.watch(ctx, rev)
	wg.Wait()
}

func (l *Loop) watch(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		ch, err := l.st.Watch(ctx, l.opts.Prefix, rev)
		if err != nil {
			// Compacted or transient: list again and queue everything.
			kvs, r, lerr := l.st.List(ctx, l.opts.Prefix)
			if lerr != nil {
				l.opts.Logger.Warn("relist failed", "loop", l.opts.Name, "err", lerr)
				sleepCtx(ctx, time.Second)
				continue
			}
			for _, kv := range kvs {
				l.queue.add(kv.Key)
			}
			rev = r
			continue
		}
		for ev := range ch {
			rev = ev.Rev
			l.queue.add(ev.Key)
		}
	}
}

func (l *Loop) resync(ctx context.Context) {
	t := time.NewTicker(l.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			kvs, _, err := l.st.List(ctx, l.opts.Prefix)
			if err != nil {
				continue
			}
			for _, kv := range kvs {
				l.queue.add(kv.Key)
			}
		}
	}
}

func (l *Loop) work(ctx context.Context) {
	for {
		key, ok := l.queue.get()
		if !ok {
			return
		}
		err := l.syncKey(ctx, key)
		l.queue.done(key)
		if err != nil && ctx.Err() == nil {
			d := l.queue.backoff(key)
			l.opts.Logger.Warn("sync failed; retrying", "loop", l.opts.Name, "key", key, "in", d, "err", err)
			time.AfterFunc(d, func() { l.queue.add(key) })
		} else {
			l.queue.forget(key)
		}
	}
}

func (l *Loop) syncKey(ctx context.Context, key string) error {
	var val []byte
	err := l.st.View(ctx, func(tx store.Tx) error {
		v, ok, err := tx.Get(key)
		if ok {
			val = v
		}
		return err
	})
	if err != nil {
		return err
	}
	return l.sync.Sync(ctx, key, val)
}

// KeyName is the last path element of a key ("containers/web" → "web").
func KeyName(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
