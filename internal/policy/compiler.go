package policy

import (
	"cmp"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	v1 "github.com/knit-net/knit/api/v1"
)

// Compiler compiles an input that changes a little at a time, reusing
// what the previous compilation worked out for what did not change: with
// the same pods and namespaces, the compiled form of unchanged policies
// and the elements of groups whose policies are all unchanged. Its result
// is always what Compile would return. Input given to it must not be
// modified afterwards: it is compared with the next. A Compiler is not
// safe for concurrent use; the zero value is ready.
type Compiler struct {
	pods       []Pod
	namespaces []v1.Namespace
	ix         *index
	res        *resolver // of ix, with its caches
	policies   map[string]cachedPolicy
	groups     map[string]*cachedGroup // by group key
	keys       [2]map[*pod]podKey      // each pod's last group key
}

// podKey is the group key of a pod isolated by pols.
type podKey struct {
	pols []*compiledPolicy
	key  string
}

type cachedPolicy struct {
	src *v1.NetworkPolicy
	cp  *compiledPolicy
}

type cachedGroup struct {
	id       uint32
	policies []*compiledPolicy
	rules    []*ruleAllow
	elems    []Allow
}

// Compile is Compile(in), reusing the previous compilation's work.
func (cc *Compiler) Compile(in Input) *Compiled {
	if cc.ix == nil || !samePods(cc.pods, in.Pods) || !sameNamespaces(cc.namespaces, in.Namespaces) {
		cc.ix, cc.policies, cc.groups = newIndex(in.Pods, in.Namespaces), nil, nil
		cc.res = cc.ix.resolver()
		cc.keys = [2]map[*pod]podKey{{}, {}}
	}
	cc.pods, cc.namespaces = in.Pods, in.Namespaces
	ix := cc.ix
	sel := cc.isolation(in.Policies)
	var groups []*group
	for dir := range 2 {
		groups = append(groups, ix.groups(dir, sel[dir], cc.keys[dir])...)
	}
	assignIDs(groups)
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(a.id, b.id) })

	// Reuse the elements of groups with the same ID and the same compiled
	// policies; build the others.
	cached := make([]*cachedGroup, len(groups))
	var todo []int
	for i, g := range groups {
		if cg := cc.groups[g.key]; cg != nil && cg.id == g.id && slices.Equal(cg.policies, g.policies) {
			cached[i] = cg
			continue
		}
		cached[i] = &cachedGroup{id: g.id, policies: g.policies, rules: g.rules()}
		todo = append(todo, i)
	}
	buildAll(groups, cached, todo)
	cc.groups = make(map[string]*cachedGroup, len(groups))
	for i, g := range groups {
		cc.groups[g.key] = cached[i]
	}
	return assemble(ix, groups, cached)
}

// isolation compiles the policies (sorted by key, the first of duplicate
// keys winning; unchanged ones come from the cache) and returns, per
// direction, the policies isolating each pod, in key order.
func (cc *Compiler) isolation(policies []v1.NetworkPolicy) [2]map[*pod][]*compiledPolicy {
	type keyed struct {
		key string
		i   int
		p   *v1.NetworkPolicy
	}
	pols := make([]keyed, len(policies))
	for i := range policies {
		p := &policies[i]
		pols[i] = keyed{nsOrDefault(p.Metadata.Namespace) + "/" + p.Metadata.Name, i, p}
	}
	slices.SortFunc(pols, func(a, b keyed) int { return cmp.Or(cmp.Compare(a.key, b.key), a.i-b.i) })
	pols = slices.CompactFunc(pols, func(a, b keyed) bool { return a.key == b.key })

	// Reuse what is unchanged; compile the rest, on all CPUs if many.
	next := make(map[string]cachedPolicy, len(pols))
	compiled := make([]*compiledPolicy, len(pols))
	var todo []int
	for i, kp := range pols {
		if c, ok := cc.policies[kp.key]; ok && reflect.DeepEqual(c.src.Spec, kp.p.Spec) {
			compiled[i] = c.cp
		} else {
			todo = append(todo, i)
		}
	}
	if len(todo) < 64 {
		for _, i := range todo {
			compiled[i] = cc.res.compilePolicy(pols[i].p)
		}
	} else {
		var nextTodo atomic.Int64
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				rs := cc.ix.resolver()
				for t := int(nextTodo.Add(1)) - 1; t < len(todo); t = int(nextTodo.Add(1)) - 1 {
					compiled[todo[t]] = rs.compilePolicy(pols[todo[t]].p)
				}
			})
		}
		wg.Wait()
	}
	sel := [2]map[*pod][]*compiledPolicy{make(map[*pod][]*compiledPolicy, len(cc.ix.pods)), make(map[*pod][]*compiledPolicy, len(cc.ix.pods))}
	for i, kp := range pols {
		cp := compiled[i]
		next[kp.key] = cachedPolicy{kp.p, cp}
		for _, q := range cp.selected {
			if cp.ingress {
				sel[dirIngress][q] = append(sel[dirIngress][q], cp)
			}
			if cp.egress {
				sel[dirEgress][q] = append(sel[dirEgress][q], cp)
			}
		}
	}
	cc.policies = next
	return sel
}

// samePods reports whether two pod lists are equal in everything that
// matters to policies, in the same order.
func samePods(a, b []Pod) bool {
	return slices.EqualFunc(a, b, func(x, y Pod) bool {
		return x.Name == y.Name && x.Namespace == y.Namespace && maps.Equal(x.Labels, y.Labels) &&
			slices.Equal(x.Addrs, y.Addrs) && slices.Equal(x.Ports, y.Ports)
	})
}

// sameNamespaces reports whether two namespace lists have the same names
// and labels, in the same order.
func sameNamespaces(a, b []v1.Namespace) bool {
	return slices.EqualFunc(a, b, func(x, y v1.Namespace) bool {
		return x.Name == y.Name && maps.Equal(x.Labels, y.Labels)
	})
}
