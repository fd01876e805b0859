package presubmit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The rules, as data. Paths are relative to the module root; a pattern
// "x/..." means x and every package under it, a pattern without "/..." means
// that one package.

// maxFileLines is the most lines a non-test Go file may have. Generated files
// (// Code generated ... DO NOT EDIT.) and _test.go files are exempt.
const maxFileLines = 600

// layers ranks every package of the module: a higher rank is a higher layer,
// and a package may import only module packages of its own rank or a lower
// one. A package's rank is that of the longest pattern that matches it; a
// package no pattern matches fails TestLayering until it is added here.
//
// internal/policy sits below the data plane, not among the services: it is a
// pure compiler from the API's NetworkPolicies to the form that
// internal/dataplane/nft enforces (it imports nothing of knit but api/v1), and
// the engine consumes its output types.
var layers = []layer{
	{7, "programs: commands, benchmarks, end-to-end tests, these checks", []string{"cmd/...", "bench/...", "test/..."}},
	{6, "composition root", []string{"internal/daemon/..."}},
	{5, "front ends and controllers", []string{"internal/apiserver/...", "internal/cli/...", "internal/cni/...", "internal/controller/..."}},
	{4, "services", []string{"internal/reconcile/...", "internal/dns/...", "internal/probe/...", "internal/endpoints/...", "internal/manifest/...", "internal/client/..."}},
	{3, "state and kernel", []string{"internal/store/...", "internal/ipam/...", "internal/state/...", "internal/driver/...", "internal/dataplane/...", "internal/runner/...", "internal/portmap/..."}},
	{2, "compilers from the API to the data plane's form", []string{"internal/policy/..."}},
	{1, "kernel names, primitives and test helpers", []string{"internal/kname/...", "internal/netns/...", "internal/testutil/..."}},
	{0, "API types", []string{"api/..."}},
}

// importRules are explicit bans that hold whatever the layer table says
// (several of them forbid imports between packages of the same layer).
var importRules = []importRule{
	{
		from: []string{"internal/dataplane/..."},
		to:   []string{"internal/controller/...", "internal/daemon/...", "internal/apiserver/..."},
		why:  "the data plane is driven by the controllers, the daemon and the API server; it never reaches back up into them",
	},
	{
		from: []string{"internal/dataplane/nft"},
		to:   []string{"internal/dataplane/nft/..."},
		why:  "internal/dataplane/nft is the nftables engine: its feature packages under internal/dataplane/nft/ import it, never the reverse",
	},
	{
		from: []string{"internal/driver/...", "internal/store/..."},
		to:   []string{"internal/controller/..."},
		why:  "drivers and stores are driven by the controllers, never the reverse",
	},
	{
		from: []string{"api/..."},
		to:   []string{"internal/...", "cmd/...", "bench/...", "test/..."},
		why:  "the API types are the contract; they depend on no part of the implementation",
	},
	{
		from:   []string{"api/...", "cmd/...", "internal/..."},
		except: []string{"internal/testutil/...", "internal/store/storetest"},
		to:     []string{"internal/testutil/...", "internal/store/storetest"},
		why:    "test helpers import package testing; only _test.go files, test/ and bench/ may use them",
	},
}

// notProduct are the trees whose code may exec anything: tests and benchmarks
// build their topologies and reference setups with the usual tools. Every
// other non-test Go file is product code. (internal/testutil/... holds
// helpers for tests only; product code may not import it.)
var notProduct = []string{"test/...", "bench/...", "internal/testutil/..."}

// kernelTools are the programs product code must not exec: knit programs the
// kernel through netlink (vishvananda/netlink, google/nftables,
// mdlayher/netlink) and /proc/sys, never through these.
var kernelTools = []string{
	"ip", "bridge", "tc", "nft", "sysctl",
	"iptables", "iptables-save", "iptables-restore", "iptables-legacy", "iptables-nft",
	"ip6tables", "ip6tables-save", "ip6tables-restore", "ip6tables-legacy", "ip6tables-nft",
	"ebtables", "arptables", "ipset", "conntrack", "brctl", "ifconfig", "route",
}

