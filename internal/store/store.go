// Package store defines knit's source of truth: a revisioned key/value store
// with serializable transactions and watches. Backends live in sub-packages
// (bolt, the default embedded file; memstore, for tests) and all pass the same
// conformance suite in storetest.
//
// Keys are slash-separated paths ("networks/frontend"); values are JSON. Every
// committed write transaction bumps the store's revision by one, and every key
// it touched is reported to watchers with that revision, in commit order.
package store

import (
	"context"
	"errors"
	"strconv"
)

// ErrCompacted is returned by Watch when events after the asked revision are no
// longer kept; the caller should List again and watch from the new revision.
var ErrCompacted = errors.New("store: revision compacted; list again")

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("store: closed")

// ErrReadOnly is returned by Tx.Put and Tx.Delete inside View.
var ErrReadOnly = errors.New("store: write in read-only transaction")

// ErrEmptyKey is returned by Tx.Put and Tx.Delete for the empty key.
var ErrEmptyKey = errors.New("store: empty key")

// ErrTxDone is returned by a Tx used after its View or Update returned.
var ErrTxDone = errors.New("store: transaction already finished")

// KV is one key with its value and the revision that last wrote it.
type KV struct {
	Key    string
	Value  []byte
	ModRev int64
}

// Tx is a serializable view of the store inside View or Update. Writes made in
// a transaction are visible to its own later reads.
type Tx interface {
	// Get returns the value of key, or ok=false if it does not exist.
	Get(key string) (value []byte, ok bool, err error)
	// List returns every key with the prefix, in key order.
	List(prefix string) ([]KV, error)
	// Put writes key. It fails inside View.
	Put(key string, value []byte) error
	// Delete removes key; deleting a missing key is not an error. It fails
	// inside View.
	Delete(key string) error
}

// EventType says whether a key was written or removed.
type EventType int

const (
	// EventPut reports that a key was created or overwritten.
	EventPut EventType = iota + 1
	// EventDelete reports that an existing key was removed.
	EventDelete
)

// String returns "put" or "delete".
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is one change to one key. Value is nil for EventDelete. A write
// transaction reports each key it changed once, with its final value, and all
// events of one commit share its Rev. Value may be shared between watchers and
// must not be modified.
type Event struct {
	Type  EventType
	Key   string
	Value []byte
	Rev   int64
}

// Store is implemented by every backend.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it if fn returns
	// nil. fn may run more than once (backends batch or retry), so it must not
	// have side effects outside the Tx. It returns the revision of the commit,
	// or the current revision when fn wrote nothing.
	Update(ctx context.Context, fn func(Tx) error) (rev int64, err error)
	// List returns every key with the prefix and the revision it was read at.
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// Watch sends, in order, every event on keys with the prefix whose
	// revision is greater than afterRev. The channel is closed when ctx ends
	// or the store closes; a watcher that falls too far behind gets its
	// channel closed too and must List again. It returns ErrCompacted if
	// afterRev is older than the events the store keeps.
	Watch(ctx context.Context, prefix string, afterRev int64) (<-chan Event, error)
	// Rev is the revision of the last commit.
	Rev() int64
	// Close releases the store; pending watches are closed.
	Close() error
}
