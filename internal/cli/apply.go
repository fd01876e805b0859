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
// namespace. It refuses, before anything is sent, objects knit cannot act
// on yet and objects defined twice.
func (a *app) readManifests(cmd *cobra.Command, ff *fileFlags, ns *nsFlags) ([]manifest.Object, error) {
	objs, err := manifest.Read(ff.files, manifest.Options{Stdin: a.stdin, Recursive: ff.recursive})
	if err != nil {
		return nil, err
	}
	var errs []error
	for i := range objs {
		if err := objs[i].Unsupported(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
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

func (a *app) applyCmd() *cobra.Command {
	var ff fileFlags
	var ns nsFlags
	var dryRun string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "create or update Kubernetes Services from manifests",
		Long: `Reads Kubernetes manifests (YAML documents separated by ---, or JSON;
kind List too) and creates or updates the v1 Services in them, as kubectl
apply does. Every object of every -f goes to knitd in one request: knitd
checks them all and writes all or none.

Objects without metadata.namespace go to -n (default "default"); an object
naming another namespace than an explicit -n is refused.`,
		Example: `  knit apply -f backend.yaml
  knit apply -f manifests/ -n staging
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
			req := v1.ApplyRequest{DryRun: suffix != ""}
			for _, o := range objs {
				req.Services = append(req.Services, *o.Service)
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
					fmt.Fprintln(a.stdout, strings.ToLower(o.Kind)+"/"+o.Name)
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
		Use:   "delete (-f FILE|DIR|- | service NAME... | service/NAME...)",
		Short: "delete Services, named or as listed in manifests",
		Long: `Deletes each object named, or listed in the -f manifests, one at a time.
A missing object is reported and the others are still deleted; the exit
status is then non-zero.`,
		Example: `  knit delete -f backend.yaml
  knit delete svc backend frontend -n staging`,
		Annotations: map[string]string{outputsAnnotation: "table,name"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var targets []deleteTarget
			switch {
			case len(ff.files) > 0 && len(args) > 0:
				return errors.New("give either -f or TYPE NAME..., not both")
			case len(ff.files) > 0:
				objs, err := a.readManifests(cmd, &ff, &ns)
				if err != nil {
					return err
				}
				for _, o := range objs {
					targets = append(targets, deleteTarget{o.Namespace, o.Name})
				}
			default:
				_, names, err := parseResourceArgs(args, resServices)
				if err != nil {
					return err
				}
				if len(names) == 0 {
					return errors.New("give the services to delete: knit delete service NAME..., or -f FILE")
				}
				for _, n := range names {
					targets = append(targets, deleteTarget{ns.get(), n})
				}
			}
			failed := false
			for _, t := range targets {
				err := a.client().DeleteService(cmd.Context(), t.namespace, t.name)
				switch {
				case err == nil && a.output == "name":
					fmt.Fprintf(a.stdout, "service/%s\n", t.name)
				case err == nil:
					fmt.Fprintf(a.stdout, "service %q deleted\n", t.name)
				case v1.IsNotFound(err) && ignoreNotFound:
				default:
					fmt.Fprintln(a.stderr, kubeError(err, resServices, t.name))
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

type deleteTarget struct{ namespace, name string }