// execWrappers run the program named among their arguments, so
// exec.Command("nsenter", ..., "ip", ...) or ("sh", "-c", "sysctl ...") is
// exec'ing a kernel tool too.
var execWrappers = []string{
	"nsenter", "unshare", "sh", "bash", "dash", "env", "sudo", "busybox", "chroot", "timeout", "setpriv", "runuser", "xargs",
}

// execAllowed are the product packages that may start processes at all
// (import os/exec, or call os.StartProcess, syscall.Exec, syscall.ForkExec,
// syscall.StartProcess or unix.Exec), with the reason. Even they must not
// exec a kernel tool.
var execAllowed = map[string]string{
	"internal/cli":         "knit exec replaces itself with util-linux nsenter to enter a running container",
	"internal/cni/install": "knit cni install runs the knit-cni plugin's CNI VERSION to check --plugin",
	"internal/runner":      "re-execs /proc/self/exe as a container's init, which execs the container's command",
}

type layer struct {
	rank     int
	name     string
	patterns []string
}

type importRule struct {
	from   []string // importing packages the rule applies to
	except []string // importing packages it does not apply to
	to     []string // packages they must not import
	why    string
}

// The tree, from one go list.

type goPackage struct {
	ImportPath     string
	Name           string
	Doc            string
	Dir            string
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	TestGoFiles    []string
	XTestGoFiles   []string
	Imports        []string
	Error          *struct{ Err string }

	Rel string `json:"-"` // the package's path inside the module, e.g. internal/dataplane/nft
}

type tree struct {
	root   string // module root directory
	module string // module path
	pkgs   []*goPackage
}

var (
	loadOnce sync.Once
	loaded   *tree
	errLoad  error
)

// load runs go list once for all the checks.
func load(t *testing.T) *tree {
	t.Helper()
	loadOnce.Do(func() { loaded, errLoad = loadTree() })
	if errLoad != nil {
		t.Fatalf("presubmit cannot learn the tree: %v", errLoad)
	}
	return loaded
}

func loadTree() (*tree, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return nil, err
	}
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e",
		"-json=ImportPath,Name,Doc,Dir,GoFiles,CgoFiles,IgnoredGoFiles,TestGoFiles,XTestGoFiles,Imports,Error",
		"./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -json ./... in %s: %v\n%s", root, err, stderr.Bytes())
	}
	tr := &tree{root: root, module: module}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %v", err)
		}
		p.Rel = tr.relPackage(p.ImportPath)
		tr.pkgs = append(tr.pkgs, p)
	}
	if len(tr.pkgs) == 0 {
		return nil, fmt.Errorf("go list ./... in %s listed no packages", root)
	}
	return tr, nil
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any directory above it", dir)
		}
		d = parent
	}
}

func modulePath(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(data)) {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			if p, err := strconv.Unquote(f[1]); err == nil {
				return p, nil
			}
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s has no module line", gomod)
}

// relPackage turns an import path of the module into a path inside it; other
// import paths come back as "".
func (tr *tree) relPackage(importPath string) string {
	switch {
	case importPath == tr.module:
		return "."
	case strings.HasPrefix(importPath, tr.module+"/"):
		return strings.TrimPrefix(importPath, tr.module+"/")
	}
	return ""
}

// relFile names a file by its path from the module root, for messages.
func (tr *tree) relFile(name string) string {
	if r, err := filepath.Rel(tr.root, name); err == nil {
		return filepath.ToSlash(r)
	}
	return name
}

// checkable is every package go list could load; TestGoList reports the rest.
func (tr *tree) checkable() []*goPackage {
	var ps []*goPackage
	for _, p := range tr.pkgs {
		if p.Error == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// nonTestFiles are p's non-test Go files, including those this GOOS/GOARCH
// leaves out of the build (netns_other.go and the like).
func nonTestFiles(p *goPackage) []string {
	var fs []string
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles} {
		for _, f := range list {
			if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") {
				fs = append(fs, filepath.Join(p.Dir, f))
			}
		}
	}
	sort.Strings(fs)
	return fs
}

func testFiles(p *goPackage) []string {
	var fs []string
	for _, list := range [][]string{p.TestGoFiles, p.XTestGoFiles} {
		for _, f := range list {
			fs = append(fs, filepath.Join(p.Dir, f))
		}
	}
	return fs
}

func isProduct(rel string) bool { return !matchAny(notProduct, rel) }

