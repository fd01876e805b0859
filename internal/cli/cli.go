// Package cli is the knit command line: docker-network-like commands that
// call knitd's API and print readable tables, or JSON with -o json;
// kubectl-like ones (apply, get, describe, delete, label) for Kubernetes
// Services, NetworkPolicies and namespaces, with kubectl's output; and knit's
// own namespace and policy (trace, drops) commands. Every error is printed
// as knitd (or flag or manifest parsing) phrased it, with a non-zero exit.
//
// This package (through internal/manifest) is the only one that imports
// the Kubernetes modules; knitd and knit-cni must not depend on it.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/client"
)

type app struct {
	socket string
	output string
	stdin  io.Reader // for -f -
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time // AGE columns; nil means time.Now
}

func (a *app) client() *client.Client { return client.New(a.socket) }

// exitError carries an exit code without a message (knit run passes the
// container's code through).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs the CLI with os.Args and returns the process exit code.
func Main() int {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.execute(ctx, os.Args[1:])
}

// execute runs the command line args and returns the exit code.
func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintln(a.stderr, "knit:", err)
		return 1
	}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "knit",
		Short:         "container networking for Linux",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			formats := []string{"table", "json"}
			if f, ok := cmd.Annotations[outputsAnnotation]; ok {
				formats = strings.Split(f, ",")
			}
			if !slices.Contains(formats, a.output) {
				return fmt.Errorf("-o %q: unknown output format; use %s", a.output, orList(formats))
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.socket, "socket", client.SocketFromEnv(), "knitd's API socket (or $KNIT_SOCKET)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table or json (knit get: also wide, yaml and name)")
	root.AddCommand(a.networkCmd())
	root.AddCommand(a.containerCmds()...)
	root.AddCommand(a.cniCmd())
	root.AddCommand(a.kubeCmds()...)
	return root
}

// outputsAnnotation lists, comma-separated, the -o formats a command takes
// when they are not table and json.
const outputsAnnotation = "knit/outputs"

// orList writes "a or b", "a, b or c".
func orList(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

func (a *app) json(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func (a *app) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// parseLabels reads k=v flags.
func parseLabels(owner string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, v1.Invalidf("%s: --label %q is not key=value", owner, kv)
		}
		m[k] = v
	}
	return m, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
