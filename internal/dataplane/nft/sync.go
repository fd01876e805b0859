package nft

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/nftables"
)

// maxElemBatch is the most elements sent in one NEWSETELEM message: the
// library silently truncates messages above ~64 KiB.
const maxElemBatch = 512

// current is what table inet knit holds before a sync.
type current struct {
	chains []*nftables.Chain
	sets   []*nftables.Set
}

// readCurrent lists the chains and sets of knit's table; an absent table
// reads as empty. Reads happen before the transaction; only knit writes
// this table, so nothing changes in between.
func readCurrent(c *nftables.Conn) (current, error) {
	var cur current
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return cur, fmt.Errorf("list inet tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return cur, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return cur, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TableName {
			cur.chains = append(cur.chains, ch)
		}
	}
	if cur.sets, err = c.GetSets(knitTable()); err != nil {
		return cur, fmt.Errorf("list sets: %w", err)
	}
	return cur, nil
}

// syncTable queues the whole ruleset as one transaction and commits it.
//
// Order inside the transaction matters: existing chains are flushed first,
// which drops every reference into sets and chains; then whatever is no
// longer wanted (or has changed shape, such as a set's key type) is deleted;
// then sets are (re)filled, chains added and rules appended. Adding an
// object that exists with the same shape is a no-op in the kernel, so the
// table, chains and sets keep their handles.
func syncTable(c *nftables.Conn, rs *ruleset, log *slog.Logger) error {
	cur, err := readCurrent(c)
	if err != nil {
		return err
	}
	c.AddTable(rs.table)

	wantChains := make(map[string]*nftables.Chain, len(rs.chains))
	for _, ch := range rs.chains {
		wantChains[ch.Name] = ch
	}
	for _, ch := range cur.chains {
		c.FlushChain(ch)
	}
	for _, ch := range cur.chains {
		w, ok := wantChains[ch.Name]
		switch {
		case !ok:
			log.Info("removing nftables chain no longer rendered", "table", "inet "+TableName, "chain", ch.Name)
		case !sameChain(ch, w):
			log.Info("recreating nftables chain: type, hook or priority changed", "table", "inet "+TableName, "chain", ch.Name)
		default:
			continue
		}
		c.DelChain(ch)
	}

	wantSets := make(map[string]*nftables.Set, len(rs.sets))
	for _, s := range rs.sets {
		wantSets[s.set.Name] = s.set
	}
	kept := make(map[string]bool, len(cur.sets))
	for _, s := range cur.sets {
		w, ok := wantSets[s.Name]
		switch {
		case !ok:
			log.Info("removing nftables set no longer rendered", "table", "inet "+TableName, "set", s.Name)
		case !sameSet(s, w):
			log.Info("recreating nftables set: key type, data type or flags changed", "table", "inet "+TableName, "set", s.Name)
		default:
			kept[s.Name] = true
			continue
		}
		c.DelSet(s)
	}

	for _, s := range rs.sets {
		if err := c.AddSet(s.set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.set.Name, err)
		}
		if kept[s.set.Name] {
			c.FlushSet(s.set)
		}
		for batch := range slices.Chunk(s.elems, maxElemBatch) {
			if err := c.SetAddElements(s.set, batch); err != nil {
				return fmt.Errorf("add elements to set %s: %w", s.set.Name, err)
			}
		}
	}
	for _, ch := range rs.chains {
		c.AddChain(ch)
	}
	for _, r := range rs.rules {
		c.AddRule(r)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// sameChain reports whether an existing chain can be kept as want: same
// kind (base or regular), and for base chains the same type, hook and
// priority, which the kernel does not let an update change.
func sameChain(have, want *nftables.Chain) bool {
	if (have.Hooknum == nil) != (want.Hooknum == nil) {
		return false
	}
	if want.Hooknum == nil {
		return true
	}
	return have.Type == want.Type && *have.Hooknum == *want.Hooknum &&
		have.Priority != nil && *have.Priority == *want.Priority
}

// sameSet reports whether an existing set has want's shape, so adding want
// again is a no-op rather than an EEXIST.
func sameSet(have, want *nftables.Set) bool {
	return have.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() &&
		have.KeyType.Bytes == want.KeyType.Bytes &&
		(!want.IsMap || have.DataType.GetNFTMagic() == want.DataType.GetNFTMagic() &&
			have.DataType.Bytes == want.DataType.Bytes) &&
		have.Interval == want.Interval && have.Concatenation == want.Concatenation &&
		have.IsMap == want.IsMap && have.Constant == want.Constant &&
		have.HasTimeout == want.HasTimeout
}
