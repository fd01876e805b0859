package nft

import (
	"testing"

	"github.com/knit-net/knit/internal/policy"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// BenchmarkPolicyDeltas: the Go side of a partial sync after one policy
// of 1,000 changed (compile excluded).
func BenchmarkPolicyDeltas(b *testing.B) {
	in := synthPolicies(1000, 1000)
	a := policy.Compile(in)
	in.Policies[500] = synthPolicy(500, 20, 8443)
	c := policy.Compile(in)
	rs := &ruleset{table: knitTable(), pol: newPolState(a)}
	rs.sets = policySetSpecs(rs.table)
	rs.fillPolicy()
	for b.Loop() {
		policyDeltas(rs, rs.pol, newPolState(c))
	}
}

// BenchmarkPolicyFill: rendering every element of 1,000 policies for a
// full sync.
func BenchmarkPolicyFill(b *testing.B) {
	rs := &ruleset{table: knitTable(), pol: newPolState(policy.Compile(synthPolicies(1000, 1000)))}
	rs.sets = policySetSpecs(rs.table)
	for b.Loop() {
		rs.fillPolicy()
	}
}

// BenchmarkPolicyChangeAt1000: a partial sync, kernel included, of one
// policy's port changed with 1,000 policies on 1,000 pods (back and
// forth; compile excluded).
func BenchmarkPolicyChangeAt1000(b *testing.B) {
	in := synthPolicies(1000, 1000)
	c0 := policy.Compile(in)
	in.Policies[500] = synthPolicy(500, 20, 8443)
	c1 := policy.Compile(in)
	d := newDataplane(b, nstest.New(b, "nft"))
	cfg := Config{Networks: []Network{{Bridge: "kn-a", Subnets: pfx("10.1.0.0/16")}}, Policy: c0}
	mustSync(b, d, cfg)
	i := 0
	for b.Loop() {
		i++
		cfg.Policy = []*policy.Compiled{c0, c1}[i%2]
		mustSync(b, d, cfg)
	}
}
