package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	v1 "github.com/knit-net/knit/api/v1"
)

// kubeCmds are the kubectl-like commands for Kubernetes objects: Services
// and NetworkPolicies from manifests, labels on containers for their
// selectors, namespaces and their labels for namespaceSelectors, and the
// policy diagnostics.
func (a *app) kubeCmds() []*cobra.Command {
	return []*cobra.Command{a.applyCmd(), a.deleteCmd(), a.getCmd(), a.describeCmd(), a.labelCmd(), a.namespaceCmd(), a.policyCmd()}
}

// nsFlags are kubectl's -n and -A.
type nsFlags struct {
	namespace     string
	allNamespaces bool
}

func (f *nsFlags) add(cmd *cobra.Command, withAll bool) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", `namespace (default "default")`)
	if withAll {
		cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "list objects of every namespace")
	}
}

// get is the namespace to use: -n, or "default".
func (f *nsFlags) get() string {
	if f.namespace == "" {
		return v1.DefaultNamespace
	}
	return f.namespace
}

// explicit reports whether -n was given.
func explicitNamespace(cmd *cobra.Command) bool { return cmd.Flags().Changed("namespace") }

// Resource types knit get, describe and delete know, by every name
// kubectl accepts for them.
const (
	resServices        = "services"
	resEndpoints       = "endpoints"
	resNetworkPolicies = "networkpolicies"
	resNamespaces      = "namespaces"
)

var resourceNames = map[string]string{
	"service": resServices, "services": resServices, "svc": resServices,
	"endpoints": resEndpoints, "endpoint": resEndpoints, "ep": resEndpoints,
	"networkpolicy": resNetworkPolicies, "networkpolicies": resNetworkPolicies, "netpol": resNetworkPolicies,
	"networkpolicy.networking.k8s.io": resNetworkPolicies, "networkpolicies.networking.k8s.io": resNetworkPolicies,
	"namespace": resNamespaces, "namespaces": resNamespaces, "ns": resNamespaces,
}

// kubeName is how kubectl names a resource: plural (qualified with its
// API group) in errors, singular in -o name and delete output.
type kubeName struct{ plural, singular string }

var kubeNames = map[string]kubeName{
	resServices:        {"services", "service"},
	resEndpoints:       {"endpoints", "endpoints"},
	resNetworkPolicies: {"networkpolicies.networking.k8s.io", "networkpolicy.networking.k8s.io"},
	resNamespaces:      {"namespaces", "namespace"},
}

// kindResources maps manifest kinds to resources.
var kindResources = map[string]string{v1.KindService: resServices, v1.KindNetworkPolicy: resNetworkPolicies}

// objectName is kubectl's -o name: service/web,
// networkpolicy.networking.k8s.io/deny.
func objectName(resource, name string) string { return kubeNames[resource].singular + "/" + name }

// parseResourceArgs reads "TYPE [NAME...]" or "TYPE/NAME...".
func parseResourceArgs(args []string, allowed ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("give a resource type: %s", orList(allowed))
	}
	lookup := func(t string) (string, error) {
		r, ok := resourceNames[strings.ToLower(t)]
		if !ok || !slices.Contains(allowed, r) {
			return "", fmt.Errorf("the server doesn't have a resource type %q; use %s", t, orList(allowed))
		}
		return r, nil
	}
	if !strings.Contains(args[0], "/") {
		r, err := lookup(args[0])
		return r, args[1:], err
	}
	var res string
	var names []string
	for _, arg := range args {
		t, name, ok := strings.Cut(arg, "/")
		if !ok || name == "" {
			return "", nil, fmt.Errorf("%q: write every argument as TYPE/NAME, or TYPE NAME...", arg)
		}
		r, err := lookup(t)
		if err != nil {
			return "", nil, err
		}
		if res != "" && r != res {
			return "", nil, fmt.Errorf("%q: give objects of one type at a time", arg)
		}
		res = r
		names = append(names, name)
	}
	return res, names, nil
}

// kubeError phrases an API error the way kubectl prints it for the
// object: Error from server (NotFound): services "x" not found.
func kubeError(err error, resource, name string) string {
	if v1.IsNotFound(err) {
		return fmt.Sprintf("Error from server (NotFound): %s %q not found", kubeNames[resource].plural, name)
	}
	return "knit: " + err.Error()
}

func (a *app) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// age prints the time since t as kubectl's AGE column does (5s, 3m20s, 4d).
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// printObjects writes one object, or several as a kind List, in YAML or
// JSON, as kubectl get -o yaml|json does.
func (a *app) printObjects(items []any, single bool) error {
	var v any
	if single && len(items) == 0 {
		return nil // the one object asked for is missing; stderr says so
	}
	if single && len(items) == 1 {
		v = items[0]
	} else {
		if items == nil {
			items = []any{}
		}
		v = map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]any{"resourceVersion": ""}}
	}
	if a.output == "json" {
		return a.json(v)
	}
	return writeYAML(a.stdout, v)
}

func writeYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("write YAML: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// formatLabels writes a label map as kubectl does: sorted k=v pairs, or
// <none>.
func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := sortedKeys(m)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
