package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
)

func (a *app) containerCmds() []*cobra.Command {
	return []*cobra.Command{a.runCmd(), a.psCmd(), a.inspectCmd(), a.execCmd(), a.logsCmd(), a.stopCmd(), a.rmCmd(), a.portCmd()}
}

func (a *app) runCmd() *cobra.Command {
	var req v1.ContainerCreate
	var detach, remove bool
	var ips, labels, publish, dnsServers, addHosts, ctrPorts []string
	var probe probeFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "run a command in a new container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Command = args
			owner := "container"
			if req.Name != "" {
				owner = fmt.Sprintf("container %q", req.Name)
			}
			for _, s := range ips {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					return v1.Invalidf("%s: --ip %q is not an IP address", owner, s)
				}
				req.IPs = append(req.IPs, ip)
			}
			for _, d := range dnsServers {
				ip, err := netip.ParseAddr(d)
				if err != nil {
					return v1.Invalidf("%s: --dns %q is not an IP address", owner, d)
				}
				req.DNS.Servers = append(req.DNS.Servers, ip)
			}
			for _, h := range addHosts {
				name, addr, ok := strings.Cut(h, ":")
				ip, err := netip.ParseAddr(addr)
				if !ok || err != nil {
					return v1.Invalidf("%s: --add-host %q: write name:ip, e.g. api.local:192.168.1.100", owner, h)
				}
				req.ExtraHosts = append(req.ExtraHosts, v1.HostEntry{Name: name, IP: ip})
			}
			for _, spec := range publish {
				p, err := v1.ParsePortSpec(spec)
				if err != nil {
					return fmt.Errorf("%s: %w", owner, err)
				}
				req.Ports = append(req.Ports, p)
			}
			var err error
			if req.Labels, err = parseLabels(owner, labels); err != nil {
				return err
			}
			if req.ContainerPorts, err = parseContainerPorts(owner, ctrPorts); err != nil {
				return err
			}
			if req.Readiness, err = probe.parse(owner, req.ContainerPorts); err != nil {
				return err
			}
			var c v1.Container
			if err := a.client().Do(cmd.Context(), http.MethodPost, "/v1/containers", &req, &c); err != nil {
				return err
			}
			if detach {
				if a.output == "json" {
					return a.json(c)
				}
				fmt.Fprintln(a.stdout, c.Name)
				return nil
			}
			return a.attach(cmd.Context(), c.Name, remove)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "run in the background and print the container's name")
	f.BoolVar(&remove, "rm", false, "remove the container when it exits")
	f.StringVar(&req.Name, "name", "", "container name (default knit-<id>)")
	f.StringVar(&req.Hostname, "hostname", "", "host name inside the container")
	f.StringArrayVar(&req.Networks, "network", nil, "network to attach (repeat for several), host, none, or container:NAME")
	f.StringArrayVar(&ips, "ip", nil, "static address (one per network and family)")
	f.StringArrayVar(&labels, "label", nil, "label key=value")
	f.StringVarP(&req.Namespace, "namespace", "n", "", `namespace of the container, for Service selectors (default "default")`)
	f.StringArrayVar(&ctrPorts, "port", nil, "named container port NAME=PORT[/tcp|udp|sctp] for a Service's targetPort (repeat for several)")
	f.StringVar(&probe.spec, "readiness", "", "readiness probe tcp:PORT or http:PORT[/path]; PORT is a number or a --port name")
	f.DurationVar(&probe.period, "readiness-period", 0, "time between readiness probes (default 250ms)")
	f.DurationVar(&probe.timeout, "readiness-timeout", 0, "time one readiness probe may take (default 1s)")
	f.StringArrayVarP(&publish, "publish", "p", nil, "publish [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]")
	f.StringArrayVar(&req.Aliases, "alias", nil, "extra DNS name on the container's networks")
	f.StringArrayVar(&dnsServers, "dns", nil, "name server for names knit does not know")
	f.StringArrayVar(&req.DNS.Search, "dns-search", nil, "search domain in resolv.conf")
	f.StringArrayVar(&req.DNS.Options, "dns-option", nil, "option in resolv.conf (e.g. ndots:2)")
	f.StringArrayVar(&addHosts, "add-host", nil, "extra /etc/hosts line name:ip")
	return cmd
}

