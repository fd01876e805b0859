package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakePlugin writes a script that answers CNI VERSION like knit-cni; body
// makes copies differ.
func fakePlugin(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "knit-cni-"+body)
	script := "#!/bin/sh\n# " + body + "\necho '{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func options(t *testing.T, root string) Options {
	return Options{
		Name: "knit", Network: "bridge", Socket: "/run/knit/knit.sock",
		Plugin: fakePlugin(t, root, "v1"),
		BinDir: filepath.Join(root, "opt/cni/bin"), ConfDir: filepath.Join(root, "etc/cni/net.d"),
		ManifestDir: filepath.Join(root, "var/lib/knit/cni"), Priority: "50", CNIVersion: "1.0.0",
	}
}

// tree lists every file under root except the fake plugins.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != root && !strings.HasPrefix(filepath.Base(p), "knit-cni-") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestInstallUninstall(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	ctx := context.Background()
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	want := []string{"etc", "etc/cni", "etc/cni/net.d", "etc/cni/net.d/50-knit-bridge.conflist", "opt", "opt/cni", "opt/cni/bin", "opt/cni/bin/knit",
		"var", "var/lib", "var/lib/knit", "var/lib/knit/cni", "var/lib/knit/cni/knit.json"}
	if got := tree(t, root); !slices.Equal(got, want) {
		t.Fatalf("after install:\n got %v\nwant %v", got, want)
	}
	var list map[string]any
	b, _ := os.ReadFile(filepath.Join(o.ConfDir, "50-knit-bridge.conflist"))
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	plugin := list["plugins"].([]any)[0].(map[string]any)
	if list["name"] != "knit" || list["cniVersion"] != "1.0.0" || plugin["type"] != "knit" || plugin["network"] != "bridge" || plugin["socket"] != "/run/knit/knit.sock" {
		t.Errorf("conflist:\n%s", b)
	}
	// Installing again changes nothing and is allowed.
	if _, err := Install(ctx, o); err != nil {
		t.Fatalf("second install: %v", err)
	}
	// A second network shares the binary; uninstalling the first keeps it.
	o2 := o
	o2.Name, o2.Network = "knit-back", "back"
	if _, err := Install(ctx, o2); err != nil {
		t.Fatal(err)
	}
	res, err := Uninstall(o.ManifestDir, "knit")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Removed, []string{filepath.Join(o.ConfDir, "50-knit-bridge.conflist")}) || !strings.Contains(res.Kept[filepath.Join(o.BinDir, "knit")], `"knit-back" still uses it`) {
		t.Errorf("uninstall knit: %+v", res)
	}
	if _, err := Uninstall(o.ManifestDir, "knit-back"); err != nil {
		t.Fatal(err)
	}
	// Everything install made is gone; the manifest directory stays.
	if got := tree(t, root); !slices.Equal(got, []string{"var", "var/lib", "var/lib/knit", "var/lib/knit/cni"}) {
		t.Errorf("after uninstall: %v", got)
	}
	if _, err := Uninstall(o.ManifestDir, "knit"); err == nil || !strings.Contains(err.Error(), "no knit CNI install named") {
		t.Errorf("uninstall twice: %v", err)
	}
}

func TestInstallRefusesForeignFiles(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	if err := os.MkdirAll(o.BinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(o.BinDir, "knit")
	if err := os.WriteFile(foreign, []byte("someone else's"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Install(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "was not written by knit cni install") {
		t.Fatalf("install over a foreign file: %v", err)
	}
	if _, err := os.Stat(o.ConfDir); !os.IsNotExist(err) {
		t.Errorf("a refused install wrote the conf dir: %v", err)
	}
	if b, _ := os.ReadFile(foreign); string(b) != "someone else's" {
		t.Errorf("foreign file changed: %q", b)
	}
}

func TestUninstallKeepsChangedAndPreexisting(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	// The identical plugin is already there, put by hand: not knit's.
	if err := os.MkdirAll(o.BinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(o.Plugin)
	if err := os.WriteFile(filepath.Join(o.BinDir, "knit"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	conflist := ConflistPath(o)
	if err := os.WriteFile(conflist, []byte(`{"edited": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Uninstall(o.ManifestDir, "knit")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 || len(res.Kept) != 2 || !strings.Contains(res.Kept[conflist], "changed") ||
		!strings.Contains(res.Kept[filepath.Join(o.BinDir, "knit")], "there before") {
		t.Errorf("uninstall: %+v", res)
	}
}

func TestUpgradeAndRenetwork(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	ctx := context.Background()
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Name, o2.Network = "knit-back", "back"
	if _, err := Install(ctx, o2); err != nil {
		t.Fatal(err)
	}
	// A new plugin build replaces the shared binary; both records follow.
	o.Plugin = fakePlugin(t, root, "v2")
	o.Network = "front" // same name, other network: the old conflist goes
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.ConfDir, "50-knit-bridge.conflist")); !os.IsNotExist(err) {
		t.Errorf("the previous conflist of %q is still there", o.Name)
	}
	for _, name := range []string{"knit-back", "knit"} {
		if _, err := Uninstall(o.ManifestDir, name); err != nil {
			t.Fatal(err)
		}
	}
	if got := tree(t, root); !slices.Equal(got, []string{"var", "var/lib", "var/lib/knit", "var/lib/knit/cni"}) {
		t.Errorf("after both uninstalls: %v", got)
	}
}

func TestInstallChecksPlugin(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	o.Plugin = "/bin/true"
	if _, err := Install(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not support cniVersion") {
		t.Errorf("install of /bin/true: %v", err)
	}
	o.Plugin = filepath.Join(root, "missing")
	if _, err := Install(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not answer CNI VERSION") {
		t.Errorf("install of a missing plugin: %v", err)
	}
}
