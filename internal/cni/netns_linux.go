package cni

import (
	"fmt"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
)

const netnsHint = "CNI_NETNS must be the path of the container's network namespace (such as /run/netns/NAME or /proc/PID/ns/net)"

// checkNetNS refuses a CNI_NETNS that is not a network namespace, or is the
// plugin's own (the runtime's, where the veth's other end must not go),
// before knitd is asked, so the runtime learns which variable is wrong.
func checkNetNS(path, own string) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %q: %s", path, err), netnsHint)
	}
	const nsfsMagic = 0x6e736673
	if fs.Type != nsfsMagic {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %q is not a network namespace", path), netnsHint)
	}
	if own == "" {
		return nil
	}
	var a, b syscall.Stat_t
	if syscall.Stat(path, &a) == nil && syscall.Stat(own, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q is the runtime's own network namespace", path), netnsHint)
	}
	return nil
}