// matchPattern reports whether pattern ("x" or "x/...") matches package rel,
// and how specific the match is.
func matchPattern(pattern, rel string) (specificity int, ok bool) {
	if base, tree := strings.CutSuffix(pattern, "/..."); tree {
		if rel == base || strings.HasPrefix(rel, base+"/") {
			return len(base), true
		}
		return 0, false
	}
	if rel == pattern {
		return len(pattern) + 1, true // an exact pattern beats x/... of the same x
	}
	return 0, false
}

func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if _, ok := matchPattern(p, rel); ok {
			return true
		}
	}
	return false
}

// TestGoList fails when go list cannot load a package: the other checks skip
// such a package, so it must not pass quietly. It also makes sure the checks
// are not vacuous: this package itself must be among those listed.
func TestGoList(t *testing.T) {
	tr := load(t)
	self := false
	for _, p := range tr.pkgs {
		if p.Rel == "test/presubmit" {
			self = true
		}
		if p.Error != nil {
			t.Errorf("%s: go list cannot load it, so the presubmit checks skipped it: %s", p.Rel, strings.TrimSpace(p.Error.Err))
		}
	}
	if !self {
		t.Errorf("go list in %s did not list test/presubmit itself; the presubmit checks are looking at the wrong tree", tr.root)
	}
	t.Logf("%d packages in %s (module %s)", len(tr.pkgs), tr.root, tr.module)
}

// 1. Package docs.

// TestPackageDocs: every package, commands included, has a package doc
// comment, and a library's starts "Package <name>".
func TestPackageDocs(t *testing.T) {
	tr := load(t)
	for _, p := range tr.checkable() {
		doc, err := packageDoc(p)
		if err != nil {
			t.Errorf("%s: %v", p.Rel, err)
			continue
		}
		for _, problem := range checkPackageDoc(p.Rel, p.Name, doc) {
			t.Error(problem)
		}
	}
}

// packageDoc is p's package comment: go list's Doc, else the first package
// comment in its non-test files (go list looks only at those this GOOS
// builds), else, for a package of tests only such as test/e2e, the first in
// its test files.
func packageDoc(p *goPackage) (string, error) {
	if p.Doc != "" {
		return p.Doc, nil
	}
	files := nonTestFiles(p)
	if len(files) == 0 {
		files = testFiles(p)
	}
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return "", err
		}
		if af.Doc != nil {
			return af.Doc.Text(), nil
		}
	}
	return "", nil
}

// checkPackageDoc judges the doc comment of package rel, named name.
func checkPackageDoc(rel, name, doc string) []string {
	doc = strings.TrimSpace(doc)
	switch {
	case doc == "" && name == "main":
		return []string{fmt.Sprintf("%s: command has no doc comment; put one starting `// Command %s ...` right above `package main` (in main.go or a doc.go)", rel, path.Base(rel))}
	case doc == "":
		return []string{fmt.Sprintf("%s: package %s has no doc comment; add a doc.go with `// Package %s ...` right above `package %s`", rel, name, name, name)}
	case name != "main" && !startsWithWords(doc, "Package "+name):
		first, _, _ := strings.Cut(doc, "\n")
		return []string{fmt.Sprintf("%s: package doc comment starts %q; start it \"Package %s ...\", the form go doc expects", rel, first, name)}
	}
	return nil
}

// startsWithWords reports whether s starts with prefix followed by a word boundary.
func startsWithWords(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return rest == "" || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_')
}

// 2. File size.

// TestFileSize: no non-test Go file exceeds maxFileLines lines.
func TestFileSize(t *testing.T) {
	tr := load(t)
	for _, p := range tr.checkable() {
		for _, f := range nonTestFiles(p) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Error(err)
				continue
			}
			if problem := checkFileSize(tr.relFile(f), src, maxFileLines); problem != "" {
				t.Error(problem)
			}
		}
	}
}

func checkFileSize(name string, src []byte, limit int) string {
	n := countLines(src)
	if n <= limit || isGenerated(src) {
		return ""
	}
	return fmt.Sprintf("%s: %d lines, over the limit of %d for non-test Go files; split it by concern into more files of the same package", name, n, limit)
}

func countLines(src []byte) int {
	n := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}

