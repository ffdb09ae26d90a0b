package runnelaws

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedWriteTo is a request body as smithy-go makes one: once closed,
// its WriteTo fails with io.EOF (and its Read returns io.EOF).
type closedWriteTo struct {
	r      *bytes.Reader
	closed bool
}

func (b *closedWriteTo) Read(p []byte) (int, error) {
	if b.closed {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *closedWriteTo) WriteTo(w io.Writer) (int64, error) {
	if b.closed {
		return 0, io.EOF
	}
	return b.r.WriteTo(w)
}

func (b *closedWriteTo) Close() error { b.closed = true; return nil }

// drainAfterClose is a transport that, as net/http's may, drains a request
// body after the SDK has closed it.
type drainAfterClose struct{ err error }

func (d *drainAfterClose) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
		_, d.err = io.Copy(io.Discard, r.Body)
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestEndingBodies(t *testing.T) {
	body := func() io.ReadCloser { return &closedWriteTo{r: bytes.NewReader([]byte("{}"))} }

	bare := &drainAfterClose{}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", body())
	require.NoError(t, err)
	_, err = bare.Do(req)
	require.NoError(t, err)
	require.ErrorIs(t, bare.err, io.EOF, "the control: draining a closed body fails")

	wrapped := &drainAfterClose{}
	req, err = http.NewRequest(http.MethodPost, "http://127.0.0.1/", body())
	require.NoError(t, err)
	_, err = endingBodies{wrapped}.Do(req)
	require.NoError(t, err)
	assert.NoError(t, wrapped.err, "a closed body reads as ended")

	req, err = http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	require.NoError(t, err)
	_, err = endingBodies{&drainAfterClose{}}.Do(req)
	assert.NoError(t, err)
	assert.Nil(t, req.Body, "no body stays none")
}
