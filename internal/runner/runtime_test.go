package runner

import (
	"slices"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (we) ird (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 2269184 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	start, state, err := parseStat([]byte(line))
	if err != nil || start != 987654 || state != 'S' {
		t.Errorf("parseStat = %d, %q, %v; want 987654, 'S', nil", start, state, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 no-paren"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	got := containerEnv("web", []string{"A=1", "PATH=/bin", "A=2", "B="})
	want := []string{"PATH=/bin", "HOME=/root", "HOSTNAME=web", "A=2", "B="}
	if !slices.Equal(got, want) {
		t.Errorf("containerEnv = %q, want %q", got, want)
	}
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"abc123", "a-b_c.d", strings.Repeat("f", 64)} {
		if err := checkID(ok); err != nil {
			t.Errorf("checkID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "a/b", "a b", strings.Repeat("f", 129)} {
		if err := checkID(bad); err == nil {
			t.Errorf("checkID(%q) accepted", bad)
		}
	}
}

func TestHostnameFor(t *testing.T) {
	if got := hostnameFor(Spec{ID: "0123456789abcdef"}); got != "0123456789ab" {
		t.Errorf("default hostname %q", got)
	}
	if got := hostnameFor(Spec{ID: "abc", Hostname: "web"}); got != "web" {
		t.Errorf("hostname %q", got)
	}
}

func TestExecArgs(t *testing.T) {
	got := ExecArgs(42, []string{"sh", "-c", "echo hi"})
	want := []string{"/usr/bin/nsenter", "--target", "42", "--net", "--uts", "--mount", "--", "sh", "-c", "echo hi"}
	if !slices.Equal(got, want) {
		t.Errorf("ExecArgs = %q", got)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		"/run/netns/a":  "/run/netns/a",
		`/run/my\040ns`: "/run/my ns",
		`/a\134b`:       `/a\b`,
		`/trailing\04`:  `/trailing\04`,
		`/x\011y\012z`:  "/x\ty\nz",
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNSMountsToDetach(t *testing.T) {
	const info = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
50 27 0:40 / /run rw - tmpfs tmpfs rw
42 50 0:40 /netns /run/netns rw shared:1 - tmpfs tmpfs rw
43 42 0:4 net:[4026532177] /run/netns/a rw shared:2 - nsfs nsfs rw
44 42 0:4 net:[4026532178] /run/netns/b rw shared:3 - nsfs nsfs rw
60 27 254:0 /var/lib/knit/netns /var/lib/knit/netns rw - ext4 /dev/vda rw
61 60 0:4 net:[4026532179] /var/lib/knit/netns/c rw - nsfs nsfs rw
70 27 254:0 /srv/other /var/lib/moved rw - ext4 /dev/vda rw
71 70 0:4 net:[4026532180] /var/lib/moved/d rw - nsfs nsfs rw
72 27 0:4 net:[4026532181] /tmp/my\040ns rw - nsfs nsfs rw
`
	got := nsMountsToDetach(parseMountInfo(info))
	want := []string{
		"/run/netns",          // self-bind of a directory of the /run tmpfs
		"/var/lib/knit/netns", // self-bind on the root filesystem
		"/var/lib/moved/d",    // its parent shows another directory: keep it
		"/tmp/my ns",          // directly on the root
	}
	if !slices.Equal(got, want) {
		t.Errorf("nsMountsToDetach = %q, want %q", got, want)
	}
}
