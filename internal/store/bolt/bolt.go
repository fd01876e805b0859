// Package bolt is knit's default store.Store: one bbolt file on local disk.
//
// Layout: bucket "kv" maps each key to its value prefixed with the 8-byte
// big-endian revision that last wrote it (its ModRev); bucket "meta" holds
// "rev", the store revision as an 8-byte big-endian integer, written in the
// same bbolt transaction as the data so that revisions survive restarts.
//
// Concurrent Updates go through bbolt's Batch, so they share one bbolt
// transaction and one fsync; fn may therefore run more than once. An Update
// that finds no other Update in flight commits directly instead, so that a
// lone writer does not pay the batch delay. Each logical Update that writes
// still gets its own revision, assigned inside the transaction in call order,
// and its events are handed to the watch hub only after the transaction
// committed; the hub delivers them in revision order. The bbolt file lock is
// taken with a timeout, so a second process opening the same file fails fast
// instead of hanging.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/watchhub"
)

const (
	// openTimeout bounds the wait for the file lock held by another process.
	openTimeout = time.Second
	// batchDelay is how long a batch of concurrent Updates waits for more
	// Updates to join before it commits: about one fsync on an SSD. bbolt's
	// default of 10ms made 16 concurrent writers 3-5x slower.
	batchDelay = 2 * time.Millisecond
)

var (
	dataBucket = []byte("kv")
	metaBucket = []byte("meta")
	revKey     = []byte("rev")
)

type boltStore struct {
	path string
	db   *bbolt.DB
	hub  *watchhub.Hub

	// closeMu is held shared by every call and exclusively by Close, so the
	// database is never closed under a running transaction.
	closeMu sync.RWMutex
	closed  bool

	writers atomic.Int32 // Updates in flight, to choose Update or Batch
}

// Open opens or creates the store file at path, creating its directory with
// mode 0700 and the file with mode 0600. It fails after about a second if
// another process has the file open.
func Open(path string) (store.Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: create directory: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("store %s is in use by another process (knitd already running?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: open: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	var rev int64
	err = db.Update(func(btx *bbolt.Tx) error {
		if _, err := btx.CreateBucketIfNotExists(dataBucket); err != nil {
			return err
		}
		if _, err := btx.CreateBucketIfNotExists(metaBucket); err != nil {
			return err
		}
		rev, err = readRev(btx)
		return err
	})
	if err != nil {
		// The init error matters more than a failure to close.
		_ = db.Close()
		return nil, fmt.Errorf("store %s: initialize: %w", path, err)
	}
	return &boltStore{path: path, db: db, hub: watchhub.New(rev, watchhub.Options{})}, nil
}

// begin takes the shared close lock; the caller must call s.closeMu.RUnlock
// if it returns nil.
func (s *boltStore) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store %s: %s: %w", s.path, op, err)
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// wrap adds the file name to errors from bbolt but returns fnErr, the error
// of the caller's fn, unchanged.
func (s *boltStore) wrap(op string, err, fnErr error) error {
	if err == nil || err == fnErr {
		return err
	}
	return fmt.Errorf("store %s: %s: %w", s.path, op, err)
}

func (s *boltStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := s.begin(ctx, "view"); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	var fnErr error
	err := s.db.View(func(btx *bbolt.Tx) error {
		t := newTx(btx, 0)
		fnErr = fn(t)
		t.done = true
		return fnErr
	})
	return s.wrap("view", err, fnErr)
}

// commit is what one run of an Update's fn produced.
type commit struct {
	rev    int64
	events []store.Event
	fnErr  error
}

func (s *boltStore) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	if err := s.begin(ctx, "update"); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	commitFn := s.db.Batch
	if s.writers.Add(1) == 1 {
		commitFn = s.db.Update // alone: no point waiting for a batch
	}
	defer s.writers.Add(-1)
	var c commit
	// Batch may run this several times (when another call in the batch
	// fails); only the last run, which is in the committed transaction, counts.
	err := commitFn(func(btx *bbolt.Tx) error {
		c = commit{}
		base, err := readRev(btx)
		if err != nil {
			return err
		}
		t := newTx(btx, base+1)
		c.fnErr = fn(t)
		t.done = true
		if c.fnErr != nil {
			return c.fnErr
		}
		if c.events, err = t.events(); err != nil {
			return err
		}
		if len(c.events) == 0 {
			c.rev = base
			return nil
		}
		c.rev = base + 1
		return writeRev(btx, c.rev)
	})
	if err != nil {
		return 0, s.wrap("update", err, c.fnErr)
	}
	if len(c.events) == 0 {
		s.hub.Wait(c.rev)
	} else {
		s.hub.Publish(c.rev, c.events)
	}
	return c.rev, nil
}

func (s *boltStore) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	if err := s.begin(ctx, "list"); err != nil {
		return nil, 0, err
	}
	defer s.closeMu.RUnlock()
	var (
		kvs []store.KV
		rev int64
	)
	err := s.db.View(func(btx *bbolt.Tx) error {
		var err error
		if rev, err = readRev(btx); err != nil {
			return err
		}
		kvs, err = newTx(btx, 0).List(prefix)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store %s: list %q: %w", s.path, prefix, err)
	}
	s.hub.Wait(rev)
	return kvs, rev, nil
}

func (s *boltStore) Watch(ctx context.Context, prefix string, afterRev int64) (<-chan store.Event, error) {
	ch, err := s.hub.Watch(ctx, prefix, afterRev)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.path, err)
	}
	return ch, nil
}

// Rev returns the revision of the last commit whose events were published.
func (s *boltStore) Rev() int64 { return s.hub.Rev() }

// Close waits for running calls, closes every watch and the file. Closing
// twice is harmless.
func (s *boltStore) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.hub.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store %s: close: %w", s.path, err)
	}
	return nil
}
