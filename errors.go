package runnel

import (
	"errors"
	"fmt"
)

// kinesisError is the type of the sentinel errors. Its text is the Kinesis
// error name, so a sentinel on its own reads like the service's error code.
type kinesisError struct{ name string }

func (e *kinesisError) Error() string { return e.name }

// Sentinel errors, one per Kinesis error name that runnel can return. Every
// error returned by runnel wraps exactly one of them (or ErrClosed), so callers
// switch with errors.Is just as Kinesis clients switch on the error code:
//
//	if errors.Is(err, runnel.ErrProvisionedThroughputExceeded) { back off }
var (
	// ErrResourceNotFound means the stream, shard or consumer does not exist.
	ErrResourceNotFound error = &kinesisError{"ResourceNotFoundException"}
	// ErrResourceInUse means the stream exists already, or is not ACTIVE for the
	// operation (for example while it is resharding).
	ErrResourceInUse error = &kinesisError{"ResourceInUseException"}
	// ErrInvalidArgument means a parameter has a value that is not allowed.
	ErrInvalidArgument error = &kinesisError{"InvalidArgumentException"}
	// ErrLimitExceeded means a quota would be exceeded (shards, streams, calls).
	ErrLimitExceeded error = &kinesisError{"LimitExceededException"}
	// ErrProvisionedThroughputExceeded means a shard's read or write rate limit was hit.
	ErrProvisionedThroughputExceeded error = &kinesisError{"ProvisionedThroughputExceededException"}
	// ErrExpiredIterator means the shard iterator is older than its time to live.
	ErrExpiredIterator error = &kinesisError{"ExpiredIteratorException"}
	// ErrExpiredNextToken means the pagination token is older than its time to live.
	ErrExpiredNextToken error = &kinesisError{"ExpiredNextTokenException"}
	// ErrInternalFailure means the service failed. runnel itself returns it only when
	// a test injects it (see Fault). Its name is that of a failed operation;
	// a failed PutRecords entry reports the ErrorCode "InternalFailure".
	ErrInternalFailure error = &kinesisError{"InternalFailureException"}
	// ErrValidation means a field does not meet its constraint (the API's shape
	// rules, as opposed to InvalidArgument's semantic rules).
	ErrValidation error = &kinesisError{"ValidationException"}
)

// ErrClosed is wrapped by the error of every operation on a Cluster, Stream
// or Producer after it was closed. It is not a Kinesis error.
var ErrClosed = errors.New("runnel: closed")

// Error is the error type of runnel's operations. It names the operation and
// the offending value, and wraps one of the sentinel errors (Kind), so both
// errors.Is(err, ErrInvalidArgument) and errors.As(err, &e) work.
type Error struct {
	// Op is the operation that failed, named as in the Kinesis API ("PutRecord").
	Op string
	// Kind is the sentinel error that classifies the failure.
	Kind error
	// Msg says what was wrong, with the value that was wrong.
	Msg string
}

// Error returns "runnel: <Op>: <Kind>: <Msg>".
func (e *Error) Error() string {
	return "runnel: " + e.Op + ": " + e.Kind.Error() + ": " + e.Msg
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// ErrorName returns the Kinesis error name ("ResourceNotFoundException", …)
// of err, or "" when err wraps none of runnel's sentinel errors. The API
// server uses it to fill the "__type" field of error responses.
func ErrorName(err error) string {
	var k *kinesisError
	if errors.As(err, &k) {
		return k.name
	}
	return ""
}

// errorf builds an *Error; format and args describe the offending value.
func errorf(op string, kind error, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
