package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/knit-net/knit/internal/kname"
)

// TableName is knit's table: "table inet knit".
const TableName = kname.Table

// ruleset is the rendered shape of the whole table: every feature's sets
// and chains, the base chains, and their rules, in the order Sync adds
// them. It holds no elements.
type ruleset struct {
	table  *nftables.Table
	sets   []*nftables.Set
	chains []*nftables.Chain
	rules  []*nftables.Rule
	// learned names the sets the packet path fills (SetSpec.Learned);
	// keep the chains a full sync may leave alone (ChainSpec.Keep).
	learned, keep map[string]bool
	byName        map[string]*nftables.Set
}

func knitTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// render turns the features' shapes into the table's ruleset. It is pure.
// names are the features' names, for errors about two features claiming
// one set or chain.
func render(names []string, shapes []*Shape) (*ruleset, error) {
	t := knitTable()
	rs := &ruleset{table: t, learned: map[string]bool{}, keep: map[string]bool{}, byName: map[string]*nftables.Set{}}
	rs.chains, rs.rules = renderBaseChains(t, shapes)
	owner := map[string]string{}
	for _, c := range rs.chains {
		owner["chain "+c.Name] = "the table"
	}
	claim := func(kind, name string, i int) error {
		if o, ok := owner[kind+" "+name]; ok {
			return fmt.Errorf("%s %s of feature %s is also %s's; every feature names its own", kind, name, names[i], o)
		}
		owner[kind+" "+name] = names[i]
		return nil
	}
	for i, s := range shapes {
		for _, spec := range s.Sets {
			if err := claim("set", spec.Set.Name, i); err != nil {
				return nil, err
			}
			set := *spec.Set // the feature's copy stays as it is
			set.Table = t
			// A transaction-local ID, given here so that the library does
			// not draw one from its unsynchronised global counter.
			set.ID = uint32(len(rs.sets) + 1)
			set.Comment = kname.SetComment
			rs.sets = append(rs.sets, &set)
			rs.byName[set.Name] = &set
			if spec.Learned {
				rs.learned[set.Name] = true
			}
		}
	}
	for i, s := range shapes {
		for _, cs := range s.Chains {
			if err := claim("chain", cs.Name, i); err != nil {
				return nil, err
			}
			c := &nftables.Chain{Table: t, Name: cs.Name}
			rs.chains = append(rs.chains, c)
			for _, r := range cs.Rules {
				rs.rules = append(rs.rules, newRule(c, r))
			}
			if cs.Keep {
				rs.keep[cs.Name] = true
			}
		}
	}
	return rs, nil
}

func newRule(c *nftables.Chain, r Rule) *nftables.Rule {
	return &nftables.Rule{
		Table:    c.Table,
		Chain:    c,
		Exprs:    r.Exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment),
	}
}
