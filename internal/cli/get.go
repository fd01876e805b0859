package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
)

func (a *app) getCmd() *cobra.Command {
	var ns nsFlags
	cmd := &cobra.Command{
		Use:   "get (services|svc|endpoints|ep|networkpolicies|netpol|namespaces|ns) [NAME...] [-n NS | -A]",
		Short: "list Services, their endpoints, NetworkPolicies or namespaces, as kubectl get does",
		Example: `  knit get svc
  knit get svc backend -o yaml
  knit get services -A -o wide
  knit get endpoints backend
  knit get netpol -A
  knit get ns`,
		Args:        cobra.MinimumNArgs(1),
		Annotations: map[string]string{outputsAnnotation: "table,wide,yaml,json,name"},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, names, err := parseResourceArgs(args, resServices, resEndpoints, resNetworkPolicies, resNamespaces)
			if err != nil {
				return err
			}
			if ns.allNamespaces && len(names) > 0 && res != resNamespaces {
				return fmt.Errorf("a resource cannot be retrieved by name across all namespaces; use -n NAMESPACE")
			}
			switch res {
			case resNetworkPolicies:
				return a.getNetworkPolicies(cmd, &ns, names)
			case resNamespaces:
				return a.getNamespaces(cmd, names)
			}
			details, failed, err := a.fetchServices(cmd, &ns, names, res, res == resEndpoints)
			if err != nil {
				return err
			}
			if res == resEndpoints {
				var missing bool
				missing, err = a.printEndpoints(details, &ns, names)
				failed = failed || missing
			} else {
				svcs := make([]v1.Service, len(details))
				for i, d := range details {
					svcs[i] = d.Service
				}
				err = a.printServices(svcs, &ns, names)
			}
			if err != nil {
				return err
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	ns.add(cmd, true)
	return cmd
}

// fetchServices gets the named services, reporting each that fails on
// stderr kubectl-style (as the resource asked for) and setting failed; or
// it lists the namespace's services, and with withEndpoints fetches their
// endpoints too, stopping at the first error.
func (a *app) fetchServices(cmd *cobra.Command, ns *nsFlags, names []string, resource string, withEndpoints bool) (out []v1.ServiceDetail, failed bool, err error) {
	c := a.client()
	ctx := cmd.Context()
	if len(names) > 0 {
		for _, n := range names {
			d, err := c.GetService(ctx, ns.get(), n)
			if err != nil {
				fmt.Fprintln(a.stderr, kubeError(err, resource, n))
				failed = true
				continue
			}
			out = append(out, d)
		}
		return out, failed, nil
	}
	listNS := ns.get()
	if ns.allNamespaces {
		listNS = ""
	}
	svcs, err := c.ListServices(ctx, listNS)
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(svcs, func(x, y v1.Service) int {
		return cmp.Or(cmp.Compare(x.Metadata.Namespace, y.Metadata.Namespace), cmp.Compare(x.Metadata.Name, y.Metadata.Name))
	})
	for _, s := range svcs {
		d := v1.ServiceDetail{Service: s}
		if withEndpoints && len(s.Spec.Selector) > 0 {
			if d, err = c.GetService(ctx, s.Metadata.Namespace, s.Metadata.Name); v1.IsNotFound(err) {
				continue // deleted since the list
			} else if err != nil {
				return nil, false, err
			}
		}
		out = append(out, d)
	}
	return out, false, nil
}

// noResources is kubectl's note for an empty list.
func (a *app) noResources(ns *nsFlags) {
	if ns.allNamespaces {
		fmt.Fprintln(a.stderr, "No resources found")
		return
	}
	fmt.Fprintf(a.stderr, "No resources found in %s namespace.\n", ns.get())
}

func (a *app) printServices(svcs []v1.Service, ns *nsFlags, names []string) error {
	switch a.output {
	case "yaml", "json":
		items := make([]any, len(svcs))
		for i := range svcs {
			items[i] = svcs[i]
		}
		return a.printObjects(items, len(names) == 1)
	case "name":
		for _, s := range svcs {
			fmt.Fprintln(a.stdout, "service/"+s.Metadata.Name)
		}
		return nil
	}
	if len(svcs) == 0 {
		if len(names) == 0 {
			a.noResources(ns)
		}
		return nil
	}
	header, rows := serviceTable(svcs, a.output == "wide", ns.allNamespaces, a.clock())
	a.table(header, rows)
	return nil
}

// serviceTable is kubectl get services' table.
func serviceTable(svcs []v1.Service, wide, withNamespace bool, now time.Time) ([]string, [][]string) {
	header := []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}
	if wide {
		header = append(header, "SELECTOR")
	}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(svcs))
	for i := range svcs {
		s := &svcs[i]
		clusterIP := s.Spec.ClusterIP
		if clusterIP == "" {
			clusterIP = "<none>"
		}
		row := []string{s.Metadata.Name, serviceType(s), clusterIP, externalIP(s, wide), servicePorts(s), age(s.Metadata.CreationTimestamp, now)}
		if wide {
			row = append(row, formatLabels(s.Spec.Selector))
		}
		if withNamespace {
			row = append([]string{s.Metadata.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return header, rows
}

func serviceType(s *v1.Service) string { return cmp.Or(s.Spec.Type, v1.ServiceTypeClusterIP) }

func protocol(p string) string { return cmp.Or(p, v1.ProtocolTCP) }

// servicePorts is the PORT(S) column: 80/TCP, 80:30080/TCP, comma-separated.
func servicePorts(s *v1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return "<none>"
	}
	out := make([]string, len(s.Spec.Ports))
	for i, p := range s.Spec.Ports {
		if p.NodePort > 0 {
			out[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, protocol(p.Protocol))
		} else {
			out[i] = fmt.Sprintf("%d/%s", p.Port, protocol(p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

// externalIP is the EXTERNAL-IP column: the load balancer addresses (or
// <pending>), the external name, or <none>.
func externalIP(s *v1.Service, wide bool) string {
	switch serviceType(s) {
	case v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort:
		return "<none>"
	case v1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			}
		}
		if len(ips) == 0 {
			return "<pending>"
		}
		r := strings.Join(ips, ",")
		if !wide && len(r) > 16 {
			r = r[:13] + "..." // kubectl's loadBalancerStatusStringer
		}
		return r
	case v1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	}
	return "<unknown>"
}
