// Command knit-cni is knit's CNI plugin: runtimes (podman, containerd,
// kubelet through CRI) exec it for ADD, CHECK, DEL, GC, STATUS and VERSION,
// and it asks knitd to do the work. Install it with knit cni install.
package main

import "github.com/knit-net/knit/internal/cni"

func main() { cni.Main() }
