package cli

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
)

func (a *app) describeCmd() *cobra.Command {
	var ns nsFlags
	cmd := &cobra.Command{
		Use:   "describe (service|svc|networkpolicy|netpol) [NAME...] [-n NS]",
		Short: "show Services (with their endpoints) or NetworkPolicies in detail, as kubectl describe does",
		Example: `  knit describe svc backend
  knit describe services -n staging
  knit describe netpol default-deny-all`,
		Args:        cobra.MinimumNArgs(1),
		Annotations: map[string]string{outputsAnnotation: "table"},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, names, err := parseResourceArgs(args, resServices, resNetworkPolicies)
			if err != nil {
				return err
			}
			if res == resNetworkPolicies {
				return a.describeNetworkPolicies(cmd, &ns, names)
			}
			details, failed, err := a.fetchServices(cmd, &ns, names, resServices, true)
			if err != nil {
				return err
			}
			if len(details) == 0 && len(names) == 0 {
				a.noResources(&ns)
			}
			for i := range details {
				if i > 0 {
					fmt.Fprint(a.stdout, "\n\n")
				}
				describeService(a.stdout, &details[i])
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	ns.add(cmd, false)
	return cmd
}

// lastApplied is the annotation kubectl apply writes; describe hides it.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// describeService writes kubectl describe service's layout. Endpoints
// lists every ready endpoint (kubectl cuts after three; knit hosts are
// small enough to show them all) and, on a line of its own, the not-ready
// ones.
func describeService(out io.Writer, d *v1.ServiceDetail) {
	s := &d.Service
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "Name:\t%s\n", s.Metadata.Name)
	fmt.Fprintf(w, "Namespace:\t%s\n", s.Metadata.Namespace)
	writeMultiline(w, "Labels", s.Metadata.Labels, "=", nil)
	writeMultiline(w, "Annotations", s.Metadata.Annotations, ": ", map[string]bool{lastApplied: true})
	fmt.Fprintf(w, "Selector:\t%s\n", formatLabels(s.Spec.Selector))
	fmt.Fprintf(w, "Type:\t%s\n", serviceType(s))
	if s.Spec.IPFamilyPolicy != "" {
		fmt.Fprintf(w, "IP Family Policy:\t%s\n", s.Spec.IPFamilyPolicy)
	}
	fmt.Fprintf(w, "IP Families:\t%s\n", noneIfEmpty(strings.Join(s.Spec.IPFamilies, ",")))
	fmt.Fprintf(w, "IP:\t%s\n", s.Spec.ClusterIP)
	fmt.Fprintf(w, "IPs:\t%s\n", noneIfEmpty(strings.Join(s.Spec.ClusterIPs, ",")))
	if s.Spec.LoadBalancerIP != "" {
		fmt.Fprintf(w, "Desired LoadBalancer IP:\t%s\n", s.Spec.LoadBalancerIP)
	}
	if s.Spec.ExternalName != "" {
		fmt.Fprintf(w, "External Name:\t%s\n", s.Spec.ExternalName)
	}
	if in := s.Status.LoadBalancer.Ingress; len(in) > 0 {
		ips := make([]string, 0, len(in))
		for _, i := range in {
			ips = append(ips, i.IP)
		}
		fmt.Fprintf(w, "LoadBalancer Ingress:\t%s\n", strings.Join(ips, ", "))
	}
	for i := range s.Spec.Ports {
		sp := &s.Spec.Ports[i]
		name := cmp.Or(sp.Name, "<unset>")
		proto := protocol(sp.Protocol)
		fmt.Fprintf(w, "Port:\t%s\t%d/%s\n", name, sp.Port, proto)
		target := sp.TargetPort
		if target.IsZero() {
			target = v1.IntOrString{Int: sp.Port} // Kubernetes' default
		}
		fmt.Fprintf(w, "TargetPort:\t%s/%s\n", target, proto)
		if sp.NodePort != 0 {
			fmt.Fprintf(w, "NodePort:\t%s\t%d/%s\n", name, sp.NodePort, proto)
		}
		if serviceType(s) == v1.ServiceTypeExternalName {
			continue
		}
		fmt.Fprintf(w, "Endpoints:\t%s\n", formatEndpoints(endpointList(d, true, sp), 0))
		if notReady := endpointList(d, false, sp); len(notReady) > 0 {
			fmt.Fprintf(w, "Not Ready Endpoints:\t%s\n", strings.Join(notReady, ","))
		}
	}
	fmt.Fprintf(w, "Session Affinity:\t%s\n", cmp.Or(s.Spec.SessionAffinity, v1.AffinityNone))
	if s.Spec.ExternalTrafficPolicy != "" {
		fmt.Fprintf(w, "External Traffic Policy:\t%s\n", s.Spec.ExternalTrafficPolicy)
	}
	if s.Spec.InternalTrafficPolicy != "" {
		fmt.Fprintf(w, "Internal Traffic Policy:\t%s\n", s.Spec.InternalTrafficPolicy)
	}
	fmt.Fprintf(w, "Events:\t<none>\n")
}

// writeMultiline writes a map one sorted key per line, the first next to
// the title, as kubectl does for labels and annotations.
func writeMultiline(w io.Writer, title string, m map[string]string, sep string, skip map[string]bool) {
	fmt.Fprintf(w, "%s:\t", title)
	first := true
	for _, k := range sortedKeys(m) {
		if skip[k] {
			continue
		}
		if !first {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprintf(w, "%s%s%s\n", k, sep, m[k])
		first = false
	}
	if first {
		fmt.Fprintln(w, "<none>")
	}
}

func noneIfEmpty(s string) string { return cmp.Or(s, "<none>") }
