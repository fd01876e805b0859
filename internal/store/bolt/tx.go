package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"go.etcd.io/bbolt"

	"github.com/knit-net/knit/internal/store"
)

// tx adapts a bbolt transaction to store.Tx. bbolt already shows a
// transaction its own writes; tx adds the value encoding and remembers which
// keys were touched so that the commit can report them.
type tx struct {
	btx  *bbolt.Tx
	data *bbolt.Bucket
	rev  int64 // revision written as ModRev; 0 in a read-only tx
	// existed maps every key Put or Deleted so far to whether it existed
	// before the transaction.
	existed map[string]bool
	done    bool
}

func newTx(btx *bbolt.Tx, rev int64) *tx {
	return &tx{btx: btx, data: btx.Bucket(dataBucket), rev: rev, existed: make(map[string]bool)}
}

func (t *tx) Get(key string) ([]byte, bool, error) {
	if t.done {
		return nil, false, store.ErrTxDone
	}
	raw := t.data.Get([]byte(key))
	if raw == nil {
		return nil, false, nil
	}
	kv, err := decode(key, raw)
	if err != nil {
		return nil, false, err
	}
	return kv.Value, true, nil
}

func (t *tx) List(prefix string) ([]store.KV, error) {
	if t.done {
		return nil, store.ErrTxDone
	}
	var kvs []store.KV
	p := []byte(prefix)
	c := t.data.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		kv, err := decode(string(k), v)
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, kv)
	}
	return kvs, nil
}

func (t *tx) Put(key string, value []byte) error {
	if err := t.touch(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	raw := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(raw, uint64(t.rev))
	copy(raw[8:], value)
	if err := t.data.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

func (t *tx) Delete(key string) error {
	if err := t.touch(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := t.data.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// touch checks that key may be written and records whether it existed.
func (t *tx) touch(key string) error {
	switch {
	case t.done:
		return store.ErrTxDone
	case !t.btx.Writable():
		return store.ErrReadOnly
	case key == "":
		return store.ErrEmptyKey
	}
	if _, ok := t.existed[key]; !ok {
		t.existed[key] = t.data.Get([]byte(key)) != nil
	}
	return nil
}

// events returns, in key order, one event per key whose state changed: its
// final value, or a delete if it existed before and no longer does.
func (t *tx) events() ([]store.Event, error) {
	keys := make([]string, 0, len(t.existed))
	for k := range t.existed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var events []store.Event
	for _, k := range keys {
		raw := t.data.Get([]byte(k))
		switch {
		case raw != nil:
			kv, err := decode(k, raw)
			if err != nil {
				return nil, err
			}
			events = append(events, store.Event{Type: store.EventPut, Key: k, Value: kv.Value, Rev: t.rev})
		case t.existed[k]:
			events = append(events, store.Event{Type: store.EventDelete, Key: k, Rev: t.rev})
		}
	}
	return events, nil
}

// decode splits a stored value into its ModRev and a copy of the value, which
// stays valid after the bbolt transaction.
func decode(key string, raw []byte) (store.KV, error) {
	if len(raw) < 8 {
		return store.KV{}, fmt.Errorf("corrupt value for key %q: %d bytes", key, len(raw))
	}
	return store.KV{
		Key:    key,
		Value:  append([]byte{}, raw[8:]...),
		ModRev: int64(binary.BigEndian.Uint64(raw)),
	}, nil
}

// readRev returns the store revision, 0 for a new store.
func readRev(btx *bbolt.Tx) (int64, error) {
	raw := btx.Bucket(metaBucket).Get(revKey)
	switch len(raw) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(raw)), nil
	}
	return 0, fmt.Errorf("corrupt revision: %d bytes", len(raw))
}

func writeRev(btx *bbolt.Tx, rev int64) error {
	raw := binary.BigEndian.AppendUint64(nil, uint64(rev))
	if err := btx.Bucket(metaBucket).Put(revKey, raw); err != nil {
		return fmt.Errorf("write revision: %w", err)
	}
	return nil
}
