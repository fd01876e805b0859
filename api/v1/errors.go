package v1

import (
	"errors"
	"fmt"
)

// Error codes carried in Error.Code.
const (
	CodeInvalid   = "invalid"
	CodeNotFound  = "notfound"
	CodeConflict  = "conflict"
	CodeExhausted = "exhausted"
	CodeInternal  = "internal"
)

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error with the code; the message should name the object,
// the cause and the fix.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalidf, NotFoundf, Conflictf and Exhaustedf are Errorf with the code filled in.
func Invalidf(format string, args ...any) *Error   { return Errorf(CodeInvalid, format, args...) }
func NotFoundf(format string, args ...any) *Error  { return Errorf(CodeNotFound, format, args...) }
func Conflictf(format string, args ...any) *Error  { return Errorf(CodeConflict, format, args...) }
func Exhaustedf(format string, args ...any) *Error { return Errorf(CodeExhausted, format, args...) }

// CodeOf returns the code of the *Error in err's chain, or CodeInternal.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// IsNotFound reports whether err is a not-found API error.
func IsNotFound(err error) bool { return CodeOf(err) == CodeNotFound }
