package nft

import (
	"fmt"

	"github.com/google/nftables"
)

// syncElemsLocked sends one transaction with only the features' element
// changes (kube-proxy's partial sync), when every feature's shape is what
// the table holds, and returns the number of elements sent. With no
// change it sends nothing.
func (t *Table) syncElemsLocked(c *nftables.Conn) (int, error) {
	k := kernel{c: c, holds: make(map[string]bool, len(t.applied.sets))}
	for _, s := range t.applied.sets {
		k.holds[s.Name] = true
	}
	var changes []SetChange
	sent := 0
	for i, f := range t.features {
		ch, err := f.Changes(k, false)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t.names[i], err)
		}
		for _, x := range ch {
			if n := len(x.Del) + len(x.Add); n > 0 || x.Flush {
				changes = append(changes, x)
				sent += n
			}
		}
	}
	if len(changes) == 0 {
		return 0, nil
	}
	if err := queueChanges(c, t.applied, changes); err != nil {
		return 0, err
	}
	if err := c.Flush(); err != nil {
		return 0, fmt.Errorf("commit element changes: %w", err)
	}
	return sent, nil
}
