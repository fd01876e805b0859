//go:build !linux

package cni

// checkNetNS leaves the check to knitd where namespaces are not Linux's.
func checkNetNS(path, own string) error { return nil }
