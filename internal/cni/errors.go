package cni

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	v1 "github.com/knit-net/knit/api/v1"
)

// knit-cni's own error codes (the spec leaves 100 and up to plugins).
const (
	// ErrConflict: the request clashes with existing state (an address or
	// host port in use, the attachment already made with another netns).
	ErrConflict uint = 100
	// ErrExhausted: the network has no free address left.
	ErrExhausted uint = 101
	// ErrCheckFailed: knitd's record, the kernel and the runtime's cached
	// result do not agree.
	ErrCheckFailed uint = 102
)

// verb names the operation an error happened in, for the mapping below.
type verb string

const (
	verbAdd    verb = "ADD"
	verbCheck  verb = "CHECK"
	verbDel    verb = "DEL"
	verbGC     verb = "GC"
	verbStatus verb = "STATUS"
)

// toCNIError maps an error from knitd (or from reaching it) to a spec error
// whose message says what failed and whose details say what to do.
//
//	knitd unreachable      ADD/CHECK/DEL/GC 11 (try again later), STATUS 50
//	knitd without CNI API  50 (plugin not available)
//	invalid                7 (invalid network config)
//	notfound               ADD 7 (no such network), CHECK 3 (unknown container)
//	conflict, exhausted    100, 101
//	anything else          999 (internal)
func toCNIError(v verb, err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	var unreach *unreachableError
	if errors.As(err, &unreach) {
		code := types.ErrTryAgainLater
		if v == verbStatus {
			code = types.ErrPluginNotAvailable
		}
		return types.NewError(code, unreach.Error(), "")
	}
	var api *v1.Error
	if !errors.As(err, &api) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("knit %s: %s", v, err), "")
	}
	if noRoute(api) {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("knitd does not serve the CNI API (%s)", api.Message),
			"update knitd to a version that has /v1/cni, or point \"socket\" in the conflist at one")
	}
	// knitd's messages name the object, the cause and the fix already.
	msg := fmt.Sprintf("knit %s: %s", v, api.Message)
	switch api.Code {
	case v1.CodeInvalid:
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	case v1.CodeNotFound:
		if v == verbCheck {
			return types.NewError(types.ErrUnknownContainer, msg, "")
		}
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	case v1.CodeConflict:
		return types.NewError(ErrConflict, msg, "")
	case v1.CodeExhausted:
		return types.NewError(ErrExhausted, msg, "")
	}
	return types.NewError(types.ErrInternal, msg, "knitd's log says more")
}

// noRoute reports knitd's answer to a path it does not serve: a knitd older
// than the CNI API. Without it a DEL would take "not found" for "already
// gone".
func noRoute(e *v1.Error) bool {
	return e.Code == v1.CodeNotFound && strings.HasPrefix(e.Message, "no API route")
}