// isGenerated reports whether src carries the "Code generated ... DO NOT
// EDIT." comment (https://go.dev/s/generatedcode).
func isGenerated(src []byte) bool {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.PackageClauseOnly|parser.ParseComments)
	return err == nil && ast.IsGenerated(f)
}

// 3. No exec of kernel tools.

// TestNoExecOfKernelTools: product code does not exec ip, iptables, nft,
// sysctl, tc, bridge and the like, directly or through a wrapper such as
// nsenter or sh -c; and only the packages in execAllowed start processes at
// all. The first rule catches the tools by name wherever the name is a
// constant; the second catches what a name check cannot see (a name built at
// run time, a new package that shells out), and keeps the exec'ing code in
// the few places a reviewer knows about.
func TestNoExecOfKernelTools(t *testing.T) {
	tr := load(t)
	starting := map[string]bool{}
	for _, p := range tr.checkable() {
		if !isProduct(p.Rel) {
			continue
		}
		fset := token.NewFileSet()
		var files []*ast.File
		for _, f := range nonTestFiles(p) {
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Errorf("%s: cannot parse it, so cannot check it for exec: %v", tr.relFile(f), err)
				continue
			}
			files = append(files, af)
		}
		scan := scanExec(fset, files)
		for _, k := range scan.kernel {
			t.Errorf("%s:%d: %s; product code programs the kernel through netlink (vishvananda/netlink, google/nftables) and /proc/sys, never by exec'ing %s",
				tr.relFile(k.pos.Filename), k.pos.Line, k.how, k.tool)
		}
		for _, s := range scan.starts {
			starting[p.Rel] = true
			if _, ok := execAllowed[p.Rel]; !ok {
				t.Errorf("%s:%d: %s, but package %s may not start processes; program the kernel through netlink, or, if it must run a program that is no kernel tool, add %q with the reason to execAllowed in test/presubmit/presubmit_test.go",
					tr.relFile(s.pos.Filename), s.pos.Line, s.what, p.Rel, p.Rel)
			}
		}
	}
	// Keep the allow-list tight: an entry that starts nothing is stale.
	loadedOK := map[string]bool{}
	for _, p := range tr.pkgs {
		loadedOK[p.Rel] = p.Error == nil
	}
	for _, rel := range slices.Sorted(maps.Keys(execAllowed)) {
		if ok, listed := loadedOK[rel]; (!listed || ok) && !starting[rel] {
			t.Errorf("execAllowed lists %s, which no longer starts any process (or no longer exists); remove it from execAllowed in test/presubmit/presubmit_test.go", rel)
		}
	}
}

type execSite struct {
	pos  token.Position
	what string // `imports "os/exec"`, `calls syscall.Exec`
}

type kernelExec struct {
	pos  token.Position
	tool string
	how  string
}

type execScan struct {
	starts []execSite   // where the package can start a process
	kernel []kernelExec // where it execs a kernel tool
}

// processStarters are the calls outside os/exec that start a program; each
// takes the program's path and then its argv.
var processStarters = map[[2]string]bool{
	{"os", "StartProcess"}:                true,
	{"syscall", "Exec"}:                   true,
	{"syscall", "ForkExec"}:               true,
	{"syscall", "StartProcess"}:           true,
	{"golang.org/x/sys/unix", "Exec"}:     true,
	{"golang.org/x/sys/unix", "ForkExec"}: true,
}

