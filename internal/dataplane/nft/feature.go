package nft

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Feature is one part of knit's table: published ports, services, network
// policy, each in a package of its own. It holds its desired state (set
// through its own methods, validated there), renders the chains, sets and
// base-chain rules it needs, and hands the Table element changes.
//
// The Table calls a feature only from inside Sync, one call at a time,
// in this order:
//
//  1. Plan, every sync. It returns the feature's Shape when it changed
//     since the Shape it last returned (nil: unchanged; the first Plan
//     after New or after Abort must return one), and full when the
//     feature wants a full sync. An error fails the sync before anything
//     is sent; the feature should then be as before the sync.
//  2. Changes(k, full). In a partial sync (full false): what turns the
//     elements of the last Commit into the wanted ones, ideally computed
//     from what changed (one container, one service) rather than from
//     everything. In a full sync: every element of its sets, which the
//     Table has just emptied or created, and any edits of its learned
//     sets. k reads the table as it is before the transaction.
//  3. Commit when the transaction went through, or Abort when it did not
//     (or another feature failed first). After Abort the next sync is
//     full, and the feature's next Plan returns its Shape.
//
// Plan and Changes must not keep the Kernel or call the Table.
type Feature interface {
	Name() string
	Plan() (shape *Shape, full bool, err error)
	Changes(k Kernel, full bool) ([]SetChange, error)
	Commit()
	Abort()
}

// Shape is everything a feature puts in the table except elements: when
// every feature's Shape is what the table holds, a sync sends element
// changes only. Two features must not use the same set or chain name.
type Shape struct {
	Sets   []SetSpec
	Chains []ChainSpec
	// Hooks are the feature's rules in the Table's base chains, mostly
	// jumps to its own chains.
	Hooks []HookRule
}

// SetSpec is one set or map of a feature. Table, ID and Comment of Set
// are filled in by the Table (on its own copy).
type SetSpec struct {
	Set *nftables.Set
	// Learned sets are filled by the packet path (dynamic sets, such as
	// session affinity): a full sync creates one when it is missing but
	// neither empties nor fills it; only the feature's SetChanges edit it.
	Learned bool
}

// ChainSpec is one regular chain of a feature and its rules.
type ChainSpec struct {
	Name  string
	Rules []Rule
	// Keep marks a chain whose rules are costly to add again (they look
	// up big maps, and the kernel walks a map for every rule that binds
	// it): a full sync of a big table reads it back and leaves it alone
	// when it holds exactly Rules.
	Keep bool
}

// Rule is one rule: its expressions and the comment nft shows.
type Rule struct {
	Comment string
	Exprs   []expr.Any
}

// HookRule is a feature's rule in one of the Table's base chains. A base
// chain holds the rules of every feature for its hook, ordered by Order
// (then by the order the features were given to New). Jumps to regular
// chains are the usual content: a "return" there ends only that chain,
// so later features still see the packet; an "accept" in a base chain
// would end all of knit's filtering.
type HookRule struct {
	Hook  Hook
	Order int
	Rule
}

// SetChange is what a sync does to one set's elements: Flush empties it
// first, then Del's keys are deleted and Add's elements added. A map
// element whose value changes is deleted and added again.
type SetChange struct {
	Set      string
	Flush    bool
	Del, Add []nftables.SetElement
}

// Kernel reads knit's table as it is before a sync's transaction.
type Kernel interface {
	// Elements lists the elements of one of the table's sets.
	Elements(set string) ([]nftables.SetElement, error)
	// Holds reports whether the table already holds the feature's set of
	// that name with the rendered shape, elements and all: false for a
	// set the sync creates or recreates (it starts empty).
	Holds(set string) bool
}
