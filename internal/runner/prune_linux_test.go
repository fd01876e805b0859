package runner_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPrune: state directories of containers not kept are removed; a kept
// one and files that are not container directories stay.
func TestPrune(t *testing.T) {
	r, _, dir := newRuntime(t)
	for _, d := range []string{"keep0123456789", "gone0123456789"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "not-a-container"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Prune(map[string]bool{"keep0123456789": true}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"keep0123456789": true, "gone0123456789": false, "not-a-container": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}
