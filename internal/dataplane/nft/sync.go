package nft

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

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
// which drops every reference of rules into sets and chains, and so are
// the existing sets that are refilled, which drops the references of
// verdict map elements into chains; then whatever is no longer wanted (or
// has changed shape, such as a set's key type) is deleted; then sets,
// chains and rules are added, and elements last (some go to chains). Rules
// before elements: the kernel walks every element of a map each time a
// rule of another chain binds it (to check the jumps of verdict maps), and
// 64 count chains bind each backend map; a walk of an empty map is free.
// Adding an object that exists with the same shape is a no-op in the
// kernel, so the table, chains and sets keep their handles. Learned sets
// (ownLearned) are neither flushed nor filled: what the packet path put in
// them survives a full sync.
func syncTable(c *nftables.Conn, rs *ruleset, st *svcState, log *slog.Logger) error {
	cur, err := readCurrent(c)
	if err != nil {
		return err
	}
	learned, err := remapLearned(c, rs, cur, st)
	if err != nil {
		return err
	}
	c.AddTable(rs.table)

	wantChains := make(map[string]*nftables.Chain, len(rs.chains))
	for _, ch := range rs.chains {
		wantChains[ch.Name] = ch
	}
	wantSets := make(map[string]setSpec, len(rs.sets))
	for _, s := range rs.sets {
		wantSets[s.set.Name] = s
	}
	var delSets, recreate []*nftables.Set
	for _, s := range cur.sets {
		w, ok := wantSets[s.Name]
		switch {
		case !ok:
			log.Info("removing nftables set no longer rendered", "table", "inet "+TableName, "set", s.Name)
		case !sameSet(s, w.set):
			log.Info("recreating nftables set: key type, data type or flags changed", "table", "inet "+TableName, "set", s.Name)
		default:
			if w.set.Interval && w.set.Concatenation {
				// Flushing a pipapo set looks each element up again:
				// seconds at 16,000 elements, against 0.1 s to delete
				// it and fill a new one. Only policy chains use them.
				recreate = append(recreate, s)
			}
			continue
		}
		delSets = append(delSets, s)
	}
	var keep map[string]bool
	// A rule kept would hold a set being deleted; and for a small table,
	// reading back 128 chains costs more than rebinding them.
	if len(delSets) == 0 && rs.elemCount() >= keepChainsFrom {
		if keep, err = unchangedChains(c, rs, cur, wantChains); err != nil {
			return err
		}
	}
	for _, ch := range cur.chains {
		if !keep[ch.Name] {
			c.FlushChain(ch)
		}
	}
	for _, s := range cur.sets {
		if w, ok := wantSets[s.Name]; ok && w.owner != ownLearned && !slices.Contains(delSets, s) && !slices.Contains(recreate, s) {
			c.FlushSet(w.set)
		}
	}
	for _, s := range append(delSets, recreate...) {
		c.DelSet(s)
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

	for _, s := range rs.sets {
		if err := c.AddSet(s.set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.set.Name, err)
		}
	}
	for _, ch := range rs.chains {
		c.AddChain(ch)
	}
	for _, r := range rs.rules {
		if !keep[r.Chain.Name] {
			c.AddRule(r)
		}
	}
	for _, s := range rs.sets {
		ops := learned[s.set.Name]
		if ops.flush {
			c.FlushSet(s.set)
		}
		if err := queueElems(c, s.set, ops.del, ops.add); err != nil {
			return err
		}
		if err := queueElems(c, s.set, nil, s.elems); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// keepChainsFrom is the number of elements from which a full sync reads the
// count chains back to keep those that are right (see unchangedChains):
// below it, rebinding the chains to the maps costs less than reading them
// (a dump per chain).
const keepChainsFrom = 20000

// unchangedChains returns the service count chains (see countChain) whose
// rules in the table are exactly the rendered ones: a full sync leaves
// them alone. Flushing them would be harmless but slow: re-adding a rule
// that looks up a map makes the kernel walk every element of the map, once
// per chain, and 64 count chains look up each backend map (at 100,000
// backends, over a second more per full sync).
func unchangedChains(c *nftables.Conn, rs *ruleset, cur current, want map[string]*nftables.Chain) (map[string]bool, error) {
	rendered := map[string][]*nftables.Rule{}
	for _, r := range rs.rules {
		if isCountChain(r.Chain.Name) {
			rendered[r.Chain.Name] = append(rendered[r.Chain.Name], r)
		}
	}
	keep := map[string]bool{}
	for _, ch := range cur.chains {
		w, ok := want[ch.Name]
		if !ok || !isCountChain(ch.Name) || !sameChain(ch, w) {
			continue
		}
		have, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		keep[ch.Name] = slices.EqualFunc(have, rendered[ch.Name], func(a, b *nftables.Rule) bool {
			return bytes.Equal(a.UserData, b.UserData) && reflect.DeepEqual(a.Exprs, b.Exprs)
		})
	}
	return keep, nil
}

func isCountChain(name string) bool {
	return strings.HasPrefix(name, "svc_n") || strings.HasPrefix(name, "svc_np_n") || strings.HasPrefix(name, "svc_a")
}

// remapLearned returns the changes that keep the learned affinity sets
// right for st (see remapAffinity). A learned set that is created or
// recreated starts empty; when the affinity backend maps the elements'
// slots refer to are missing or of another shape, nobody can tell which
// backend an element meant, and the sets are flushed; so they are when no
// service port has affinity (which saves reading them).
func remapLearned(c *nftables.Conn, rs *ruleset, cur current, st *svcState) (map[string]learnedOps, error) {
	have := func(s *nftables.Set) bool {
		i := slices.IndexFunc(cur.sets, func(h *nftables.Set) bool { return h.Name == s.Name })
		return i >= 0 && sameSet(cur.sets[i], s)
	}
	slotsKnown := true
	for _, s := range rs.sets {
		switch {
		case s.owner == ownLearned && !have(s.set):
			return nil, nil
		case s.owner == ownServices && isAffinityBackends(s.svc) && !have(s.set):
			slotsKnown = false
		}
	}
	if !slotsKnown || !st.hasAffinity() { // nothing to read: no element can be right
		out := map[string]learnedOps{}
		for _, s := range rs.sets {
			if s.owner == ownLearned {
				out[s.set.Name] = learnedOps{flush: true}
			}
		}
		return out, nil
	}
	return remapAffinity(c, st)
}

// queueElems queues element deletions, then additions, in batches of at
// most maxElemBatch.
func queueElems(c *nftables.Conn, s *nftables.Set, del, add []nftables.SetElement) error {
	for batch := range slices.Chunk(del, maxElemBatch) {
		if err := c.SetDeleteElements(s, batch); err != nil {
			return fmt.Errorf("delete elements of set %s: %w", s.Name, err)
		}
	}
	for batch := range slices.Chunk(add, maxElemBatch) {
		if err := c.SetAddElements(s, batch); err != nil {
			return fmt.Errorf("add elements to set %s: %w", s.Name, err)
		}
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
//
// google/nftables v0.3.0 reads a verdict map's data type into KeyType
// (and its key type is lost): for verdict maps only the flags are
// compared. A verdict map whose key must change shape needs a new name.
func sameSet(have, want *nftables.Set) bool {
	sameTypes := have.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() &&
		have.KeyType.Bytes == want.KeyType.Bytes &&
		(!want.IsMap || have.DataType.GetNFTMagic() == want.DataType.GetNFTMagic() &&
			have.DataType.Bytes == want.DataType.Bytes)
	if want.IsMap && want.DataType.GetNFTMagic() == nftables.TypeVerdict.GetNFTMagic() {
		sameTypes = have.KeyType.GetNFTMagic() == nftables.TypeVerdict.GetNFTMagic()
	}
	return sameTypes &&
		have.Interval == want.Interval && have.Concatenation == want.Concatenation &&
		have.IsMap == want.IsMap && have.Constant == want.Constant &&
		have.HasTimeout == want.HasTimeout && have.Dynamic == want.Dynamic
}
