package apiserver

import (
	"context"
	"fmt"

	"github.com/knit-net/knit/internal/store"
)

// waitKey watches key from the revision a write committed at until done
// reports true for the key's value (nil once the key is deleted). The read
// after the watch starts closes the gap between commit and watch.
func (s *Server) waitKey(ctx context.Context, key string, rev int64, done func(value []byte) (bool, error)) error {
	ch, err := s.st.Watch(ctx, key, rev)
	if err != nil {
		return fmt.Errorf("watch %s: %w", key, err)
	}
	var cur []byte
	var exists bool
	if err := s.st.View(ctx, func(tx store.Tx) error {
		cur, exists, err = tx.Get(key)
		return err
	}); err != nil {
		return err
	}
	if !exists {
		cur = nil
	}
	if ok, err := done(cur); ok || err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", key, ctx.Err())
		case ev, open := <-ch:
			if !open {
				if ctx.Err() != nil {
					return fmt.Errorf("waiting for %s: %w", key, ctx.Err())
				}
				return fmt.Errorf("waiting for %s: watch closed", key)
			}
			if ev.Key != key {
				continue // a key sharing the prefix
			}
			if ok, err := done(ev.Value); ok || err != nil {
				return err
			}
		}
	}
}
