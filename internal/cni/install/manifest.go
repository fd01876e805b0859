package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Manifest records one install: the files written and the directories
// created for them.
type Manifest struct {
	Name      string    `json:"name"`
	Network   string    `json:"network"`
	Installed time.Time `json:"installed"`
	Files     []File    `json:"files"`
	// Dirs were created by the install, outermost first; uninstall removes
	// them when empty.
	Dirs []string `json:"dirs,omitempty"`
}

// File is one written file. Created is false when an identical file was
// already there and no manifest claimed it: it is left alone on uninstall.
type File struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Created bool   `json:"created"`
}

// Result of an uninstall: what was removed, and what was kept and why.
type Result struct {
	Removed []string          `json:"removed"`
	Kept    map[string]string `json:"kept,omitempty"`
}

// Uninstall removes the files of the install called name and its manifest.
func Uninstall(manifestDir, name string) (*Result, error) {
	all, err := loadManifests(manifestDir)
	if err != nil {
		return nil, err
	}
	m := all[name]
	if m == nil {
		var names []string
		for n := range all {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("no knit CNI install named %q in %s (installed: %s); pass --name", name, manifestDir, orNone(names))
	}
	delete(all, name)
	res := &Result{Kept: map[string]string{}}
	for _, f := range m.Files {
		if why := removeFile(f, all); why != "" {
			res.Kept[f.Path] = why
		} else {
			res.Removed = append(res.Removed, f.Path)
		}
	}
	// Innermost first; only empty ones. A directory another install still
	// has files in is handed over to it, to be removed with its last file.
	for i := len(m.Dirs) - 1; i >= 0; i-- {
		d := m.Dirs[i]
		if heir := user(all, d); heir != nil {
			if !slices.Contains(heir.Dirs, d) {
				heir.Dirs = append(heir.Dirs, d)
				slices.SortStableFunc(heir.Dirs, func(a, b string) int { return len(a) - len(b) })
				if err := saveManifest(manifestDir, heir); err != nil {
					return res, err
				}
			}
			continue
		}
		if os.Remove(d) == nil {
			res.Removed = append(res.Removed, d)
		}
	}
	if err := os.Remove(manifestPath(manifestDir, name)); err != nil {
		return res, fmt.Errorf("remove the manifest: %w", err)
	}
	return res, nil
}

// removeFile removes f if knit created it, it still has the content knit
// wrote, and no other manifest lists it; otherwise it says why not ("" when
// removed or already gone).
func removeFile(f File, others map[string]*Manifest) string {
	cur, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return ""
	case err != nil:
		return err.Error()
	case !f.Created:
		return "it was there before knit cni install"
	}
	for _, o := range others {
		if slices.ContainsFunc(o.Files, func(of File) bool { return of.Path == f.Path }) {
			return fmt.Sprintf("the install %q still uses it", o.Name)
		}
	}
	if sum(cur) != f.SHA256 {
		return "it was changed after knit cni install"
	}
	if err := os.Remove(f.Path); err != nil {
		return err.Error()
	}
	return ""
}

// updateShared records m's content for files other manifests list too.
func updateShared(dir string, m *Manifest, others map[string]*Manifest) error {
	for _, o := range others {
		changed := false
		for i, of := range o.Files {
			for _, f := range m.Files {
				if of.Path == f.Path && of.Created && of.SHA256 != f.SHA256 {
					o.Files[i].SHA256, changed = f.SHA256, true
				}
			}
		}
		if changed {
			if err := saveManifest(dir, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// user returns an install with a file under dir, if any.
func user(all map[string]*Manifest, dir string) *Manifest {
	for _, o := range all {
		if slices.ContainsFunc(o.Files, func(f File) bool { return strings.HasPrefix(f.Path, dir+string(filepath.Separator)) }) {
			return o
		}
	}
	return nil
}

// owned reports whether a manifest recorded path with this content.
func owned(path, hash string, old *Manifest, others map[string]*Manifest) bool {
	ms := values(others)
	if old != nil {
		ms = append(ms, old)
	}
	return slices.ContainsFunc(ms, func(m *Manifest) bool {
		return slices.ContainsFunc(m.Files, func(f File) bool { return f.Path == path && f.SHA256 == hash && f.Created })
	})
}

func manifestPath(dir, name string) string { return filepath.Join(dir, name+".json") }

func loadManifests(dir string) (map[string]*Manifest, error) {
	all := map[string]*Manifest{}
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		m := &Manifest{}
		if err := json.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("manifest %s is not valid JSON (%w); fix or remove it", p, err)
		}
		all[strings.TrimSuffix(filepath.Base(p), ".json")] = m
	}
	return all, nil
}

func saveManifest(dir string, m *Manifest) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(manifestPath(dir, m.Name), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the manifest: %w", err)
	}
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func values(m map[string]*Manifest) []*Manifest {
	out := make([]*Manifest, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
