package services

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// HostPortFunc tells whether a published port takes proto and port on
// some address of the host, naming it.
type HostPortFunc func(proto string, port uint16) (published string, taken bool)

// Options configure the feature.
type Options struct {
	// HostPort, when set, refuses node ports that are published ports.
	HostPort HostPortFunc
}

// Order of the feature's rules in the hooks: first in prerouting and
// output (a VIP is never a published port), and its refusals first in
// the filter hooks.
const hookOrder = 10

// Feature keeps the service ports in the table. Safe for concurrent use.
type Feature struct {
	opts Options

	mu     sync.Mutex
	in     []ServicePort
	ranges []netip.Prefix
	// st is what the table holds, or is about to (between Plan and
	// Commit); nil after Abort: the next Plan builds it again from in.
	st *svcState
	// plan is Set's plan against planBase, applied by the next Plan if st
	// is still planBase; delta is what Plan applied, for Changes.
	plan      *svcPlan
	planBase  *svcState
	delta     *svcDelta
	ranges4   *nft.IntervalSet
	ranges6   *nft.IntervalSet
	shapeKey  svcShapeKey
	shapeSent bool
	claimsMu  sync.RWMutex
	nodePorts map[frontKey]string // node ports of in, for NodePort
}

var _ nft.Feature = (*Feature)(nil)

// New returns the feature with no service ports.
func New(opts Options) *Feature {
	return &Feature{opts: opts, ranges4: nft.NewIntervalSet(setSvcRanges4), ranges6: nft.NewIntervalSet(setSvcRanges6)}
}

// Name implements nft.Feature.
func (f *Feature) Name() string { return "services" }

// Set replaces every service port and the ClusterIP ranges: a new
// connection to an address in the ranges, or to any VIP, that no service
// port DNATed is refused (TCP reset, otherwise ICMP port unreachable), so
// that a service without endpoints, or a VIP on a port it does not serve,
// refuses at once instead of hanging or reaching a socket of the host. No
// backend may lie in them.
//
// Service ports are compared by name with those the table holds; only the
// changed ones are validated and rendered, so a change of one of 10,000
// costs a few milliseconds. An invalid service port, two service ports on
// one frontend or a node port that is a published port changes nothing;
// the error names the first. The feature keeps svcs: do not modify it
// afterwards.
func (f *Feature) Set(svcs []ServicePort, ranges []netip.Prefix) error {
	ranges, err := normalizeRanges(ranges)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := planServices(svcs, ranges, f.opts.HostPort, f.st)
	if err != nil {
		return err
	}
	f.in, f.ranges, f.plan, f.planBase = svcs, ranges, p, f.st
	nps := map[frontKey]string{}
	for i := range svcs {
		if sp := &svcs[i]; sp.NodePort != 0 {
			nps[frontKey{port: sp.NodePort, proto: exprs.L4Proto[sp.Protocol]}] = sp.String()
		}
	}
	f.claimsMu.Lock()
	f.nodePorts = nps
	f.claimsMu.Unlock()
	return nil
}

// NodePort reports whether a service port has proto and port as its node
// port, naming it; the ports feature uses it to refuse such a published
// port.
func (f *Feature) NodePort(proto string, port uint16) (string, bool) {
	f.claimsMu.RLock()
	defer f.claimsMu.RUnlock()
	name, ok := f.nodePorts[frontKey{port: port, proto: exprs.L4Proto[proto]}]
	return name, ok
}

// normalizeRanges validates the service ranges and returns them masked,
// sorted and de-duplicated.
func normalizeRanges(in []netip.Prefix) ([]netip.Prefix, error) {
	ranges := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		switch {
		case !p.IsValid():
			return nil, fmt.Errorf("service range %v is not a valid prefix", p)
		case p.Addr().Is4In6():
			return nil, fmt.Errorf("service range %v is IPv4-mapped IPv6; give it in IPv4 form", p)
		case p.Addr().Zone() != "":
			return nil, fmt.Errorf("service range %v has an IPv6 zone; give it without", p)
		}
		ranges = append(ranges, p.Masked())
	}
	slices.SortFunc(ranges, exprs.ComparePrefix)
	return slices.Compact(ranges), nil
}

