package runnelaws

import (
	"cmp"
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
//     the error table maps to its sentinel (runnel.ErrorForName); AWS-wide
//     names map through awsWideErrors; any other name counts as
//     runnel.ErrInternalFailure;
//   - when ctx has ended, the error is the context's (an error of the
//     HTTP client that merely looks like a deadline, such as a response
//     header timeout, is not: it is a retryable failure);
//   - any other failure (a refused connection, a response that did not
//     decode) is runnel.ErrInternalFailure, which is retryable.
//
// The SDK's error stays wrapped, so errors.As still finds its typed
// exceptions. what names the value the call was about ("stream orders").
func apiError(ctx context.Context, op, what string, err error) error {
	return classify(ctx, op, what, err, nil)
}

// classify is apiError for a service whose own error names, beside
// Kinesis's and the AWS-wide ones, map through names.
func classify(ctx context.Context, op, what string, err error, names map[string]error) *runnel.Error {
	e := &runnel.Error{Op: op, Msg: what, Err: err}
	var api smithy.APIError
	switch {
	case ctx.Err() != nil:
		e.Kind = ctx.Err()
	case errors.As(err, &api):
		code := api.ErrorCode()
		e.Kind = cmp.Or(runnel.ErrorForName(code), names[code], awsWideErrors[code], runnel.ErrInternalFailure)
	default:
		e.Kind = runnel.ErrInternalFailure
	}
	return e
}

// awsWideErrors are error names that any AWS service may answer, which
// Kinesis's own table lacks, with the sentinel of the same meaning: expired
// or unknown credentials are not retryable (they would otherwise count as
// internal failures, retried until a record's time to live), and the
// generic throttles are.
var awsWideErrors = map[string]error{
	"ExpiredTokenException": runnel.ErrAccessDenied,
	"InvalidClientTokenId":  runnel.ErrUnrecognizedClient,
	"AccessDenied":          runnel.ErrAccessDenied,
	"ThrottlingException":   runnel.ErrLimitExceeded,
	"RequestLimitExceeded":  runnel.ErrLimitExceeded,
}

// malformed is the error of a response the adapter cannot use: the service
// (or whatever answers at the endpoint) sent a value that is not what
// Kinesis sends.
func malformed(op, format string, args ...any) error {
	return &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "malformed response: " + fmt.Sprintf(format, args...)}
}
