package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/knit-net/knit/api/v1"
)

// fetchPolicies gets the named policies, reporting each that fails on
// stderr kubectl-style and setting failed; or lists the namespace's (every
// namespace's with -A), sorted by namespace and name.
func (a *app) fetchPolicies(cmd *cobra.Command, ns *nsFlags, names []string) (out []v1.NetworkPolicy, failed bool, err error) {
	c := a.client()
	if len(names) > 0 {
		for _, n := range names {
			p, err := c.GetNetworkPolicy(cmd.Context(), ns.get(), n)
			if err != nil {
				fmt.Fprintln(a.stderr, kubeError(err, resNetworkPolicies, n))
				failed = true
				continue
			}
			out = append(out, p)
		}
		return out, failed, nil
	}
	listNS := ns.get()
	if ns.allNamespaces {
		listNS = ""
	}
	ps, err := c.ListNetworkPolicies(cmd.Context(), listNS)
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(ps, func(x, y v1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(x.Metadata.Namespace, y.Metadata.Namespace), cmp.Compare(x.Metadata.Name, y.Metadata.Name))
	})
	return ps, false, nil
}

// getNetworkPolicies is knit get networkpolicies.
func (a *app) getNetworkPolicies(cmd *cobra.Command, ns *nsFlags, names []string) error {
	ps, failed, err := a.fetchPolicies(cmd, ns, names)
	if err != nil {
		return err
	}
	switch a.output {
	case "yaml", "json":
		items := make([]any, len(ps))
		for i := range ps {
			items[i] = ps[i]
		}
		err = a.printObjects(items, len(names) == 1)
	case "name":
		for _, p := range ps {
			fmt.Fprintln(a.stdout, objectName(resNetworkPolicies, p.Metadata.Name))
		}
	default:
		if len(ps) == 0 && len(names) == 0 {
			a.noResources(ns)
		} else if len(ps) > 0 {
			a.table(policyTable(ps, ns.allNamespaces, a.clock()))
		}
	}
	if err != nil {
		return err
	}
	if failed {
		return exitError{1}
	}
	return nil
}