// attach streams a container's output until it exits and returns its exit
// code, like docker run without -d.
func (a *app) attach(ctx context.Context, name string, remove bool) error {
	c := a.client()
	body, err := c.Stream(ctx, http.MethodGet, "/v1/containers/"+client.Esc(name)+"/logs?follow=true")
	if err != nil {
		return err
	}
	_, _ = io.Copy(a.stdout, body)
	body.Close()
	if ctx.Err() != nil {
		fmt.Fprintf(a.stderr, "knit: detached; %s keeps running (knit logs %s, knit stop %s)\n", name, name, name)
		return exitError{130}
	}
	var ctr v1.Container
	if err := c.Do(ctx, http.MethodGet, "/v1/containers/"+client.Esc(name), nil, &ctr); err != nil {
		return err
	}
	if remove {
		if err := c.Do(ctx, http.MethodDelete, "/v1/containers/"+client.Esc(name)+"?force=true", nil, nil); err != nil {
			return err
		}
	}
	if ctr.Status.ExitCode != 0 {
		code := ctr.Status.ExitCode
		if code < 0 || code > 255 {
			code = 255
		}
		return exitError{code}
	}
	return nil
}

func (a *app) psCmd() *cobra.Command {
	var all, quiet bool
	var ns nsFlags
	cmd := &cobra.Command{
		Use: "ps", Short: "list containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cs []v1.Container
			if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/containers", nil, &cs); err != nil {
				return err
			}
			shown := cs[:0]
			for _, c := range cs {
				if (all || c.Status.State != v1.StateExited) && (ns.namespace == "" || containerNamespace(&c) == ns.namespace) {
					shown = append(shown, c)
				}
			}
			if a.output == "json" {
				return a.json(shown)
			}
			if quiet {
				for _, c := range shown {
					fmt.Fprintln(a.stdout, c.Name)
				}
				return nil
			}
			var rows [][]string
			for _, c := range shown {
				var nets, addrs []string
				for _, ep := range c.Endpoints {
					nets = append(nets, ep.Network)
					addrs = append(addrs, strs(ep.Addresses)...)
				}
				if len(nets) == 0 {
					nets = []string{c.NetworkMode}
				}
				st := c.Status.State
				if st == v1.StateExited {
					st = "exited (" + strconv.Itoa(c.Status.ExitCode) + ")"
				}
				var ports []string
				for _, p := range c.Ports {
					ports = append(ports, portString(p))
				}
				row := []string{c.Name, short(c.ID), st, strings.Join(nets, ","), dash(strings.Join(addrs, ",")), dash(strings.Join(ports, ",")), strings.Join(c.Command, " ")}
				if ns.allNamespaces {
					row = append([]string{containerNamespace(&c)}, row...)
				}
				rows = append(rows, row)
			}
			header := []string{"NAME", "ID", "STATE", "NETWORKS", "ADDRESSES", "PORTS", "COMMAND"}
			if ns.allNamespaces {
				header = append([]string{"NAMESPACE"}, header...)
			}
			a.table(header, rows)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include exited containers")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "names only")
	cmd.Flags().StringVarP(&ns.namespace, "namespace", "n", "", "only containers of this namespace (default: every namespace)")
	cmd.Flags().BoolVarP(&ns.allNamespaces, "all-namespaces", "A", false, "add a NAMESPACE column")
	return cmd
}

// containerNamespace is the container's namespace; records written before
// namespaces existed have none and are in "default".
func containerNamespace(c *v1.Container) string {
	if c.Namespace == "" {
		return v1.DefaultNamespace
	}
	return c.Namespace
}

