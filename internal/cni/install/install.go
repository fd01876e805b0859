// Package install puts knit-cni and a conflist where CNI runtimes look for
// them (knit cni install), and takes them away again (knit cni uninstall).
//
// Every file written is recorded, with its SHA-256, in a manifest
// (<manifest-dir>/<name>.json). Uninstall removes a recorded file only if it
// still has the content knit wrote and no other manifest still needs it (the
// plugin binary is shared by every installed network), so a file a user
// changed or put there is never removed. Install refuses to overwrite a file
// that no manifest accounts for.
package install

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// Defaults for the flags of knit cni install.
const (
	DefaultBinDir      = "/opt/cni/bin"
	DefaultConfDir     = "/etc/cni/net.d"
	DefaultManifestDir = "/var/lib/knit/cni"
	DefaultPriority    = "50"
	DefaultCNIVersion  = "1.0.0"
	// PluginName is the plugin's file name in the bin dir, which is also the
	// "type" in the conflist.
	PluginName = "knit"
)

// Options say what to install where.
type Options struct {
	// Name is the CNI network name (the conflist's "name", what runtimes
	// call the network: podman --network NAME).
	Name string
	// Network is the knit network, Socket knitd's socket.
	Network, Socket string
	// Plugin is the knit-cni binary to copy.
	Plugin                       string
	BinDir, ConfDir, ManifestDir string
	Priority                     string
	CNIVersion                   string
	// Now is the install time (tests fix it); zero means time.Now().
	Now time.Time
}

// DefaultName is the CNI network name for a knit network: "knit" for the
// default bridge network, "knit-<network>" for others.
func DefaultName(network string) string {
	if network == "" || network == "bridge" {
		return "knit"
	}
	return "knit-" + network
}

// ConflistPath is where the conflist for o goes.
func ConflistPath(o Options) string {
	return filepath.Join(o.ConfDir, fmt.Sprintf("%s-knit-%s.conflist", o.Priority, o.Network))
}

// Conflist renders the network configuration list. cniVersions lets a
// runtime with a spec 1.1 libcni use GC and STATUS while older ones (podman
// 4.3 and containerd 1.6 ship libcni 1.1, which knows spec 1.0.0 at most)
// read cniVersion.
func Conflist(o Options) []byte {
	versions := []string{o.CNIVersion}
	if o.CNIVersion != "1.1.0" {
		versions = append(versions, "1.1.0")
	}
	list := map[string]any{
		"cniVersion":  o.CNIVersion,
		"cniVersions": versions,
		"name":        o.Name,
		"plugins": []any{map[string]any{
			"type":         PluginName,
			"network":      o.Network,
			"socket":       o.Socket,
			"capabilities": map[string]bool{"portMappings": true, "ips": true, "mac": true},
		}},
	}
	b, _ := json.MarshalIndent(list, "", "  ")
	return append(b, '\n')
}

// Install copies the plugin and writes the conflist, then the manifest.
// Installing the same name again replaces its files.
func Install(ctx context.Context, o Options) (*Manifest, error) {
	if err := checkPlugin(ctx, o.Plugin, o.CNIVersion); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Plugin)
	if err != nil {
		return nil, fmt.Errorf("read the plugin: %w", err)
	}
	all, err := loadManifests(o.ManifestDir)
	if err != nil {
		return nil, err
	}
	old := all[o.Name]
	delete(all, o.Name)
	now := o.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	m := &Manifest{Name: o.Name, Network: o.Network, Installed: now}
	want := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(o.BinDir, PluginName), bin, 0o755},
		{ConflistPath(o), Conflist(o), 0o644},
	}
	// Check every target before writing any, so a refusal changes nothing.
	for _, w := range want {
		if err := checkTarget(w.path, w.data, old, all); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{o.BinDir, o.ConfDir} {
		created, err := mkdirAll(dir)
		if err != nil {
			return nil, err
		}
		m.Dirs = append(m.Dirs, created...)
	}
	if old != nil {
		for _, d := range old.Dirs {
			if !slices.Contains(m.Dirs, d) {
				m.Dirs = append(m.Dirs, d)
			}
		}
	}
	for _, w := range want {
		f, err := writeFile(w.path, w.data, w.mode, old, all)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	if err := saveManifest(o.ManifestDir, m); err != nil {
		return nil, err
	}
	// Other installs sharing a file (the plugin binary) now share its new
	// content too.
	if err := updateShared(o.ManifestDir, m, all); err != nil {
		return nil, err
	}
	// Files of the previous install under this name that this one no longer
	// writes (another --network, --priority or --bin-dir) go now.
	if old != nil {
		for _, f := range old.Files {
			if !slices.ContainsFunc(m.Files, func(n File) bool { return n.Path == f.Path }) {
				removeFile(f, all)
			}
		}
	}
	return m, nil
}

// checkPlugin runs the plugin's VERSION and makes sure it speaks cniVersion,
// so a wrong --plugin is caught before any runtime execs it.
func checkPlugin(ctx context.Context, path, cniVersion string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = bytes.NewReader(nil)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("plugin %s does not answer CNI VERSION (%w); build it with go build -o knit-cni ./cmd/knit-cni and pass --plugin", path, err)
	}
	var info struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &info); err != nil || !slices.Contains(info.Supported, cniVersion) {
		said := string(bytes.TrimSpace(out))
		if said == "" {
			said = "nothing"
		}
		return fmt.Errorf("plugin %s does not support cniVersion %s (its VERSION answer: %s); pass --plugin with a knit-cni binary", path, cniVersion, said)
	}
	return nil
}

// checkTarget refuses to overwrite a file that knit did not write: it may
// exist only with the same content, or with content some manifest recorded.
func checkTarget(path string, data []byte, old *Manifest, others map[string]*Manifest) error {
	cur, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if bytes.Equal(cur, data) || owned(path, sum(cur), old, others) {
		return nil
	}
	return fmt.Errorf("%s already exists and was not written by knit cni install; move it away, or pick another --bin-dir/--conf-dir/--priority", path)
}

// writeFile writes data atomically (temporary file, then rename) and
// records whether the file is knit's to remove later.
func writeFile(path string, data []byte, mode os.FileMode, old *Manifest, others map[string]*Manifest) (File, error) {
	f := File{Path: path, SHA256: sum(data), Created: true}
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		// Already there: knit's only if a manifest says so.
		f.Created = owned(path, f.SHA256, old, others)
		return f, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".knit-install-*")
	if err != nil {
		return f, fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		os.Remove(tmp.Name())
		return f, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return f, fmt.Errorf("write %s: %w", path, err)
	}
	return f, nil
}

// mkdirAll creates dir and returns the directories it created, outermost
// first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append([]string{d}, missing...)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return missing, nil
}
