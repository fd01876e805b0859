// Package presubmit holds the checks that keep knit's code base the way it is
// meant to be: every package documented, no oversized source files, no product
// code that shells out to ip, iptables, nft, sysctl, tc or bridge instead of
// talking netlink, and imports that only point down the layers listed in
// presubmit_test.go.
//
// The checks are ordinary Go tests, so `make test` (go test ./...) runs them.
// They learn the tree from one `go list -json ./...` at the module root, parse
// source with go/parser where they need more than that, and need neither root
// nor a network namespace. Each failure names the file or package and says how
// to fix it.
package presubmit
