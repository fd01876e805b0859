package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/manifest"
)

// fileFlags are kubectl's -f and -R.
type fileFlags struct {
	files     []string
	recursive bool
}

func (f *fileFlags) add(cmd *cobra.Command, verb string) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "manifest file, directory of .yaml/.yml/.json files, or - for stdin, to "+verb+" (repeat for several)")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "read directories given with -f recursively")
}

// readManifests parses every -f input and gives each object its
// namespace. It refuses, before anything is sent, objects defined twice.
func (a *app) readManifests(cmd *cobra.Command, ff *fileFlags, ns *nsFlags) ([]manifest.Object, error) {
	objs, err := manifest.Read(ff.files, manifest.Options{Stdin: a.stdin, Recursive: ff.recursive})
	if err != nil {
		return nil, err
	}
	if err := manifest.SetNamespace(objs, ns.get(), explicitNamespace(cmd)); err != nil {
		return nil, err
	}
	if err := manifest.CheckDuplicates(objs); err != nil {
		return nil, err
	}
	return objs, nil
}

// applyRequest puts the objects into one request. NetworkPolicies are
// validated here, with knitd's own code, so that every bad policy of every
// file is reported with where it is, before anything is sent (knitd
// validates again).
func applyRequest(objs []manifest.Object, dryRun bool) (v1.ApplyRequest, error) {
	req := v1.ApplyRequest{DryRun: dryRun}
	var errs []error
	for _, o := range objs {
		switch {
		case o.Service != nil:
			req.Services = append(req.Services, *o.Service)
		case o.NetworkPolicy != nil:
			if err := o.NetworkPolicy.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o.Source, err))
				continue
			}
			req.NetworkPolicies = append(req.NetworkPolicies, *o.NetworkPolicy)
		}
	}
	return req, errors.Join(errs...)
}

func (a *app) applyCmd() *cobra.Command {
	var ff fileFlags
	var ns nsFlags
	var dryRun string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "create or update Kubernetes Services and NetworkPolicies from manifests",
		Long: `Reads Kubernetes manifests (YAML documents separated by ---, or JSON;
kind List too) and creates or updates the v1 Services and
networking.k8s.io/v1 NetworkPolicies in them, as kubectl apply does. Every
object of every -f goes to knitd in one request: knitd checks them all and
writes all or none.

Objects without metadata.namespace go to -n (default "default"); an object
naming another namespace than an explicit -n is refused.`,
		Example: `  knit apply -f backend.yaml
  knit apply -f manifests/ -n staging
  knit apply -f default-deny-all.yaml -f allow-frontend.yaml
  cat svc.yaml | knit apply -f - --dry-run`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{outputsAnnotation: "table,json,name"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ff.files) == 0 {
				return errors.New("knit apply needs -f FILE, -f DIR or -f - (stdin)")
			}
			suffix, err := dryRunSuffix(dryRun)
			if err != nil {
				return err
			}
			objs, err := a.readManifests(cmd, &ff, &ns)
			if err != nil {
				return err
			}
			req, err := applyRequest(objs, suffix != "")
			if err != nil {
				return err
			}
			res, err := a.client().Apply(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(res)
			}
			for _, o := range res.Objects {
				if a.output == "name" {
					fmt.Fprintln(a.stdout, appliedName(o))
					continue
				}
				fmt.Fprintln(a.stdout, o.String()+suffix)
			}
			return nil
		},
	}
	ff.add(cmd, "apply")
	ns.add(cmd, false)
	cmd.Flags().StringVar(&dryRun, "dry-run", "none", "server (or client): have knitd check and allocate without writing anything; none: apply")
	cmd.Flags().Lookup("dry-run").NoOptDefVal = "server"
	return cmd
}

// appliedName is kubectl's -o name of an applied object.
func appliedName(o v1.AppliedObject) string {
	if res, ok := kindResources[o.Kind]; ok {
		return objectName(res, o.Name)
	}
	return strings.ToLower(o.Kind) + "/" + o.Name
}

// dryRunSuffix reads --dry-run as kubectl does and returns what kubectl
// appends to each line. knit's dry runs are all done by knitd (they need
// its allocations); "client" is accepted for kubectl habits.
func dryRunSuffix(s string) (string, error) {
	switch s {
	case "none", "false", "":
		return "", nil
	case "server", "true":
		return " (server dry run)", nil
	case "client":
		return " (dry run)", nil
	}
	return "", fmt.Errorf("--dry-run=%s: use server, client or none", s)
}

func (a *app) deleteCmd() *cobra.Command {
	var ff fileFlags
	var ns nsFlags
	var ignoreNotFound bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR|- | TYPE NAME... | TYPE/NAME...)",
		Short: "delete Services, NetworkPolicies or namespaces, named or as listed in manifests",
		Long: `Deletes each object named, or listed in the -f manifests, one at a time.
A missing object is reported and the others are still deleted; the exit
status is then non-zero. TYPE is service (svc), networkpolicy (netpol) or
namespace (ns); knitd refuses to delete a namespace still in use.`,
		Example: `  knit delete -f backend.yaml
  knit delete svc backend frontend -n staging
  knit delete netpol default-deny-all`,
		Annotations: map[string]string{outputsAnnotation: "table,name"},
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := a.deleteTargets(cmd, &ff, &ns, args)
			if err != nil {
				return err
			}
			failed := false
			for _, t := range targets {
				err := a.deleteOne(cmd, t)
				switch {
				case err == nil && a.output == "name":
					fmt.Fprintln(a.stdout, objectName(t.resource, t.name))
				case err == nil:
					fmt.Fprintf(a.stdout, "%s %q deleted\n", kubeNames[t.resource].singular, t.name)
				case v1.IsNotFound(err) && ignoreNotFound:
				default:
					fmt.Fprintln(a.stderr, kubeError(err, t.resource, t.name))
					failed = true
				}
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	ff.add(cmd, "delete")
	ns.add(cmd, false)
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat missing objects as deleted")
	return cmd
}

type deleteTarget struct{ resource, namespace, name string }

// deleteTargets reads what to delete from -f or from TYPE NAME...
func (a *app) deleteTargets(cmd *cobra.Command, ff *fileFlags, ns *nsFlags, args []string) ([]deleteTarget, error) {
	var targets []deleteTarget
	switch {
	case len(ff.files) > 0 && len(args) > 0:
		return nil, errors.New("give either -f or TYPE NAME..., not both")
	case len(ff.files) > 0:
		objs, err := a.readManifests(cmd, ff, ns)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			targets = append(targets, deleteTarget{kindResources[o.Kind], o.Namespace, o.Name})
		}
		return targets, nil
	}
	res, names, err := parseResourceArgs(args, resServices, resNetworkPolicies, resNamespaces)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("give the %s to delete: knit delete %s NAME..., or -f FILE", res, strings.TrimSuffix(kubeNames[res].singular, ".networking.k8s.io"))
	}
	for _, n := range names {
		targets = append(targets, deleteTarget{res, ns.get(), n})
	}
	return targets, nil
}

func (a *app) deleteOne(cmd *cobra.Command, t deleteTarget) error {
	c := a.client()
	switch t.resource {
	case resNetworkPolicies:
		return c.DeleteNetworkPolicy(cmd.Context(), t.namespace, t.name)
	case resNamespaces:
		return c.DeleteNamespace(cmd.Context(), t.name)
	}
	return c.DeleteService(cmd.Context(), t.namespace, t.name)
}
