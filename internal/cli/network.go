package cli

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
)

func (a *app) networkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "manage networks"}
	cmd.AddCommand(a.networkCreateCmd(), a.networkLsCmd(), a.networkInspectCmd(), a.networkRmCmd(),
		a.networkConnectCmd(true), a.networkConnectCmd(false), a.networkPruneCmd())
	return cmd
}

func (a *app) networkCreateCmd() *cobra.Command {
	var req v1.NetworkCreate
	var subnets, gateways, ranges, labels []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var err error
			if req.Subnets, err = parseSubnets(req.Name, subnets, gateways, ranges); err != nil {
				return err
			}
			if req.Labels, err = parseLabels(fmt.Sprintf("network %q", req.Name), labels); err != nil {
				return err
			}
			var n v1.Network
			if err := a.client().Do(cmd.Context(), http.MethodPost, "/v1/networks", &req, &n); err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(n)
			}
			fmt.Fprintln(a.stdout, n.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&req.Driver, "driver", "d", v1.DriverBridge, "driver: bridge, host or none")
	f.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR form (once per family)")
	f.StringArrayVar(&gateways, "gateway", nil, "gateway of the subnet given in the same position")
	f.StringArrayVar(&ranges, "ip-range", nil, "allocate container addresses only from this part of the subnet in the same position")
	f.BoolVar(&req.IPv6, "ipv6", false, "add an IPv6 subnet (picked from the pool unless given)")
	f.BoolVar(&req.Internal, "internal", false, "no way out of the host and no NAT")
	f.IntVar(&req.MTU, "mtu", 0, "MTU of the bridge and container interfaces (default 1500)")
	f.StringArrayVar(&labels, "label", nil, "label key=value")
	f.StringVar(&req.Bridge, "bridge", "", "name of the Linux bridge (default kn-<id>)")
	return cmd
}

// parseSubnets pairs --gateway and --ip-range with the --subnet in the same
// position, as docker network create does.
func parseSubnets(name string, subnets, gateways, ranges []string) ([]v1.Subnet, error) {
	owner := fmt.Sprintf("network %q", name)
	if len(gateways) > len(subnets) || len(ranges) > len(subnets) {
		return nil, v1.Invalidf("%s: each --gateway and --ip-range needs a --subnet in the same position", owner)
	}
	out := make([]v1.Subnet, len(subnets))
	for i, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, v1.Invalidf("%s: --subnet %q is not a valid CIDR; give one like 10.1.0.0/24", owner, s)
		}
		out[i].Subnet = p
		if i < len(gateways) {
			if out[i].Gateway, err = netip.ParseAddr(gateways[i]); err != nil {
				return nil, v1.Invalidf("%s: --gateway %q is not an IP address", owner, gateways[i])
			}
		}
		if i < len(ranges) {
			if out[i].IPRange, err = netip.ParsePrefix(ranges[i]); err != nil {
				return nil, v1.Invalidf("%s: --ip-range %q is not a valid CIDR", owner, ranges[i])
			}
		}
	}
	return out, nil
}

func (a *app) networks(cmd *cobra.Command) ([]v1.Network, error) {
	var nets []v1.Network
	err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/networks", nil, &nets)
	return nets, err
}

func (a *app) networkLsCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "list networks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nets, err := a.networks(cmd)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(nets)
			}
			if quiet {
				for _, n := range nets {
					fmt.Fprintln(a.stdout, n.Name)
				}
				return nil
			}
			var rows [][]string
			for _, n := range nets {
				var subs []string
				for _, s := range n.Subnets {
					subs = append(subs, s.Subnet.String())
				}
				flags := []string{}
				if n.Internal {
					flags = append(flags, "internal")
				}
				if n.Deleting {
					flags = append(flags, "deleting")
				}
				rows = append(rows, []string{n.Name, short(n.ID), n.Driver, dash(strings.Join(subs, ",")), dash(n.Bridge), dash(strings.Join(flags, ","))})
			}
			a.table([]string{"NAME", "ID", "DRIVER", "SUBNETS", "BRIDGE", "FLAGS"}, rows)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "names only")
	return cmd
}

// networkView is what inspect shows: the network and who is on it.
type networkView struct {
	v1.Network
	Containers map[string]endpointView `json:"containers"`
}

type endpointView struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"`
}

func (a *app) networkInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use: "inspect NAME...", Short: "show networks in detail (JSON)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cs []v1.Container
			if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/containers", nil, &cs); err != nil {
				return err
			}
			var out []networkView
			for _, name := range args {
				var n v1.Network
				if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/networks/"+client.Esc(name), nil, &n); err != nil {
					return err
				}
				v := networkView{Network: n, Containers: map[string]endpointView{}}
				for _, c := range cs {
					for _, ep := range c.Endpoints {
						if ep.NetworkID == n.ID && len(ep.Addresses) > 0 {
							v.Containers[c.ID] = endpointView{Name: c.Name, Interface: ep.Interface, MAC: ep.MAC, Addresses: strs(ep.Addresses)}
						}
					}
				}
				out = append(out, v)
			}
			return a.json(out)
		},
	}
}

func (a *app) networkRmCmd() *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"remove"}, Short: "remove networks", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := a.client().Do(cmd.Context(), http.MethodDelete, "/v1/networks/"+client.Esc(name), nil, nil); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, name)
			}
			return nil
		},
	}
}

func (a *app) networkConnectCmd(connect bool) *cobra.Command {
	var req v1.Connect
	var ips []string
	use, short, verb := "connect NETWORK CONTAINER", "connect a running container to a network", "connect"
	if !connect {
		use, short, verb = "disconnect NETWORK CONTAINER", "disconnect a container from a network", "disconnect"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Container = args[1]
			for _, s := range ips {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					return v1.Invalidf("container %q: --ip %q is not an IP address", args[1], s)
				}
				req.IPs = append(req.IPs, ip)
			}
			var c v1.Container
			path := "/v1/networks/" + client.Esc(args[0]) + "/" + verb
			if err := a.client().Do(cmd.Context(), http.MethodPost, path, &req, &c); err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(c)
			}
			return nil
		},
	}
	if connect {
		cmd.Flags().StringArrayVar(&ips, "ip", nil, "static address on this network")
		cmd.Flags().StringArrayVar(&req.Aliases, "alias", nil, "extra DNS name on this network")
	} else {
		cmd.Flags().BoolVarP(&req.Force, "force", "f", false, "succeed even if not connected")
	}
	return cmd
}

func (a *app) networkPruneCmd() *cobra.Command {
	return &cobra.Command{
		Use: "prune", Short: "remove every user network without containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var removed []string
			if err := a.client().Do(cmd.Context(), http.MethodPost, "/v1/networks/prune", struct{}{}, &removed); err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(removed)
			}
			for _, n := range removed {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}
