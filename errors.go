package runnel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// kinesisError is the type of the Kinesis sentinels: one row of the error
// table. Its text is the Kinesis error name, so a sentinel on its own reads
// like the service's error code.
type kinesisError struct {
	name        string // the Kinesis error name ("__type" on the wire)
	status      int    // the HTTP status the Kinesis API answers with
	isRetryable bool   // the same request may succeed when sent again later
}

func (e *kinesisError) Error() string   { return e.name }
func (e *kinesisError) retryable() bool { return e.isRetryable }

// runnelError is the type of runnel's own sentinels, which are not Kinesis
// errors: ErrClosed, ErrNotAttempted and the Producer's.
type runnelError struct {
	text        string
	isRetryable bool
}

func (e *runnelError) Error() string   { return "runnel: " + e.text }
func (e *runnelError) retryable() bool { return e.isRetryable }

// The error table: one sentinel per Kinesis error name of the Kinesis Data
// Streams API, with the HTTP status the service answers it with and whether
// a client should send the same request again. Every error returned by
// runnel wraps one of them, one of runnel's own sentinels (ErrClosed, …), or
// the context's error; switch with errors.Is as Kinesis clients switch on
// the error code:
//
//	if errors.Is(err, runnel.ErrProvisionedThroughputExceeded) { back off }
var (
	// ErrResourceNotFound means the stream, shard or consumer does not exist.
	// Not retryable.
	ErrResourceNotFound error = &kinesisError{"ResourceNotFoundException", http.StatusBadRequest, false}
	// ErrResourceInUse means the stream exists already, or is not ACTIVE for the
	// operation (for example while it is resharding). Not retryable as such:
	// whether waiting helps depends on the operation.
	ErrResourceInUse error = &kinesisError{"ResourceInUseException", http.StatusBadRequest, false}
	// ErrInvalidArgument means a parameter has a value that is not allowed.
	// Not retryable.
	ErrInvalidArgument error = &kinesisError{"InvalidArgumentException", http.StatusBadRequest, false}
	// ErrLimitExceeded means a quota or a call rate would be exceeded.
	// Retryable, as the AWS SDKs treat it: call rates recover, and quotas may.
	ErrLimitExceeded error = &kinesisError{"LimitExceededException", http.StatusBadRequest, true}
	// ErrProvisionedThroughputExceeded means a shard's read or write rate limit
	// was hit. Retryable after a backoff.
	ErrProvisionedThroughputExceeded error = &kinesisError{"ProvisionedThroughputExceededException", http.StatusBadRequest, true}
	// ErrExpiredIterator means the shard iterator is older than its time to
	// live. Not retryable: get a new iterator.
	ErrExpiredIterator error = &kinesisError{"ExpiredIteratorException", http.StatusBadRequest, false}
	// ErrExpiredNextToken means the pagination token is older than its time to
	// live. Not retryable: list again from the start.
	ErrExpiredNextToken error = &kinesisError{"ExpiredNextTokenException", http.StatusBadRequest, false}
	// ErrInternalFailure means the service failed. runnel itself returns it
	// only when a test injects it (see Fault), and wraps with it the errors
	// of a user's Putter that carry no Kinesis name. Its name is that of a
	// failed operation; a failed PutRecords entry reports the ErrorCode
	// "InternalFailure" (see RecordErrorCode). Retryable; HTTP 500.
	ErrInternalFailure error = &kinesisError{"InternalFailureException", http.StatusInternalServerError, true}
	// ErrValidation means a field does not meet its constraint (the API's shape
	// rules, as opposed to InvalidArgument's semantic rules). Not retryable.
	ErrValidation error = &kinesisError{"ValidationException", http.StatusBadRequest, false}
	// ErrAccessDenied means the caller may not perform the operation. Not
	// retryable. runnel returns it only when a test injects it.
	ErrAccessDenied error = &kinesisError{"AccessDeniedException", http.StatusBadRequest, false}
	// ErrKMSAccessDenied means the KMS key of an encrypted stream may not be
	// used. Not retryable.
	ErrKMSAccessDenied error = &kinesisError{"KMSAccessDeniedException", http.StatusBadRequest, false}
	// ErrKMSDisabled means the KMS key of an encrypted stream is disabled.
	// Not retryable.
	ErrKMSDisabled error = &kinesisError{"KMSDisabledException", http.StatusBadRequest, false}
	// ErrKMSInvalidState means the KMS key is not in a usable state. Not
	// retryable.
	ErrKMSInvalidState error = &kinesisError{"KMSInvalidStateException", http.StatusBadRequest, false}
	// ErrKMSNotFound means the KMS key does not exist. Not retryable.
	ErrKMSNotFound error = &kinesisError{"KMSNotFoundException", http.StatusBadRequest, false}
	// ErrKMSOptInRequired means the account is not subscribed to KMS. Not
	// retryable.
	ErrKMSOptInRequired error = &kinesisError{"KMSOptInRequired", http.StatusBadRequest, false}
	// ErrKMSThrottling means KMS throttled the request. Retryable.
	ErrKMSThrottling error = &kinesisError{"KMSThrottlingException", http.StatusBadRequest, true}
	// ErrSerialization means a request body could not be decoded (the
	// protocol's error, which an API server answers). Not retryable.
	ErrSerialization error = &kinesisError{"SerializationException", http.StatusBadRequest, false}
	// ErrUnknownOperation means a request named no operation of the API (the
	// protocol's error, which an API server answers). Not retryable.
	ErrUnknownOperation error = &kinesisError{"UnknownOperationException", http.StatusBadRequest, false}
	// ErrMissingAuthenticationToken means a request carried no signature
	// where the server requires one (the protocol's error, which an API
	// server that verifies signatures answers). Not retryable.
	ErrMissingAuthenticationToken error = &kinesisError{"MissingAuthenticationTokenException", http.StatusBadRequest, false}
	// ErrIncompleteSignature means a request's signature is malformed: its
	// Authorization header lacks a part or has one of the wrong shape, or a
	// header it names as signed (or its date) is missing (the protocol's
	// error). Not retryable.
	ErrIncompleteSignature error = &kinesisError{"IncompleteSignatureException", http.StatusBadRequest, false}
	// ErrUnrecognizedClient means a request was signed with an access key
	// the server does not know (the protocol's error). Not retryable.
	ErrUnrecognizedClient error = &kinesisError{"UnrecognizedClientException", http.StatusBadRequest, false}
	// ErrInvalidSignature means a request's signature does not match the
	// request, or its credential scope is wrong, or it was made more than 15
	// minutes from the server's clock ("Signature expired") (the protocol's
	// error). Not retryable as such; the AWS SDKs send it again only when
	// the response's Date shows their clock is off.
	ErrInvalidSignature error = &kinesisError{"InvalidSignatureException", http.StatusBadRequest, false}
)

