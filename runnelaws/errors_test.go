package runnelaws

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/runnel-go/runnel"
	"github.com/stretchr/testify/assert"
)

// TestAPIError: names of the table, AWS-wide names and unknown names get
// their sentinels; the context's error only when the context has ended.
func TestAPIError(t *testing.T) {
	ctx := context.Background()
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	for code, want := range map[string]error{
		"ProvisionedThroughputExceededException": runnel.ErrProvisionedThroughputExceeded,
		"ExpiredTokenException":                  runnel.ErrAccessDenied,
		"ThrottlingException":                    runnel.ErrLimitExceeded,
		"SomethingNew":                           runnel.ErrInternalFailure,
	} {
		err := apiError(ctx, "PutRecords", "stream s", api(code))
		assert.ErrorIs(t, err, want, code)
		var ae smithy.APIError
		assert.ErrorAs(t, err, &ae, code)
	}
	assert.False(t, runnel.IsRetryable(apiError(ctx, "op", "", api("ExpiredTokenException"))))

	// A timeout of the HTTP client looks like a deadline, but the call's
	// context is live: a retryable failure, not the caller's deadline.
	err := apiError(ctx, "GetRecords", "", context.DeadlineExceeded)
	assert.ErrorIs(t, err, runnel.ErrInternalFailure)
	assert.True(t, runnel.IsRetryable(err))

	done, cancel := context.WithCancel(ctx)
	cancel()
	err = apiError(done, "GetRecords", "", errors.New("connection reset"))
	assert.ErrorIs(t, err, context.Canceled)
}