func (a *app) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use: "inspect NAME...", Short: "show containers in detail (JSON)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []v1.Container
			for _, name := range args {
				var c v1.Container
				if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/containers/"+client.Esc(name), nil, &c); err != nil {
					return err
				}
				out = append(out, c)
			}
			return a.json(out)
		},
	}
}

// execCmd enters the container's network, UTS and mount namespaces with
// util-linux nsenter (a multi-threaded Go program cannot join a mount
// namespace itself) and replaces knit with the command.
func (a *app) execCmd() *cobra.Command {
	return &cobra.Command{
		Use: "exec NAME -- CMD [ARGS...]", Short: "run a command inside a running container", Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c v1.Container
			if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/containers/"+client.Esc(args[0]), nil, &c); err != nil {
				return err
			}
			if c.Status.State != v1.StateRunning || c.Status.Pid == 0 {
				return v1.Conflictf("container %q is not running (%s); start a new one with knit run", c.Name, c.Status.State)
			}
			nsenter, err := exec.LookPath("nsenter")
			if err != nil {
				return fmt.Errorf("knit exec needs nsenter (util-linux): %w", err)
			}
			argv := append([]string{"nsenter", "--target", strconv.Itoa(c.Status.Pid), "--net", "--uts", "--mount", "--"}, args[1:]...)
			return syscall.Exec(nsenter, argv, os.Environ())
		},
	}
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "logs NAME", Short: "print a container's output", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := a.client().Stream(cmd.Context(), http.MethodGet, "/v1/containers/"+client.Esc(args[0])+"/logs?follow="+strconv.FormatBool(follow))
			if err != nil {
				return err
			}
			defer body.Close()
			_, err = io.Copy(a.stdout, body)
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the container exits")
	return cmd
}

func (a *app) stopCmd() *cobra.Command {
	var grace int
	cmd := &cobra.Command{
		Use: "stop NAME...", Short: "stop containers (SIGTERM, then SIGKILL)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				path := fmt.Sprintf("/v1/containers/%s/stop?t=%d", client.Esc(name), grace)
				if err := a.client().Do(cmd.Context(), http.MethodPost, path, struct{}{}, nil); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, name)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&grace, "time", "t", 10, "seconds to wait before SIGKILL")
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "rm NAME...", Short: "remove containers", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				path := "/v1/containers/" + client.Esc(name) + "?force=" + strconv.FormatBool(force)
				if err := a.client().Do(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}

// portParts returns the host address, host ports and container ports of a
// mapping as docker prints them.
func portParts(p v1.PortMapping) (host, hostPorts, ctrPorts string) {
	host = "0.0.0.0"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
		if p.HostIP.Is6() {
			host = "[" + host + "]"
		}
	}
	hostPorts, ctrPorts = strconv.Itoa(int(p.HostPort)), strconv.Itoa(int(p.ContainerPort))
	if n := p.Count(); n > 1 {
		hostPorts += "-" + strconv.Itoa(int(p.HostPort)+n-1)
		ctrPorts += "-" + strconv.Itoa(int(p.ContainerPort)+n-1)
	}
	return host, hostPorts, ctrPorts
}

// portString prints a mapping as docker ps does: 0.0.0.0:8080->80/tcp.
func portString(p v1.PortMapping) string {
	host, hp, cp := portParts(p)
	return host + ":" + hp + "->" + cp + "/" + p.Protocol
}

func (a *app) portCmd() *cobra.Command {
	return &cobra.Command{
		Use: "port NAME", Short: "list a container's published ports", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c v1.Container
			if err := a.client().Do(cmd.Context(), http.MethodGet, "/v1/containers/"+client.Esc(args[0]), nil, &c); err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(c.Ports)
			}
			for _, p := range c.Ports {
				host, hp, cp := portParts(p)
				fmt.Fprintf(a.stdout, "%s/%s -> %s:%s\n", cp, p.Protocol, host, hp)
			}
			return nil
		},
	}
}
