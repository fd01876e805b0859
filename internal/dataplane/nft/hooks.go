package nft

import (
	"cmp"
	"slices"

	"github.com/google/nftables"
)

// Hook is one of the Table's base chains: a netfilter hook with a chain
// type and priority. Features add rules to them (HookRule); a base chain
// exists when some feature has a rule in it. Every base chain's policy is
// accept: knit drops what it means to drop, and leaves the rest to the
// host's other tables.
type Hook int

// The base chains, in the order nft lists them (the order a packet
// meets them, roughly).
const (
	// HookRawPrerouting: filter, prerouting, raw priority (-300), before
	// conntrack.
	HookRawPrerouting Hook = iota
	// HookPrerouting: nat, prerouting, dstnat priority (-100).
	HookPrerouting
	// HookOutput: nat, output, dstnat priority: the host's own traffic.
	HookOutput
	// HookInput: filter, input, filter priority (0).
	HookInput
	// HookForward: filter, forward, filter priority.
	HookForward
	// HookFilterOutput: filter, output, filter priority.
	HookFilterOutput
	// HookPostrouting: nat, postrouting, srcnat priority (100).
	HookPostrouting
	numHooks
)

var baseChains = [numHooks]struct {
	name string
	typ  nftables.ChainType
	hook *nftables.ChainHook
	prio *nftables.ChainPriority
}{
	HookRawPrerouting: {"raw_prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw},
	HookPrerouting:    {"prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest},
	HookOutput:        {"output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest},
	HookInput:         {"input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter},
	HookForward:       {"forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter},
	HookFilterOutput:  {"filter_output", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter},
	HookPostrouting:   {"postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource},
}

// Name is the base chain's name in the table.
func (h Hook) Name() string { return baseChains[h].name }

// renderBaseChains returns the base chains that have rules and their
// rules, each chain's in Order (stable: features in the order given).
func renderBaseChains(t *nftables.Table, shapes []*Shape) ([]*nftables.Chain, []*nftables.Rule) {
	var byHook [numHooks][]HookRule
	for _, s := range shapes {
		for _, h := range s.Hooks {
			byHook[h.Hook] = append(byHook[h.Hook], h)
		}
	}
	var chains []*nftables.Chain
	var rules []*nftables.Rule
	for h, hrs := range byHook {
		if len(hrs) == 0 {
			continue
		}
		b := baseChains[h]
		accept := nftables.ChainPolicyAccept
		c := &nftables.Chain{Table: t, Name: b.name, Type: b.typ, Hooknum: b.hook, Priority: b.prio, Policy: &accept}
		chains = append(chains, c)
		slices.SortStableFunc(hrs, func(a, b HookRule) int { return cmp.Compare(a.Order, b.Order) })
		for _, r := range hrs {
			rules = append(rules, newRule(c, r.Rule))
		}
	}
	return chains, rules
}
