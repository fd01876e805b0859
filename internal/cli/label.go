package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/validate/content"

	v1 "github.com/knit-net/knit/api/v1"
)

func (a *app) labelCmd() *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "label (CONTAINER | namespace NAME) KEY=VALUE... KEY-...",
		Short: "add, change or remove the labels of a container (Service and NetworkPolicy selectors match them) or a namespace",
		Long: `Changes the labels of a container as kubectl label does for a pod:
KEY=VALUE sets a label (changing an existing value needs --overwrite), KEY-
removes one. Keys and values follow Kubernetes' label syntax.

"namespace NAME" (or ns NAME, namespace/NAME) labels a namespace instead,
as knit namespace label does.`,
		Example: `  knit label web app=backend tier=api
  knit label web tier=frontend --overwrite
  knit label web tier-
  knit label namespace prod env=prod`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ns, rest, ok := namespaceLabelArgs(args); ok {
				return a.labelNamespace(cmd, ns, rest, overwrite)
			}
			name := strings.TrimPrefix(args[0], "container/")
			upd, err := parseLabelArgs(name, args[1:])
			if err != nil {
				return err
			}
			upd.Overwrite = overwrite
			c, err := a.client().LabelContainer(cmd.Context(), name, upd)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(c)
			}
			fmt.Fprintf(a.stdout, "container/%s labeled\n", c.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "allow changing the value of an existing label")
	return cmd
}

// namespaceLabelArgs recognises kubectl's "namespace NAME ..." and
// "namespace/NAME ...". A container may be called "ns": "knit label ns
// app=x" labels it, since a namespace name has no '=' and no trailing '-'.
func namespaceLabelArgs(args []string) (string, []string, bool) {
	if t, name, ok := strings.Cut(args[0], "/"); ok && resourceNames[strings.ToLower(t)] == resNamespaces {
		return name, args[1:], true
	}
	if len(args) >= 2 && resourceNames[strings.ToLower(args[0])] == resNamespaces &&
		!strings.Contains(args[1], "=") && !strings.HasSuffix(args[1], "-") {
		return args[1], args[2:], true
	}
	return "", nil, false
}

// parseLabelArgs reads kubectl label's KEY=VALUE and KEY- arguments for a
// container.
func parseLabelArgs(container string, args []string) (v1.LabelUpdate, error) {
	return parseLabelUpdate(fmt.Sprintf("container %q", container), args)
}

// parseLabelUpdate reads KEY=VALUE and KEY- arguments; owner ("container
// \"web\"") starts every message.
func parseLabelUpdate(owner string, args []string) (v1.LabelUpdate, error) {
	var upd v1.LabelUpdate
	if len(args) == 0 {
		return upd, fmt.Errorf("%s: at least one label update is required: KEY=VALUE to set, KEY- to remove", owner)
	}
	removed := map[string]bool{}
	for _, arg := range args {
		if key, ok := strings.CutSuffix(arg, "-"); ok && !strings.Contains(arg, "=") {
			if err := checkLabelKey(owner, arg, key); err != nil {
				return upd, err
			}
			if !removed[key] {
				upd.Remove = append(upd.Remove, key)
				removed[key] = true
			}
			continue
		}
		key, value, ok := strings.Cut(arg, "=")
		if !ok {
			return upd, fmt.Errorf("%s: invalid label spec %q; write KEY=VALUE to set a label or KEY- to remove one", owner, arg)
		}
		if err := checkLabelKey(owner, arg, key); err != nil {
			return upd, err
		}
		if msgs := content.IsLabelValue(value); len(msgs) > 0 {
			return upd, fmt.Errorf("%s: invalid label value %q in %q: %s", owner, value, arg, strings.Join(msgs, "; "))
		}
		if old, dup := upd.Set[key]; dup && old != value {
			return upd, fmt.Errorf("%s: label %q is given twice with different values (%q and %q)", owner, key, old, value)
		}
		if upd.Set == nil {
			upd.Set = map[string]string{}
		}
		upd.Set[key] = value
	}
	for _, k := range upd.Remove {
		if _, ok := upd.Set[k]; ok {
			return upd, errors.New("can not both modify and remove a label in the same command: " + k)
		}
	}
	return upd, nil
}

func checkLabelKey(owner, arg, key string) error {
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		return fmt.Errorf("%s: invalid label key %q in %q: %s", owner, key, arg, strings.Join(msgs, "; "))
	}
	return nil
}