// scanExec looks through the files of one package for the places that start
// processes and for those that exec a kernel tool. It works on the syntax
// tree, so comments and strings that merely mention a tool do not count.
// A program name counts when it is a constant: a literal, a concatenation of
// literals, or an identifier some const, var or assignment in the package
// binds to a literal.
func scanExec(fset *token.FileSet, files []*ast.File) execScan {
	var scan execScan
	b := bindings(files)
	for _, f := range files {
		imports := map[string]string{} // local name -> import path
		for _, spec := range f.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				continue
			}
			name := path.Base(p)
			if spec.Name != nil {
				name = spec.Name.Name
			}
			imports[name] = p
			if p == "os/exec" {
				scan.starts = append(scan.starts, execSite{fset.Position(spec.Pos()), `imports "os/exec"`})
			}
		}
		report := func(pos token.Pos, progs []string, args [][]string) {
			if tool, how, ok := judgeExec(progs, args); ok {
				scan.kernel = append(scan.kernel, kernelExec{fset.Position(pos), tool, how})
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				pkg, fn := qualified(n.Fun, imports)
				switch {
				case pkg == "os/exec" && fn == "Command" && len(n.Args) > 0:
					report(n.Pos(), b.values(n.Args[0]), b.each(n.Args[1:]))
				case pkg == "os/exec" && fn == "CommandContext" && len(n.Args) > 1:
					report(n.Pos(), b.values(n.Args[1]), b.each(n.Args[2:]))
				case pkg == "os/exec" && fn == "LookPath" && len(n.Args) > 0:
					report(n.Pos(), b.values(n.Args[0]), nil)
				case processStarters[[2]string{pkg, fn}]:
					scan.starts = append(scan.starts, execSite{fset.Position(n.Pos()), "calls " + path.Base(pkg) + "." + fn})
					if len(n.Args) > 1 {
						argv := b.argv(n.Args[1])
						progs := b.values(n.Args[0])
						if len(argv) > 0 {
							progs = append(progs, argv[0]...)
							argv = argv[1:]
						}
						report(n.Pos(), progs, argv)
					}
				}
			case *ast.CompositeLit:
				if pkg, typ := qualified(n.Type, imports); pkg == "os/exec" && typ == "Cmd" {
					var progs []string
					var argv [][]string
					for _, e := range n.Elts {
						kv, ok := e.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						switch key, _ := kv.Key.(*ast.Ident); {
						case key == nil:
						case key.Name == "Path":
							progs = append(progs, b.values(kv.Value)...)
						case key.Name == "Args":
							argv = b.argv(kv.Value)
						}
					}
					if len(argv) > 0 {
						progs = append(progs, argv[0]...)
						argv = argv[1:]
					}
					report(n.Pos(), progs, argv)
				}
			}
			return true
		})
	}
	return scan
}

// judgeExec decides whether running one of progs with args runs a kernel
// tool: progs is what the program may be, args what each argument may be.
func judgeExec(progs []string, args [][]string) (tool, how string, ok bool) {
	for _, prog := range progs {
		if t := path.Base(prog); slices.Contains(kernelTools, t) {
			return t, fmt.Sprintf("execs %q", prog), true
		}
	}
	for _, prog := range progs {
		w := path.Base(prog)
		if !slices.Contains(execWrappers, w) {
			continue
		}
		for _, arg := range args {
			for _, a := range arg {
				if f := strings.Fields(a); len(f) > 0 && slices.Contains(kernelTools, path.Base(f[0])) {
					return path.Base(f[0]), fmt.Sprintf("execs %q through %s", a, w), true
				}
			}
		}
	}
	return "", "", false
}

// qualified resolves pkg.Name, where pkg is an import's local name.
func qualified(e ast.Expr, imports map[string]string) (pkgPath, name string) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return "", ""
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok {
		return "", ""
	}
	return imports[x.Name], sel.Sel.Name
}

// stringBindings maps an identifier to every constant string a const, var,
// := or = in the package binds it to. Scopes are ignored: it is a
// conservative "what could this name hold".
type stringBindings map[string][]string

func bindings(files []*ast.File) stringBindings {
	type pair struct {
		name  string
		value ast.Expr
	}
	var pairs []pair
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				if len(n.Names) == len(n.Values) {
					for i, id := range n.Names {
						pairs = append(pairs, pair{id.Name, n.Values[i]})
					}
				}
			case *ast.AssignStmt:
				if len(n.Lhs) == len(n.Rhs) {
					for i, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok {
							pairs = append(pairs, pair{id.Name, n.Rhs[i]})
						}
					}
				}
			}
			return true
		})
	}
	b := stringBindings{}
	// Bindings may refer to one another (const a = "i" + b): iterate to a
	// fixed point, a few rounds at most.
	for range 4 {
		changed := false
		for _, p := range pairs {
			for _, v := range b.values(p.value) {
				if !slices.Contains(b[p.name], v) {
					b[p.name] = append(b[p.name], v)
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	return b
}

// values is what constant strings e may be; nil when it is not constant.
func (b stringBindings) values(e ast.Expr) []string {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			if s, err := strconv.Unquote(e.Value); err == nil {
				return []string{s}
			}
		}
	case *ast.ParenExpr:
		return b.values(e.X)
	case *ast.Ident:
		return b[e.Name]
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return nil
		}
		var out []string
		for _, x := range b.values(e.X) {
			for _, y := range b.values(e.Y) {
				if len(out) < 64 {
					out = append(out, x+y)
				}
			}
		}
		return out
	}
	return nil
}

