package netpol

import (
	"encoding/binary"
	"fmt"
	"maps"
	"sync"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/policy"
)

// Feature enforces the compiled network policy in the table. Safe for
// concurrent use.
type Feature struct {
	mu   sync.Mutex
	want *policy.Compiled
	// applied is what the policy sets hold (nil: no policy, or unknown
	// when !known); next is what the last Changes sent.
	applied, next *polState
	known         bool
	shapeSent     bool
	shapeOn       bool
}

var _ nft.Feature = (*Feature)(nil)

// New returns the feature with no policy (and no policy chains).
func New() *Feature { return &Feature{} }

// Name implements nft.Feature.
func (f *Feature) Name() string { return "netpol" }

// Set replaces the policy in force; nil is none (and no policy chains).
// The feature treats c as read-only and diffs it against the last one
// applied: pass a new Compiled for a change, never a modified one.
func (f *Feature) Set(c *policy.Compiled) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want = c
}

// Plan implements nft.Feature: the chains are rendered when there is a
// policy, whatever it holds, so only none to some (and back) changes the
// shape; a full sync is asked for when many elements were left behind
// (see polState).
func (f *Feature) Plan() (*nft.Shape, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	full := f.known && f.applied.rebuild()
	on := f.want != nil
	if f.shapeSent && on == f.shapeOn {
		return nil, full, nil
	}
	f.shapeSent, f.shapeOn = true, on
	if !on {
		return &nft.Shape{}, full, nil
	}
	return policyShape(), full, nil
}

// Changes implements nft.Feature.
func (f *Feature) Changes(_ nft.Kernel, full bool) ([]nft.SetChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = newPolState(f.want)
	switch {
	case f.next == nil:
		return nil, nil
	case full || !f.known || f.applied == nil:
		return f.next.fill(), nil
	}
	return policyDeltas(f.applied, f.next), nil
}

// Commit implements nft.Feature.
func (f *Feature) Commit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied, f.next, f.known = f.next, nil, true
}

// Abort implements nft.Feature.
func (f *Feature) Abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied, f.next, f.known, f.shapeSent = nil, nil, false, false
}

// DropCounts returns, per policy group (see policy.Compiled), the number
// of packets network policy denied since the last full sync of t (the
// first, one after an error, one an hour, and one after many policy
// changes; see polState): a full sync starts the counts again. Groups
// without drops are absent. Without policy, before the first sync and
// after a failed one, the map is empty.
func (f *Feature) DropCounts(t *nft.Table) (map[uint32]uint64, error) {
	f.mu.Lock()
	on := f.known && f.applied != nil
	f.mu.Unlock()
	if !on || !t.Synced() {
		return map[uint32]uint64{}, nil
	}
	elems, err := t.Elements(setPolDrops)
	if err != nil {
		return nil, fmt.Errorf("read policy drop counts from set %s: %w", setPolDrops, err)
	}
	out := make(map[uint32]uint64, len(elems))
	for _, e := range elems {
		if len(e.Key) != 4 || e.Counter == nil {
			continue
		}
		out[binary.BigEndian.Uint32(e.Key)] += e.Counter.Packets
	}
	return out, nil
}

// ReadDrops is NewDropReader for t's namespace.
func ReadDrops(t *nft.Table, opts DropReaderOptions, fn func(Drop)) (*DropReader, error) {
	ns, err := t.NetNS()
	if err != nil {
		return nil, err
	}
	defer ns.Close() // the socket keeps its namespace
	return newDropReader(ns, logger(opts), fn)
}

// Keys returns, for inspection, what the policy sets hold: each group's
// key, and the number of allow elements under live keys and left behind
// (see polState). Without policy, or before a sync, all are empty.
func (f *Feature) Keys() (keys map[uint32]uint32, live, stale int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known || f.applied == nil {
		return map[uint32]uint32{}, 0, 0
	}
	return maps.Clone(f.applied.keys), f.applied.live, f.applied.stale
}
