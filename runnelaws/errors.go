package runnelaws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	"github.com/runnel-go/runnel"
)

// apiError turns an error of the AWS SDK into a *runnel.Error of operation
// op, so that callers switch on runnel's sentinels as they do in process:
//
//   - an error the service answered carries a Kinesis error name, which
//     the error table maps to its sentinel (runnel.ErrorForName); a name
//     the table lacks counts as runnel.ErrInternalFailure;
//   - the context's errors keep their kind;
//   - any other failure (a refused connection, a response that did not
//     decode) is runnel.ErrInternalFailure, which is retryable.
//
// The SDK's error stays wrapped, so errors.As still finds its typed
// exceptions. what names the value the call was about ("stream orders").
func apiError(op, what string, err error) error {
	e := &runnel.Error{Op: op, Msg: what, Err: err}
	var api smithy.APIError
	switch {
	case errors.Is(err, context.Canceled):
		e.Kind = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind = context.DeadlineExceeded
	case errors.As(err, &api):
		e.Kind = runnel.ErrorForName(api.ErrorCode())
	default:
		e.Kind = runnel.ErrInternalFailure
	}
	return e
}

// malformed is the error of a response the adapter cannot use: the service
// (or whatever answers at the endpoint) sent a value that is not what
// Kinesis sends.
func malformed(op, format string, args ...any) error {
	return &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "malformed response: " + fmt.Sprintf(format, args...)}
}
