// Command guard runs knit's regression guard (make bench-guard): it builds
// a reference commit (by default the one before HEAD) beside the working
// tree, runs the attach benchmark and micro-benchmarks of the hot paths
// (a published port, a service endpoint, a policy change, a policy
// recompile, a DNS answer) for both, alternating, in the same run, and
// fails when the tree is more than -max times slower, or uses -max times
// the memory, on any of them (medians of -rounds).
//
// A micro-benchmark is found by name in each tree (its package may have
// moved); one the reference does not have is reported, not compared.
// Needs root (the benchmarks make network namespaces) and git.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// micro are the guarded micro-benchmarks.
var micro = []string{
	"AddOneMappingAt1000",
	"ServiceEndpointReplace10000",
	"PolicyChangeAt1000",
	"RecompileOneChanged",
	"ServeDNSLocal",
}

// benchtime is the -benchtime of micro-benchmarks that take microseconds
// (the others take -benchtime): enough iterations to average over.
var benchtime = map[string]string{"ServeDNSLocal": "200000x"}

type config struct {
	ref, benchtime                   string
	rounds, attachRounds, attachSize int
	max                              float64
	keep                             bool
	work, root, refTree              string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.ref, "ref", "HEAD~1", "the commit to compare with")
	flag.IntVar(&cfg.rounds, "rounds", 3, "alternating rounds; medians are compared")
	flag.IntVar(&cfg.attachSize, "attach-size", 1000, "containers running when attach is measured (0: skip the attach benchmark)")
	flag.IntVar(&cfg.attachRounds, "attach-rounds", 0, "rounds of the attach benchmark, the longest part (0: -rounds)")
	flag.StringVar(&cfg.benchtime, "benchtime", "20x", "go test -benchtime of the micro-benchmarks that take milliseconds")
	flag.Float64Var(&cfg.max, "max", 1.5, "fail when the tree's figure is more than this times the reference's")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (builds and raw output)")
	flag.Parse()
	if cfg.attachRounds == 0 {
		cfg.attachRounds = cfg.rounds
	}
	ok, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-guard:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// tree is one side: its sources and what was built from them.
type tree struct {
	name, dir string
	bin       string            // built binaries
	tests     map[string]string // benchmark → test binary
	pkgs      map[string]string // benchmark → package directory
}