// kinesisErrors is the error table, for look-ups by name.
var kinesisErrors = [...]error{
	ErrResourceNotFound, ErrResourceInUse, ErrInvalidArgument, ErrLimitExceeded,
	ErrProvisionedThroughputExceeded, ErrExpiredIterator, ErrExpiredNextToken,
	ErrInternalFailure, ErrValidation, ErrAccessDenied,
	ErrKMSAccessDenied, ErrKMSDisabled, ErrKMSInvalidState, ErrKMSNotFound,
	ErrKMSOptInRequired, ErrKMSThrottling, ErrSerialization, ErrUnknownOperation,
	ErrMissingAuthenticationToken, ErrIncompleteSignature, ErrUnrecognizedClient, ErrInvalidSignature,
}

// recordInternalFailure is the ErrorCode of a PutRecords entry that failed
// inside the service.
const recordInternalFailure = "InternalFailure"

// ErrClosed is wrapped by the error of every operation on a Cluster, Stream
// or Producer after it was closed. It is not a Kinesis error and not
// retryable.
var ErrClosed error = &runnelError{text: "closed"}

// ErrNotAttempted fails a PutRoutedRecords entry that came after a failed
// entry for the same shard: it was not tried, so that it cannot overtake
// the failed one. It is not a Kinesis error; it is retryable.
var ErrNotAttempted error = &runnelError{text: "not attempted: an earlier record for the same shard failed", isRetryable: true}

// ErrShardMapChanged fails a PutRoutedRecords entry whose expected hash-key
// range is not held whole by the shard it routes to: the caller's view of
// the shards is out of date. It is not a Kinesis error; it is retryable once
// the caller has listed the shards again.
var ErrShardMapChanged error = &runnelError{text: "the shard map changed: the record's hash-key range spans more than one shard", isRetryable: true}

// ErrCorrupt is wrapped by the error of a read that met stored data that
// does not decode: a lease store's item (the error names the table, key
// and attribute), or a record whose checksum does not match in a durable
// cluster's files (that error wraps ErrInternalFailure too). For a record, the
// error names the file and the offset, the counter of the record before
// the damaged one and that of the next readable record (a sequence
// number's counter digits); the records before and after it stay
// readable. It is not a Kinesis error and not retryable: reading the
// same record again fails the same way.
var ErrCorrupt error = &runnelError{text: "corrupt record"}

// Error is the error type of runnel's operations. It names the operation and
// the offending value, and wraps one of the sentinel errors (Kind), so both
// errors.Is(err, ErrInvalidArgument) and errors.As(err, &e) work. Err, when
// set, is the underlying error (the last error of a record whose TTL
// expired, or the error of a user's Putter), which errors.Is and errors.As
// also see.
type Error struct {
	// Op is the operation that failed, named as in the Kinesis API
	// ("PutRecord"), or the runnel method ("Put", "Flush").
	Op string
	// Kind classifies the failure: a sentinel of the error table, one of
	// runnel's own sentinels, or context.Canceled / context.DeadlineExceeded.
	// A nil Kind counts as ErrInternalFailure.
	Kind error
	// Msg says what was wrong, with the value that was wrong; may be empty.
	Msg string
	// Err is the underlying error, or nil.
	Err error
}