func (b stringBindings) each(es []ast.Expr) [][]string {
	out := make([][]string, len(es))
	for i, e := range es {
		out[i] = b.values(e)
	}
	return out
}

// argv is what each element of an argv expression may be: a []string{...}
// literal, or append of one.
func (b stringBindings) argv(e ast.Expr) [][]string {
	switch e := e.(type) {
	case *ast.CompositeLit:
		return b.each(e.Elts)
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "append" && len(e.Args) > 0 {
			out := b.argv(e.Args[0])
			rest := e.Args[1:]
			if e.Ellipsis.IsValid() && len(rest) > 0 {
				return append(append(out, b.each(rest[:len(rest)-1])...), b.argv(rest[len(rest)-1])...)
			}
			return append(out, b.each(rest)...)
		}
	case *ast.ParenExpr:
		return b.argv(e.X)
	}
	return nil
}

// 4. Layering.

// TestLayering: imports of non-test code point down the layers, and none
// breaks an importRule. Test files' imports are exempt.
func TestLayering(t *testing.T) {
	tr := load(t)
	graph := map[string][]string{}
	for _, p := range tr.checkable() {
		imports := slices.Clone(p.Imports)
		// go list's Imports cover only the files this GOOS builds.
		for _, f := range p.IgnoredGoFiles {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.ImportsOnly)
			if err != nil {
				t.Errorf("%s: %v", tr.relFile(filepath.Join(p.Dir, f)), err)
				continue
			}
			for _, spec := range af.Imports {
				if ip, err := strconv.Unquote(spec.Path.Value); err == nil {
					imports = append(imports, ip)
				}
			}
		}
		var own []string
		for _, ip := range imports {
			if rel := tr.relPackage(ip); rel != "" && !slices.Contains(own, rel) {
				own = append(own, rel)
			}
		}
		graph[p.Rel] = own
	}
	for _, problem := range checkLayering(graph, layers, importRules) {
		t.Error(problem)
	}
}

// rankOf is the layer of package rel: that of the longest matching pattern.
func rankOf(ls []layer, rel string) (layer, bool) {
	best, bestSpec, found := layer{}, -1, false
	for _, l := range ls {
		for _, p := range l.patterns {
			if spec, ok := matchPattern(p, rel); ok && spec > bestSpec {
				best, bestSpec, found = l, spec, true
			}
		}
	}
	return best, found
}

// checkLayering judges an import graph (package -> the module packages its
// non-test files import) against layers and rules.
func checkLayering(graph map[string][]string, ls []layer, rules []importRule) []string {
	var problems []string
	for _, pkg := range slices.Sorted(maps.Keys(graph)) {
		from, ok := rankOf(ls, pkg)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: in no layer; add it (or a parent/...) to layers in test/presubmit/presubmit_test.go, at the rank of what it is", pkg))
		}
		for _, imp := range graph[pkg] {
			if imp == pkg {
				continue
			}
			to, toOK := rankOf(ls, imp)
			if !toOK {
				if _, listed := graph[imp]; !listed {
					problems = append(problems, fmt.Sprintf("%s imports %s, which is in no layer; add it to layers in test/presubmit/presubmit_test.go", pkg, imp))
				}
			}
			if ok && toOK && to.rank > from.rank {
				problems = append(problems, fmt.Sprintf("%s (layer %d, %s) imports %s (layer %d, %s): imports must point to the same layer or a lower one; move what it needs down, or have the higher layer hand it in",
					pkg, from.rank, from.name, imp, to.rank, to.name))
			}
			for _, r := range rules {
				if matchAny(r.from, pkg) && !matchAny(r.except, pkg) && matchAny(r.to, imp) {
					problems = append(problems, fmt.Sprintf("%s imports %s: %s (rule: %s must not import %s)",
						pkg, imp, r.why, strings.Join(r.from, ", "), strings.Join(r.to, ", ")))
				}
			}
		}
	}
	return problems
}
