package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
)

// namespaceCmd manages namespaces: their labels are what NetworkPolicy
// namespaceSelectors match. Namespaces that containers, services or
// policies use exist without being created, with only the automatic
// kubernetes.io/metadata.name label.
func (a *app) namespaceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespace",
		Aliases: []string{"ns"},
		Short:   "manage namespaces and their labels, which NetworkPolicy namespaceSelectors match",
	}
	cmd.AddCommand(a.namespaceCreateCmd(), a.namespaceLabelCmd(), a.namespaceLsCmd(), a.namespaceRmCmd())
	return cmd
}

func (a *app) namespaceCreateCmd() *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:     "create NAME [--label KEY=VALUE]...",
		Short:   "create a namespace with labels",
		Example: "  knit namespace create prod --label env=prod --label team=payments",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := v1.ValidateNamespaceName(name); err != nil {
				return err
			}
			set, err := parseLabels(fmt.Sprintf("namespace %q", name), labels)
			if err != nil {
				return err
			}
			upd := v1.NamespaceUpdate{Name: name, Set: set}
			if err := upd.Validate(); err != nil {
				return err
			}
			ns, err := a.client().CreateNamespace(cmd.Context(), upd)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(ns)
			}
			fmt.Fprintf(a.stdout, "namespace/%s created\n", ns.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeat for several)")
	return cmd
}

func (a *app) namespaceLabelCmd() *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "label NAME KEY=VALUE... KEY-...",
		Short: "add, change or remove a namespace's labels",
		Long: `Changes the labels of a namespace as kubectl label namespace does:
KEY=VALUE sets a label (changing an existing value needs --overwrite), KEY-
removes one. The label kubernetes.io/metadata.name is always the
namespace's name.`,
		Example: `  knit namespace label prod env=prod
  knit namespace label prod env=staging --overwrite
  knit namespace label prod team-`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.labelNamespace(cmd, args[0], args[1:], overwrite)
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "allow changing the value of an existing label")
	return cmd
}

// labelNamespace is knit namespace label and knit label namespace.
func (a *app) labelNamespace(cmd *cobra.Command, name string, args []string, overwrite bool) error {
	owner := fmt.Sprintf("namespace %q", name)
	if err := v1.ValidateNamespaceName(name); err != nil {
		return err
	}
	lu, err := parseLabelUpdate(owner, args)
	if err != nil {
		return err
	}
	if _, ok := lu.Set[v1.NamespaceNameLabel]; ok || slices.Contains(lu.Remove, v1.NamespaceNameLabel) {
		return fmt.Errorf("%s: label %s is always the namespace's name; it cannot be set or removed", owner, v1.NamespaceNameLabel)
	}
	upd := v1.NamespaceUpdate{Set: lu.Set, Remove: lu.Remove, Overwrite: overwrite}
	if err := upd.Validate(); err != nil {
		return err
	}
	ns, err := a.client().LabelNamespace(cmd.Context(), name, upd)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return a.json(ns)
	}
	fmt.Fprintf(a.stdout, "namespace/%s labeled\n", ns.Name)
	return nil
}

func (a *app) namespaceLsCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "list namespaces and their labels", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nss, err := a.namespaces(cmd)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(nss)
			}
			if quiet {
				for _, n := range nss {
					fmt.Fprintln(a.stdout, n.Name)
				}
				return nil
			}
			rows := make([][]string, len(nss))
			for i, n := range nss {
				rows[i] = []string{n.Name, formatLabels(n.EffectiveLabels())}
			}
			a.table([]string{"NAME", "LABELS"}, rows)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "names only")
	return cmd
}

func (a *app) namespaceRmCmd() *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"remove"}, Short: "remove namespaces that nothing uses", Args: cobra.MinimumNArgs(1),
		Long: `Removes namespaces and their labels. knitd refuses a namespace that a
container, service or NetworkPolicy is still in, and the default namespace.
Every name is tried; the exit status is non-zero if one failed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, name := range args {
				if err := a.client().DeleteNamespace(cmd.Context(), name); err != nil {
					fmt.Fprintln(a.stderr, "knit:", err)
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, name)
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
}

// namespaces lists every namespace, sorted by name.
func (a *app) namespaces(cmd *cobra.Command) ([]v1.Namespace, error) {
	nss, err := a.client().ListNamespaces(cmd.Context())
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nss, func(x, y v1.Namespace) int { return strings.Compare(x.Name, y.Name) })
	return nss, nil
}

// kubeNamespace is a namespace as kubectl get ns -o yaml shows it.
type kubeNamespace struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Metadata   v1.ObjectMeta `json:"metadata"`
	Status     struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

func toKubeNamespace(n v1.Namespace) kubeNamespace {
	k := kubeNamespace{APIVersion: "v1", Kind: "Namespace", Metadata: v1.ObjectMeta{Name: n.Name, Labels: n.EffectiveLabels(), CreationTimestamp: n.Created}}
	k.Status.Phase = "Active"
	return k
}

// getNamespaces is knit get namespaces: kubectl's NAME STATUS AGE.
func (a *app) getNamespaces(cmd *cobra.Command, names []string) error {
	all, err := a.namespaces(cmd)
	if err != nil {
		return err
	}
	nss := all
	failed := false
	if len(names) > 0 {
		nss = nil
		for _, name := range names {
			i := slices.IndexFunc(all, func(n v1.Namespace) bool { return n.Name == name })
			if i < 0 {
				fmt.Fprintln(a.stderr, kubeError(v1.NotFoundf("no namespace %q", name), resNamespaces, name))
				failed = true
				continue
			}
			nss = append(nss, all[i])
		}
	}
	switch a.output {
	case "yaml", "json":
		items := make([]any, len(nss))
		for i, n := range nss {
			items[i] = toKubeNamespace(n)
		}
		err = a.printObjects(items, len(names) == 1)
	case "name":
		for _, n := range nss {
			fmt.Fprintln(a.stdout, objectName(resNamespaces, n.Name))
		}
	default:
		if len(nss) == 0 && len(names) == 0 {
			fmt.Fprintln(a.stderr, "No resources found")
		} else if len(nss) > 0 {
			a.table(namespaceTable(nss, a.output == "wide", a.clock()))
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

// namespaceTable is kubectl get namespaces' table; -o wide adds the
// labels (kubectl's --show-labels).
func namespaceTable(nss []v1.Namespace, wide bool, now time.Time) ([]string, [][]string) {
	header := []string{"NAME", "STATUS", "AGE"}
	if wide {
		header = append(header, "LABELS")
	}
	rows := make([][]string, len(nss))
	for i, n := range nss {
		rows[i] = []string{n.Name, "Active", age(n.Created, now)}
		if wide {
			rows[i] = append(rows[i], formatLabels(n.EffectiveLabels()))
		}
	}
	return header, rows
}
