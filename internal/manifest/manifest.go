// Package manifest reads Kubernetes manifests for knit apply and knit delete:
// files, directories or stdin, YAML (documents separated by ---) or JSON,
// with kind List unpacked. Each object is decoded strictly with the real
// k8s.io/api types, so that a typo ("spec.portz") and a field Kubernetes
// knows but knit does not implement ("spec.externalIPs") get different,
// precise errors; a Service or NetworkPolicy is then converted to knit's
// api/v1 type by a JSON round trip that refuses any field knit's type lacks.
//
// Only the knit CLI may import this package: the Kubernetes modules'
// package initialisation is too costly for knitd, which is re-executed on
// every container start.
//
// Design notes:
//   - Server-written fields are dropped silently so that the output of
//     `knit get svc -o yaml` (or kubectl's) can be applied again: status,
//     and metadata uid, resourceVersion, generation, creationTimestamp,
//     managedFields and selfLink. Every other field knit lacks is an error.
//   - A namespace left out stays empty here; the CLI fills it with -n or
//     "default" through SetNamespace, which also refuses a manifest
//     namespace that contradicts an explicit -n, as kubectl does.
//   - Documents are numbered from 1 among the non-empty documents of a file
//     (a comment-only document is not counted), which is how a reader
//     counts the objects in it.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// Stdin is the file name "-" stands for in messages, as kubectl writes it.
const Stdin = "STDIN"

// Kinds knit applies.
const (
	KindService       = "Service"
	KindNetworkPolicy = "NetworkPolicy"
)

// API versions of the kinds above.
const (
	CoreAPIVersion       = "v1"
	NetworkingAPIVersion = "networking.k8s.io/v1"
)

// Source says where an object came from.
type Source struct {
	File string // as given on the command line (joined with the directory), or STDIN
	Doc  int    // 1-based among the file's non-empty documents
	Item int    // 1-based position in a List document; 0 outside lists
}

func (s Source) String() string {
	if s.Item > 0 {
		return fmt.Sprintf("%q document %d item %d", s.File, s.Doc, s.Item)
	}
	return fmt.Sprintf("%q document %d", s.File, s.Doc)
}

// Object is one decoded manifest object. Exactly one of Service and
// NetworkPolicy is set.
type Object struct {
	Source     Source
	APIVersion string
	Kind       string
	Name       string
	// Namespace as written in the manifest until SetNamespace fills it.
	Namespace     string
	Service       *v1.Service
	NetworkPolicy *v1.NetworkPolicy
}

// Ref is kubectl's short name of the object: service/backend.
func (o *Object) Ref() string { return strings.ToLower(o.Kind) + "/" + o.Name }

// Options tune Read.
type Options struct {
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Recursive descends into subdirectories, like kubectl -R.
	Recursive bool
}

// Read parses every path (a file, a directory of .yaml, .yml and .json
// files, or "-" for stdin) and returns the objects in order. Errors of all
// documents are joined, so one run reports every problem.
func Read(paths []string, opt Options) ([]Object, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifest given; pass -f FILE, -f DIR or -f - for stdin")
	}
	var objs []Object
	var errs []error
	for _, p := range paths {
		files, err := expand(p, opt.Recursive)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			var data []byte
			var err error
			if f == "-" {
				if opt.Stdin == nil {
					err = errors.New("-f -: no standard input")
				} else if data, err = io.ReadAll(opt.Stdin); err != nil {
					err = fmt.Errorf("read standard input: %w", err)
				}
				f = Stdin
			} else if data, err = os.ReadFile(f); err != nil {
				err = fmt.Errorf("read manifest: %w", err)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			o, err := Parse(f, data)
			objs = append(objs, o...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects passed: %s hold no Kubernetes objects", strings.Join(quoteAll(paths), ", "))
	}
	return objs, nil
}

// manifestExt are the file name endings kubectl reads in a directory.
var manifestExt = []string{".yaml", ".yml", ".json"}

// expand turns a -f argument into the files to read, in name order.
func expand(p string, recursive bool) ([]string, error) {
	if p == "-" {
		return []string{p}, nil
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		return nil, fmt.Errorf("-f %s: knit reads files, directories and - (stdin), not URLs; download it first", p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", p, err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.Contains(manifestExt, strings.ToLower(filepath.Ext(path))) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", p, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("-f %s: the directory has no .yaml, .yml or .json files", p)
	}
	return files, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