func run(cfg config) (bool, error) {
	root, err := output("", "git", "rev-parse", "--show-toplevel")
	if err != nil {
		return false, fmt.Errorf("not in a git checkout: %w", err)
	}
	cfg.root = strings.TrimSpace(root)
	rev, err := output(cfg.root, "git", "rev-parse", "--short", cfg.ref)
	if err != nil { // a shallow clone: fetch a little history
		_, _ = output(cfg.root, "git", "fetch", "--quiet", "--deepen=2")
		if rev, err = output(cfg.root, "git", "rev-parse", "--short", cfg.ref); err != nil {
			return false, fmt.Errorf("-ref %s: no such commit here, and none could be fetched; give one with GUARD_REF: %w", cfg.ref, err)
		}
	}
	if cfg.work, err = os.MkdirTemp("", "knit-guard-"); err != nil {
		return false, err
	}
	cfg.refTree = filepath.Join(cfg.work, "ref")
	if _, err := output(cfg.root, "git", "worktree", "add", "--detach", cfg.refTree, cfg.ref); err != nil {
		return false, fmt.Errorf("check out %s: %w", cfg.ref, err)
	}
	defer func() {
		_, _ = output(cfg.root, "git", "worktree", "remove", "--force", cfg.refTree)
		if !cfg.keep {
			os.RemoveAll(cfg.work)
		}
	}()
	head, _ := output(cfg.root, "git", "rev-parse", "--short", "HEAD")
	ref := &tree{name: "ref " + strings.TrimSpace(rev), dir: cfg.refTree}
	cur := &tree{name: "tree (HEAD " + strings.TrimSpace(head) + " + changes)", dir: cfg.root}
	for _, t := range []*tree{ref, cur} {
		if err := build(cfg, t); err != nil {
			return false, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	results := map[string]map[*tree][]float64{}
	add := func(t *tree, what string, v float64) {
		if results[what] == nil {
			results[what] = map[*tree][]float64{}
		}
		results[what][t] = append(results[what][t], v)
	}
	for r := range max(cfg.rounds, cfg.attachRounds) {
		sides := []*tree{ref, cur}
		if r%2 == 1 {
			sides = []*tree{cur, ref}
		}
		for _, t := range sides {
			fmt.Printf("== round %d, %s (load average %s)\n", r+1, t.name, loadavg())
			for _, b := range micro {
				if t.tests[b] == "" || r >= cfg.rounds {
					continue
				}
				ms, err := runMicro(cfg, t, b)
				if err != nil {
					return false, fmt.Errorf("%s: Benchmark%s: %w", t.name, b, err)
				}
				add(t, b+" (ms)", ms)
			}
			if cfg.attachSize > 0 && r < cfg.attachRounds {
				a, err := runAttach(cfg, t, r)
				if err != nil {
					return false, fmt.Errorf("%s: attach: %w", t.name, err)
				}
				for k, v := range a {
					add(t, k, v)
				}
			}
		}
	}
	return report(cfg, results, ref, cur), nil
}

// build compiles the test binaries of the micro-benchmarks the tree has and
// the attach benchmark with knitd and knit.
func build(cfg config, t *tree) error {
	t.bin = filepath.Join(cfg.work, strings.Fields(t.name)[0]+"-bin")
	t.tests, t.pkgs = map[string]string{}, map[string]string{}
	for _, b := range micro {
		pkg, err := findBenchmark(t.dir, b)
		if err != nil {
			return err
		}
		if pkg == "" {
			fmt.Printf("%s has no Benchmark%s: not compared\n", t.name, b)
			continue
		}
		bin := filepath.Join(t.bin, b+".test")
		if _, err := output(t.dir, "go", "test", "-c", "-o", bin, "./"+pkg); err != nil {
			return fmt.Errorf("build the tests of %s: %w", pkg, err)
		}
		t.tests[b], t.pkgs[b] = bin, filepath.Join(t.dir, pkg)
	}
	if cfg.attachSize == 0 {
		return nil
	}
	for name, pkg := range map[string]string{"knitd": "./cmd/knitd", "knit": "./cmd/knit", "bench-attach": "./bench/attach"} {
		if _, err := output(t.dir, "go", "build", "-o", filepath.Join(t.bin, name), pkg); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	return nil
}

// findBenchmark returns the package directory (relative to dir) whose tests
// define Benchmark<name>, or "" when none does.
func findBenchmark(dir, name string) (string, error) {
	want := []byte("func Benchmark" + name + "(")
	var found string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, "_test.go") || found != "":
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, want) {
			found, err = filepath.Rel(dir, filepath.Dir(path))
		}
		return err
	})
	return found, err
}

var (
	p50RE   = regexp.MustCompile(`\s([\d.]+) p50-ms`)
	nsOpRE  = regexp.MustCompile(`\s(\d+(?:\.\d+)?) ns/op`)
	benchRE = regexp.MustCompile(`^Benchmark\S+\s+\d+\s`)
)

// runMicro runs one micro-benchmark and returns its p50 in milliseconds
// where it reports one, else its time per operation.
func runMicro(cfg config, t *tree, name string) (float64, error) {
	bt := cfg.benchtime
	if b, ok := benchtime[name]; ok {
		bt = b
	}
	out, err := output(t.pkgs[name], t.tests[name], "-test.run", "^$", "-test.bench", "^Benchmark"+name+"$", "-test.benchtime", bt)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !benchRE.MatchString(line) {
			continue
		}
		if m := p50RE.FindStringSubmatch(line); m != nil {
			return strconv.ParseFloat(m[1], 64)
		}
		if m := nsOpRE.FindStringSubmatch(line); m != nil {
			ns, err := strconv.ParseFloat(m[1], 64)
			return ns / 1e6, err
		}
	}
	return 0, fmt.Errorf("no result in:\n%s", out)
}

