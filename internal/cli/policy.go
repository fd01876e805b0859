package cli

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
)

// policyCmd holds the NetworkPolicy diagnostics: what would happen to a
// connection, and what was dropped.
func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "explain and observe NetworkPolicy enforcement"}
	cmd.AddCommand(a.policyTraceCmd(), a.policyDropsCmd())
	return cmd
}

func (a *app) policyTraceCmd() *cobra.Command {
	var q v1.PolicyTrace
	var port string
	cmd := &cobra.Command{
		Use:   "trace --from SRC --to DST --port PORT[/PROTO]",
		Short: "tell whether NetworkPolicies allow a new connection, and which policy and rule decide",
		Long: `Asks knitd whether a new connection from SRC to DST (container names or
addresses) on PORT (tcp unless /udp or /sctp is given) would be allowed by
the NetworkPolicies in force, as the kernel enforces them. The first line
is ALLOWED or DENIED; then one line per direction: egress (policies
selecting the source) and ingress (policies selecting the destination),
with the reason and the deciding policies. The exit status is 0 for both
verdicts; -o json prints the verdict as knitd gives it.`,
		Example: `  knit policy trace --from frontend --to backend --port 8080
  knit policy trace --from web --to 10.88.0.1 --port 53/udp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var missing []string
			for flag, v := range map[string]string{"--from": q.From, "--to": q.To, "--port": port} {
				if v == "" {
					missing = append(missing, flag)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				return fmt.Errorf("knit policy trace needs %s; e.g. --from frontend --to backend --port 8080/tcp", strings.Join(missing, ", "))
			}
			var err error
			if q.Port, q.Protocol, err = parseTracePort(port); err != nil {
				return err
			}
			v, err := a.client().PolicyTrace(cmd.Context(), q)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(v)
			}
			a.printVerdict(&v)
			return nil
		},
	}
	cmd.Flags().StringVar(&q.From, "from", "", "source: container name or address")
	cmd.Flags().StringVar(&q.To, "to", "", "destination: container name or address")
	cmd.Flags().StringVar(&port, "port", "", "destination port, PORT or PORT/PROTO (tcp, udp or sctp; default tcp)")
	return cmd
}

// parseTracePort reads 80, 80/tcp, 53/UDP.
func parseTracePort(s string) (uint16, string, error) {
	num, proto, _ := strings.Cut(s, "/")
	proto = strings.ToLower(cmp.Or(proto, "tcp"))
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return 0, "", fmt.Errorf("--port %s: unknown protocol %q; use tcp, udp or sctp, e.g. --port 53/udp", s, proto)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("--port %s: give a port number from 1 to 65535, e.g. --port 8080 or --port 53/udp", s)
	}
	return uint16(n), proto, nil
}

// printVerdict writes ALLOWED or DENIED, then egress and ingress:
//
//	DENIED
//	egress:   allowed  no NetworkPolicy selects frontend for egress
//	ingress:  denied   no rule allows it (isolated by default/deny-all)
func (a *app) printVerdict(v *v1.PolicyVerdict) {
	fmt.Fprintln(a.stdout, map[bool]string{true: "ALLOWED", false: "DENIED"}[v.Allowed])
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, d := range []struct {
		name string
		r    *v1.DirectionResult
	}{{"egress", &v.Egress}, {"ingress", &v.Ingress}} {
		fmt.Fprintf(tw, "%s:\t%s\t%s\n", d.name, map[bool]string{true: "allowed", false: "denied"}[d.r.Allowed], directionReason(d.name, d.r))
	}
	_ = tw.Flush()
}

// directionReason is knitd's reason with the deciding policies or rules.
func directionReason(dir string, r *v1.DirectionResult) string {
	reason := r.Reason
	if reason == "" && !r.Isolated {
		reason = "not isolated: no NetworkPolicy selects it for " + dir
	}
	var decided string
	switch {
	case r.Allowed && len(r.AllowedBy) > 0:
		decided = "allowed by " + strings.Join(r.AllowedBy, ", ")
	case !r.Allowed && len(r.IsolatedBy) > 0:
		decided = "isolated by " + strings.Join(r.IsolatedBy, ", ")
	}
	switch {
	case decided == "":
		return cmp.Or(reason, "-")
	case reason == "":
		return decided
	}
	return reason + " (" + decided + ")"
}

func (a *app) policyDropsCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "drops [--limit N]",
		Short: "show packets NetworkPolicies dropped: counts per policy and the latest drops",
		Long: `Shows how many new connections each NetworkPolicy denied since knitd
started (a packet denied at a pod several policies isolate counts for each
of them), and the most recent drops, newest first.`,
		Example: "  knit policy drops --limit 5",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return errors.New("--limit must be 1 or more, the number of recent drops to show")
			}
			d, err := a.client().PolicyDrops(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.json(d)
			}
			a.printDrops(&d)
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most N recent drops")
	return cmd
}

// printDrops writes the counts (most first) and the recent drops.
func (a *app) printDrops(d *v1.PolicyDrops) {
	if len(d.Counts) == 0 && len(d.Recent) == 0 {
		fmt.Fprintln(a.stdout, "No packets dropped by NetworkPolicies.")
		return
	}
	names := slices.Collect(maps.Keys(d.Counts))
	slices.SortFunc(names, func(x, y string) int { return cmp.Or(cmp.Compare(d.Counts[y], d.Counts[x]), cmp.Compare(x, y)) })
	rows := make([][]string, len(names))
	for i, n := range names {
		rows[i] = []string{n, strconv.FormatUint(d.Counts[n], 10)}
	}
	a.table([]string{"POLICY", "DROPS"}, rows)
	if len(d.Recent) == 0 {
		return
	}
	fmt.Fprintln(a.stdout)
	rows = make([][]string, len(d.Recent))
	for i, r := range d.Recent {
		rows[i] = []string{r.Time.Local().Format("Jan _2 15:04:05"), r.Direction, r.Protocol, dropPeer(r.SrcName, r.Src), dropPeer(r.DstName, r.Dst), dash(strings.Join(r.Policies, ","))}
	}
	a.table([]string{"TIME", "DIRECTION", "PROTO", "SRC", "DST", "POLICIES"}, rows)
}

// dropPeer is "name (address)", or the address of an unknown peer.
func dropPeer(name, addr string) string {
	if name == "" {
		return addr
	}
	return name + " (" + addr + ")"
}