// policyTable is kubectl get networkpolicies' table (-o wide adds nothing).
func policyTable(ps []v1.NetworkPolicy, withNamespace bool, now time.Time) ([]string, [][]string) {
	header := []string{"NAME", "POD-SELECTOR", "AGE"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(ps))
	for i := range ps {
		p := &ps[i]
		row := []string{p.Metadata.Name, formatSelector(&p.Spec.PodSelector), age(p.Metadata.CreationTimestamp, now)}
		if withNamespace {
			row = append([]string{p.Metadata.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return header, rows
}

// formatSelector writes a selector as kubectl does (metav1's
// FormatLabelSelector): app=db,tier in (a,b),!legacy; <none> when empty.
func formatSelector(s *v1.LabelSelector) string {
	ks := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		ks.MatchExpressions = append(ks.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: metav1.LabelSelectorOperator(r.Operator), Values: r.Values,
		})
	}
	return metav1.FormatLabelSelector(ks)
}

// describeNetworkPolicies is knit describe networkpolicy.
func (a *app) describeNetworkPolicies(cmd *cobra.Command, ns *nsFlags, names []string) error {
	ps, failed, err := a.fetchPolicies(cmd, ns, names)
	if err != nil {
		return err
	}
	if len(ps) == 0 && len(names) == 0 {
		a.noResources(ns)
	}
	for i := range ps {
		if i > 0 {
			fmt.Fprint(a.stdout, "\n\n")
		}
		describeNetworkPolicy(a.stdout, &ps[i])
	}
	if failed {
		return exitError{1}
	}
	return nil
}

// describeNetworkPolicy writes kubectl describe networkpolicy's layout.
// Two additions: a port range reads "To Port: 32000-32768/TCP", and a
// port without a number "To Port: <any>/UDP" (kubectl: "<nil>/UDP").
func describeNetworkPolicy(out io.Writer, p *v1.NetworkPolicy) {
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "Name:\t%s\n", p.Metadata.Name)
	fmt.Fprintf(w, "Namespace:\t%s\n", p.Metadata.Namespace)
	created := "<unknown>"
	if t := p.Metadata.CreationTimestamp; !t.IsZero() {
		created = t.Local().Format("2006-01-02 15:04:05 -0700 MST")
	}
	fmt.Fprintf(w, "Created on:\t%s\n", created)
	writeMultiline(w, "Labels", p.Metadata.Labels, "=", nil)
	writeMultiline(w, "Annotations", p.Metadata.Annotations, ": ", map[string]bool{lastApplied: true})
	fmt.Fprintf(w, "Spec:\n")
	if p.Spec.PodSelector.Empty() {
		fmt.Fprintf(w, "  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)\n")
	} else {
		fmt.Fprintf(w, "  PodSelector:     %s\n", formatSelector(&p.Spec.PodSelector))
	}
	ingress, egress := p.Types()
	if ingress {
		fmt.Fprintf(w, "  Allowing ingress traffic:\n")
		rules := make([]policyRule, len(p.Spec.Ingress))
		for i, r := range p.Spec.Ingress {
			rules[i] = policyRule{r.Ports, r.From}
		}
		writeRules(w, rules, "From", "source", "ingress")
	} else {
		fmt.Fprintf(w, "  Not affecting ingress traffic\n")
	}
	if egress {
		fmt.Fprintf(w, "  Allowing egress traffic:\n")
		rules := make([]policyRule, len(p.Spec.Egress))
		for i, r := range p.Spec.Egress {
			rules[i] = policyRule{r.Ports, r.To}
		}
		writeRules(w, rules, "To", "destination", "egress")
	} else {
		fmt.Fprintf(w, "  Not affecting egress traffic\n")
	}
	var types []string
	if ingress {
		types = append(types, v1.PolicyTypeIngress)
	}
	if egress {
		types = append(types, v1.PolicyTypeEgress)
	}
	fmt.Fprintf(w, "  Policy Types: %s\n", strings.Join(types, ", "))
}

// policyRule is an ingress or egress rule: ports and peers.
type policyRule struct {
	ports []v1.NetworkPolicyPort
	peers []v1.NetworkPolicyPeer
}

// writeRules is kubectl's printNetworkPolicySpecIngressFrom and
// printNetworkPolicySpecEgressTo: peer is "From" or "To", side "source" or
// "destination".
func writeRules(w io.Writer, rules []policyRule, peer, side, dir string) {
	const indent = "    "
	if len(rules) == 0 {
		fmt.Fprintf(w, "%s<none> (Selected pods are isolated for %s connectivity)\n", indent, dir)
		return
	}
	for i, r := range rules {
		if len(r.ports) == 0 {
			fmt.Fprintf(w, "%sTo Port: <any> (traffic allowed to all ports)\n", indent)
		}
		for _, pp := range r.ports {
			fmt.Fprintf(w, "%sTo Port: %s/%s\n", indent, policyPort(pp), protocol(pp.Protocol))
		}
		if len(r.peers) == 0 {
			fmt.Fprintf(w, "%s%s: <any> (traffic not restricted by %s)\n", indent, peer, side)
		}
		for _, p := range r.peers {
			fmt.Fprintf(w, "%s%s:\n", indent, peer)
			switch {
			case p.PodSelector != nil && p.NamespaceSelector != nil:
				fmt.Fprintf(w, "%s  NamespaceSelector: %s\n", indent, formatSelector(p.NamespaceSelector))
				fmt.Fprintf(w, "%s  PodSelector: %s\n", indent, formatSelector(p.PodSelector))
			case p.PodSelector != nil:
				fmt.Fprintf(w, "%s  PodSelector: %s\n", indent, formatSelector(p.PodSelector))
			case p.NamespaceSelector != nil:
				fmt.Fprintf(w, "%s  NamespaceSelector: %s\n", indent, formatSelector(p.NamespaceSelector))
			case p.IPBlock != nil:
				fmt.Fprintf(w, "%s  IPBlock:\n", indent)
				fmt.Fprintf(w, "%s    CIDR: %s\n", indent, p.IPBlock.CIDR)
				fmt.Fprintf(w, "%s    Except: %s\n", indent, strings.Join(p.IPBlock.Except, ", "))
			}
		}
		if i != len(rules)-1 {
			fmt.Fprintf(w, "%s----------\n", indent)
		}
	}
}

// policyPort is a rule port: 80, http, 32000-32768, or <any>.
func policyPort(p v1.NetworkPolicyPort) string {
	switch {
	case p.Port == nil:
		return "<any>"
	case p.EndPort != nil && !p.Port.IsStr:
		return fmt.Sprintf("%d-%d", p.Port.Int, *p.EndPort)
	}
	return p.Port.String()
}
