package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
	"github.com/knit-net/knit/internal/cni/install"
)

func (a *app) cniCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cni", Short: "install knit as a CNI plugin for podman, containerd or kubelet"}
	cmd.AddCommand(a.cniInstallCmd(), a.cniUninstallCmd())
	return cmd
}

func (a *app) cniInstallCmd() *cobra.Command {
	o := install.Options{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "put knit-cni and a conflist for a knit network where CNI runtimes look",
		Long: `Copies the knit-cni plugin to <bin-dir>/knit and writes
<conf-dir>/<priority>-knit-<network>.conflist, a CNI network called --name
(what runtimes call it, e.g. podman --network NAME) that attaches containers
to the knit network through knitd at --socket. What is written is recorded in
<manifest-dir>/<name>.json so that knit cni uninstall removes exactly that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Name == "" {
				o.Name = install.DefaultName(o.Network)
			}
			if err := v1.ValidateName("CNI network", o.Name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			if o.CNIVersion != "1.0.0" && o.CNIVersion != "1.1.0" {
				return fmt.Errorf("--cni-version %q: use 1.0.0 (podman 4, containerd 1.6/1.7) or 1.1.0", o.CNIVersion)
			}
			if len(o.Priority) != 2 || o.Priority[0] < '0' || o.Priority[0] > '9' || o.Priority[1] < '0' || o.Priority[1] > '9' {
				return fmt.Errorf("--priority %q: use two digits; runtimes that take the first conflist sort by file name", o.Priority)
			}
			if o.Plugin == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find knit-cni next to knit: %w; pass --plugin", err)
				}
				o.Plugin = filepath.Join(filepath.Dir(exe), "knit-cni")
			}
			socket, err := filepath.Abs(a.socket)
			if err != nil {
				return fmt.Errorf("--socket: %w", err)
			}
			o.Socket = socket
			if err := a.checkNetwork(cmd, o.Network); err != nil {
				return err
			}
			m, err := install.Install(cmd.Context(), o)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(m)
			}
			for _, f := range m.Files {
				fmt.Fprintln(a.stdout, "wrote", f.Path)
			}
			fmt.Fprintf(a.stdout, "CNI network %q attaches to knit network %q; undo with knit cni uninstall --name %s\n", o.Name, o.Network, o.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Network, "network", v1.DefaultBridgeNetwork, "knit network to attach containers to")
	f.StringVar(&o.Name, "name", "", `CNI network name (default "knit" for the bridge network, "knit-<network>" otherwise)`)
	f.StringVar(&o.BinDir, "bin-dir", install.DefaultBinDir, "directory runtimes search for CNI plugins")
	f.StringVar(&o.ConfDir, "conf-dir", install.DefaultConfDir, "directory runtimes read CNI network configurations from")
	f.StringVar(&o.ManifestDir, "manifest-dir", install.DefaultManifestDir, "where the record of installed files is kept")
	f.StringVar(&o.Plugin, "plugin", "", "knit-cni binary to install (default: knit-cni next to this knit binary)")
	f.StringVar(&o.Priority, "priority", install.DefaultPriority, "two-digit file name prefix of the conflist")
	f.StringVar(&o.CNIVersion, "cni-version", install.DefaultCNIVersion, "cniVersion of the conflist (1.1.0 is listed in cniVersions either way)")
	return cmd
}

// checkNetwork refuses a knit network that does not exist, or is not a
// bridge; when knitd is not reachable it only warns, so that the plugin can
// be installed before knitd first starts.
func (a *app) checkNetwork(cmd *cobra.Command, name string) error {
	var n v1.Network
	err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/networks/"+client.Esc(name), nil, &n)
	var apiErr *v1.Error
	switch {
	case err == nil && n.Driver != v1.DriverBridge:
		return fmt.Errorf("knit network %q has driver %s; CNI attachments need a bridge network", name, n.Driver)
	case err == nil:
		return nil
	case errors.As(err, &apiErr) && apiErr.Code == v1.CodeNotFound:
		return fmt.Errorf("knit network %q does not exist; create it first with knit network create %s", name, name)
	case errors.As(err, &apiErr):
		return err
	}
	fmt.Fprintf(a.stderr, "knit: warning: could not check network %q (%v); installing anyway\n", name, err)
	return nil
}

func (a *app) cniUninstallCmd() *cobra.Command {
	var name, network, manifestDir string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "remove what knit cni install wrote (only files still as it wrote them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = install.DefaultName(network)
			}
			res, err := install.Uninstall(manifestDir, name)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(res)
			}
			for _, p := range res.Removed {
				fmt.Fprintln(a.stdout, "removed", p)
			}
			kept := make([]string, 0, len(res.Kept))
			for p := range res.Kept {
				kept = append(kept, p)
			}
			slices.Sort(kept)
			for _, p := range kept {
				fmt.Fprintf(a.stdout, "kept %s: %s\n", p, res.Kept[p])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", `CNI network name given to install (default from --network)`)
	f.StringVar(&network, "network", v1.DefaultBridgeNetwork, "knit network given to install, to derive the default --name")
	f.StringVar(&manifestDir, "manifest-dir", install.DefaultManifestDir, "where install kept its record")
	return cmd
}