// Plan implements nft.Feature: it applies the plan of the last Set to
// the state (planning again when the state was dropped meanwhile), and
// returns the shape when the count chains it needs changed.
func (f *Feature) Plan() (*nft.Shape, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil || f.plan != nil && f.planBase != f.st {
		p, err := planServices(f.in, f.ranges, f.opts.HostPort, f.st)
		if err != nil {
			return nil, false, err
		}
		f.plan = p
	}
	f.delta = nil
	if f.plan != nil {
		f.delta = f.plan.apply()
		f.st, f.plan, f.planBase = f.plan.st, nil, nil
	}
	var r4, r6 []netip.Prefix
	for _, p := range f.ranges {
		if p.Addr().Is4() {
			r4 = append(r4, p)
		} else {
			r6 = append(r6, p)
		}
	}
	f.ranges4.Set(exprs.IntervalElems(r4))
	f.ranges6.Set(exprs.IntervalElems(r6))
	key := f.st.shape.key()
	if f.shapeSent && reflect.DeepEqual(key, f.shapeKey) {
		return nil, false, nil
	}
	f.shapeKey, f.shapeSent = key, true
	return &nft.Shape{
		Sets:   svcSetSpecs(),
		Chains: append(svcCoreRules(), renderSvcChains(key)...),
		Hooks:  hookRules,
	}, false, nil
}

// hookRules jump to the feature's chains.
var hookRules = []nft.HookRule{
	{Hook: nft.HookPrerouting, Order: hookOrder, Rule: rule("knit: services", exprs.Jump(chainServices)...)},
	{Hook: nft.HookOutput, Order: hookOrder, Rule: rule("knit: services, from the host itself", exprs.Jump(chainServices)...)},
	{Hook: nft.HookInput, Order: hookOrder, Rule: rule("knit: refuse what no service port took", exprs.Join(exprs.CtStateNew(), exprs.Jump(chainSvcCheck))...)},
	{Hook: nft.HookForward, Order: hookOrder, Rule: rule("knit: refuse what no service port took", exprs.Join(exprs.CtStateNew(), exprs.Jump(chainSvcCheck))...)},
	{Hook: nft.HookFilterOutput, Order: hookOrder, Rule: rule("knit: refuse what no service port took", exprs.Join(exprs.CtStateNew(), exprs.Jump(chainSvcCheck))...)},
}

// Changes implements nft.Feature: every element of the state for a full
// sync, else the plan's delta; and the moves of learned affinity elements
// whose backends' slots changed.
func (f *Feature) Changes(k nft.Kernel, full bool) ([]nft.SetChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []nft.SetChange{f.ranges4.Change(full), f.ranges6.Change(full)}
	if full {
		all := f.st.materialize()
		for s, elems := range all {
			out = append(out, nft.SetChange{Set: svcSetNames[s], Add: elems})
		}
		learned, err := f.remapLearned(k)
		if err != nil {
			return nil, err
		}
		return append(out, learned...), nil
	}
	d := f.delta
	if d == nil {
		return out, nil
	}
	d.resolve()
	for s := range numSvcSets {
		out = append(out, nft.SetChange{Set: svcSetNames[s], Del: setElements(d.del[s]), Add: setElements(d.add[s])})
	}
	if d.touchesAffinity() {
		learned, err := remapAffinity(k, f.st)
		if err != nil {
			return nil, err
		}
		out = append(out, learned...)
	}
	return out, nil
}

// remapLearned returns the changes that keep the learned affinity sets
// right for a full sync (see remapAffinity). A learned set that is created
// or recreated starts empty; when the affinity backend maps the elements'
// slots refer to are missing or of another shape, nobody can tell which
// backend an element meant, and the sets are flushed; so they are when no
// service port has affinity (which saves reading them).
func (f *Feature) remapLearned(k nft.Kernel) ([]nft.SetChange, error) {
	learned := []string{setSvcAffinity4, setSvcAffinity6}
	for _, s := range learned {
		if !k.Holds(s) {
			return nil, nil
		}
	}
	slotsKnown := true
	for _, s := range affinityBackends {
		slotsKnown = slotsKnown && k.Holds(svcSetNames[s])
	}
	if !slotsKnown || !f.st.hasAffinity() { // nothing to read: no element can be right
		return []nft.SetChange{{Set: setSvcAffinity4, Flush: true}, {Set: setSvcAffinity6, Flush: true}}, nil
	}
	return remapAffinity(k, f.st)
}

// Commit implements nft.Feature.
func (f *Feature) Commit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delta = nil
	f.ranges4.Commit()
	f.ranges6.Commit()
}

// Abort implements nft.Feature: the state is dropped and built again from
// what was Set.
func (f *Feature) Abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st, f.plan, f.planBase, f.delta, f.shapeSent = nil, nil, nil, nil, false
	f.ranges4.Abort()
	f.ranges6.Abort()
}