// Error returns "runnel: <Op>: <Kind>: <Msg>: <Err>", leaving out what is
// empty, the "runnel: " prefix of a nested error, and Kind when a nested
// *Error names it already.
func (e *Error) Error() string {
	kind := e.kind()
	var b strings.Builder
	b.WriteString("runnel: ")
	b.WriteString(e.Op)
	if inner, ok := e.Err.(*Error); !ok || inner.kind() != kind {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(kind.Error(), "runnel: "))
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "runnel: "))
	}
	return b.String()
}

// Unwrap returns Kind and, when set, Err.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.kind()}
	}
	return []error{e.kind(), e.Err}
}

// kind is Kind, or ErrInternalFailure when an *Error was built without one
// (say from ErrorForName of a name the table lacks).
func (e *Error) kind() error {
	if e.Kind == nil {
		return ErrInternalFailure
	}
	return e.Kind
}

// ErrorName returns the Kinesis error name ("ResourceNotFoundException", …)
// of err, or "" when err wraps none of the error table's sentinels: what a
// Kinesis API server puts in the "__type" field of an error response.
func ErrorName(err error) string {
	var k *kinesisError
	if errors.As(err, &k) {
		return k.name
	}
	return ""
}

// ErrorForName returns the sentinel of a Kinesis error name, as an adapter
// over the AWS SDK maps the service's error codes: ErrorForName(
// "ProvisionedThroughputExceededException") is
// ErrProvisionedThroughputExceeded. The per-record ErrorCode
// "InternalFailure" of PutRecords gives ErrInternalFailure. An unknown name
// gives nil (an *Error with a nil Kind counts as ErrInternalFailure).
func ErrorForName(name string) error {
	if name == recordInternalFailure {
		return ErrInternalFailure
	}
	for _, e := range kinesisErrors {
		if e.(*kinesisError).name == name {
			return e
		}
	}
	return nil
}

// IsRetryable reports whether a client should send the request that failed
// with err again (after a backoff): true when the first sentinel err wraps
// is marked retryable in the error table (ErrProvisionedThroughputExceeded,
// ErrLimitExceeded, ErrInternalFailure, ErrKMSThrottling) or is
// ErrNotAttempted or ErrShardMapChanged. It is false for nil, for the other
// sentinels, for the context's errors (retrying under an ended context
// cannot succeed) and for errors runnel cannot classify.
func IsRetryable(err error) bool {
	var c interface{ retryable() bool }
	if errors.As(err, &c) {
		return c.retryable()
	}
	return false
}

// HTTPStatus returns the HTTP status the Kinesis API answers err with: 200
// for nil, 400 for most errors of the table, 500 for ErrInternalFailure and
// for errors that wrap no Kinesis sentinel (ErrClosed, the context's
// errors, errors runnel cannot classify: a server answers those as
// internal failures).
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var k *kinesisError
	if errors.As(err, &k) {
		return k.status
	}
	return http.StatusInternalServerError
}

// RecordErrorCode returns the ErrorCode that Kinesis reports for a failed
// PutRecords entry (PutRecordsResult.Err): "ProvisionedThroughputExceededException"
// for throttling, "InternalFailure" for any other failure, and "" for nil.
// These are the only two codes Kinesis reports per entry; note that the
// per-entry "InternalFailure" differs from the operation-level
// "InternalFailureException".
func RecordErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrProvisionedThroughputExceeded):
		return ErrorName(ErrProvisionedThroughputExceeded)
	default:
		return recordInternalFailure
	}
}

// clip quotes s for an error message, cut to n bytes with "…" when longer.
func clip(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "…"
}

// errorf builds an *Error; format and args describe the offending value.
func errorf(op string, kind error, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// ctxError is the error of operation op whose context ended.
func ctxError(op string, err error) *Error { return &Error{Op: op, Kind: err} }

// asError returns err as the *Error of operation op, so that every error
// has a sentinel: a runnel *Error of op is returned as it is (when what is
// empty); another *Error is wrapped, keeping its kind; the context's errors
// and errors wrapping a sentinel keep it as their kind; any other error (of
// a user's Putter, say) is wrapped as ErrInternalFailure. what, if not
// empty, says what op was doing.
func asError(op, what string, err error) *Error {
	var e *Error
	if errors.As(err, &e) && e == err {
		if e.Op == op && what == "" {
			return e
		}
		return &Error{Op: op, Kind: e.Kind, Msg: what, Err: e}
	}
	kind := sentinelOf(err)
	if kind == err {
		err = nil
	}
	return &Error{Op: op, Kind: kind, Msg: what, Err: err}
}

// sentinelOf returns the sentinel that classifies err: the first of the
// error table or runnel's own that it wraps, the context's error, or
// ErrInternalFailure for an error runnel cannot classify.
func sentinelOf(err error) error {
	var k *kinesisError
	var r *runnelError
	switch {
	case errors.As(err, &k):
		return k
	case errors.As(err, &r):
		return r
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return ErrInternalFailure
}
