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
		Use:   "label CONTAINER KEY=VALUE... KEY-...",
		Short: "add, change or remove a container's labels, which Service selectors match",
		Long: `Changes the labels of a container as kubectl label does for a pod:
KEY=VALUE sets a label (changing an existing value needs --overwrite), KEY-
removes one. Keys and values follow Kubernetes' label syntax.`,
		Example: `  knit label web app=backend tier=api
  knit label web tier=frontend --overwrite
  knit label web tier-`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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

// parseLabelArgs reads kubectl label's KEY=VALUE and KEY- arguments.
func parseLabelArgs(container string, args []string) (v1.LabelUpdate, error) {
	var upd v1.LabelUpdate
	if len(args) == 0 {
		return upd, fmt.Errorf("container %q: at least one label update is required: KEY=VALUE to set, KEY- to remove", container)
	}
	removed := map[string]bool{}
	for _, arg := range args {
		if key, ok := strings.CutSuffix(arg, "-"); ok && !strings.Contains(arg, "=") {
			if err := checkLabelKey(container, arg, key); err != nil {
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
			return upd, fmt.Errorf("container %q: invalid label spec %q; write KEY=VALUE to set a label or KEY- to remove one", container, arg)
		}
		if err := checkLabelKey(container, arg, key); err != nil {
			return upd, err
		}
		if msgs := content.IsLabelValue(value); len(msgs) > 0 {
			return upd, fmt.Errorf("container %q: invalid label value %q in %q: %s", container, value, arg, strings.Join(msgs, "; "))
		}
		if old, dup := upd.Set[key]; dup && old != value {
			return upd, fmt.Errorf("container %q: label %q is given twice with different values (%q and %q)", container, key, old, value)
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

func checkLabelKey(container, arg, key string) error {
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		return fmt.Errorf("container %q: invalid label key %q in %q: %s", container, key, arg, strings.Join(msgs, "; "))
	}
	return nil
}