// attachReport is the part of bench/attach's JSON report the guard reads.
type attachReport struct {
	Sizes []struct {
		Containers int `json:"containers"`
		Attach     struct {
			P50 float64 `json:"p50_ms"`
			P99 float64 `json:"p99_ms"`
		} `json:"attach"`
		KiBPerContainer float64 `json:"kib_per_container"`
	} `json:"sizes"`
	Rate *struct {
		PerS float64 `json:"ops_per_s"`
	} `json:"rate"`
}

// runAttach runs the attach benchmark at cfg.attachSize containers.
func runAttach(cfg config, t *tree, round int) (map[string]float64, error) {
	js := filepath.Join(cfg.work, fmt.Sprintf("%s-attach-%d.json", strings.Fields(t.name)[0], round))
	_, err := output(t.dir, filepath.Join(t.bin, "bench-attach"), "-knitd", filepath.Join(t.bin, "knitd"),
		"-knit", filepath.Join(t.bin, "knit"), "-sizes", strconv.Itoa(cfg.attachSize), "-samples", "30",
		"-parallel", "4", "-rate-ops", "200", "-cli-samples", "0", "-json", js)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return nil, err
	}
	var rep attachReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("read %s: %w", js, err)
	}
	if len(rep.Sizes) == 0 || rep.Rate == nil || rep.Rate.PerS == 0 {
		return nil, fmt.Errorf("%s: no attach or rate result", js)
	}
	s := rep.Sizes[len(rep.Sizes)-1]
	n := strconv.Itoa(s.Containers)
	return map[string]float64{
		"attach p50 at " + n + " (ms)":         s.Attach.P50,
		"attach p99 at " + n + " (ms)":         s.Attach.P99,
		"attach time per call, 4 clients (ms)": 1000 / rep.Rate.PerS * 4,
		"knitd memory per container (KiB)":     s.KiBPerContainer,
	}, nil
}

// report prints the best figures side by side and says whether the tree is
// within cfg.max of the reference on every figure.
func report(cfg config, results map[string]map[*tree][]float64, ref, cur *tree) bool {
	names := make([]string, 0, len(results))
	for k := range results {
		names = append(names, k)
	}
	slices.Sort(names)
	w := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\n\tbest of the rounds: %s\t%s\ttree ÷ ref\t\n", ref.name, cur.name)
	ok := true
	for _, k := range names {
		r, c := best(results[k][ref]), best(results[k][cur])
		verdict, ratio := "new: not compared", ""
		if len(results[k][ref]) > 0 && r > 0 {
			q := c / r
			ratio = fmt.Sprintf("%.2f", q)
			verdict = "ok"
			if q > cfg.max {
				verdict, ok = fmt.Sprintf("REGRESSION: more than %.2f×", cfg.max), false
			}
		}
		fmt.Fprintf(w, "%s\t%.4g\t%.4g\t%s\t%s\n", k, r, c, ratio, verdict)
	}
	w.Flush()
	if ok {
		fmt.Printf("bench-guard: within %.2f× of %s on every figure\n", cfg.max, ref.name)
	} else {
		fmt.Printf("bench-guard: FAILED: the tree is more than %.2f× %s on a figure above; profile it (go test -cpuprofile) before it lands\n", cfg.max, ref.name)
	}
	return ok
}

// best is the smallest figure (times and memory alike: less is better).
func best(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// output runs a command in dir and returns its output; a failure carries
// the output.
func output(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return buf.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, buf.String())
		}
		return "", err
	}
	return buf.String(), nil
}
