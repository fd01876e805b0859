package runner

// Design notes: the helper's mounts.
//
// CLONE_NEWNS gives the helper a copy of the daemon's mount table, in which
// mounts that are shared on the host stay peers of the host's. So the first
// step makes every mount recursively private; only after that may the helper
// unmount or bind anything without it reaching the host. (rslave would let
// host unmounts reach the container, but every later host mount would then
// be copied into every container: a cost that grows with their number.)
//
// The second step detaches the nsfs mounts (network namespace files such as
// /run/netns/*). A container needs none, and the copies would otherwise pin
// the other containers' namespaces for as long as it lives and make the
// kernel's mount count grow as containers × namespaces. Where the files sit
// in a directory bound onto itself (iproute2 does this with /run/netns), one
// detach of that directory removes them all and shows the same directory
// underneath: with 1,000 namespace files, ~5 ms instead of ~15 ms per start.
// The netns directory's owner should set it up that way.
//
// Then the three files are bound. A symlink (/etc/resolv.conf pointing to
// /run/systemd/resolve/stub-resolv.conf) is bound over its target, which only
// this container sees. A dangling link into /run gets a private tmpfs on the
// target's directory holding an empty file to bind over; any other missing
// file is skipped with a warning in the container's log.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// detachNSMounts lazily unmounts every nsfs mount of the (private) mount
// namespace. A failure only leaves a mount in place.
func detachNSMounts() {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, point := range nsMountsToDetach(parseMountInfo(string(b))) {
		_ = unix.Unmount(point, unix.MNT_DETACH)
	}
}

// mountEntry is one line of /proc/<pid>/mountinfo.
type mountEntry struct {
	id, parent, dev, root, point, fstype string
}

func parseMountInfo(text string) []mountEntry {
	var ms []mountEntry
	for line := range strings.Lines(text) {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		ms = append(ms, mountEntry{
			id: f[0], parent: f[1], dev: f[2],
			root: unescapeMountPath(f[3]), point: unescapeMountPath(f[4]), fstype: g[0],
		})
	}
	return ms
}

// nsMountsToDetach lists what to unmount so that no nsfs mount is left: the
// parent of an nsfs mount when the parent is a self-bind, else the nsfs
// mount itself.
func nsMountsToDetach(ms []mountEntry) []string {
	byID := make(map[string]*mountEntry, len(ms))
	for i := range ms {
		byID[ms[i].id] = &ms[i]
	}
	var out []string
	seen := make(map[string]bool)
	for _, m := range ms {
		if m.fstype != "nsfs" {
			continue
		}
		point := m.point
		if p := byID[m.parent]; p != nil && isSelfBind(p, byID[p.parent]) {
			point = p.point
		}
		if !seen[point] {
			seen[point] = true
			out = append(out, point)
		}
	}
	return out
}

// isSelfBind reports whether p shows exactly the directory of its parent
// mount g that it covers, so that unmounting p changes nothing but p's own
// submounts.
func isSelfBind(p, g *mountEntry) bool {
	if g == nil || p.point == "/" || p.dev != g.dev || p.fstype != g.fstype {
		return false
	}
	rel, err := filepath.Rel(g.point, p.point)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return false
	}
	return p.root == filepath.Join(g.root, rel)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bindFile bind-mounts src over dst, or over what dst links to.
func bindFile(src, dst string) error {
	target, err := filepath.EvalSymlinks(dst)
	if errors.Is(err, fs.ErrNotExist) {
		target, err = missingTarget(dst)
	}
	if err != nil || target == "" {
		return err
	}
	return unix.Mount(src, target, "", unix.MS_BIND, "")
}

// missingTarget makes a private file to bind over when dst is a dangling
// symlink into /run, and returns it; for anything else missing it warns and
// returns "".
func missingTarget(dst string) (string, error) {
	link := dst
	for range 40 {
		next, err := os.Readlink(link)
		if err != nil {
			break
		}
		if !filepath.IsAbs(next) {
			next = filepath.Join(filepath.Dir(link), next)
		}
		link = next
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(link))
	if link == dst || err != nil || !strings.HasPrefix(dir, "/run/") {
		fmt.Fprintf(os.Stderr, "knit: warning: %s does not exist (resolves to %s); the container has none\n", dst, link)
		return "", nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return "", fmt.Errorf("dangling link to %s: mount private tmpfs on %s: %w", link, dir, err)
	}
	target := filepath.Join(dir, filepath.Base(link))
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return "", fmt.Errorf("dangling link to %s: %w", link, err)
	}
	return target, nil
}
