package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// targetPrefix starts the X-Amz-Target header of every Kinesis operation.
const targetPrefix = "Kinesis_20131202."

// jsonContentType is the content type of requests and responses.
const jsonContentType = "application/x-amz-json-1.1"

// maxBody bounds a request body: the largest PutRecords request (10 MiB of
// data with the largest record size) in base64, with room for the JSON.
const maxBody = 10<<20*4/3 + 1<<20

// ServeHTTP answers one Kinesis API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("runnel-%016x", s.requests.Add(1)))
	op, err := s.decodeTarget(r)
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		s.writeError(w, r, &runnel.Error{Op: "Read", Kind: runnel.ErrSerialization, Msg: "reading the request body failed", Err: err}, 0)
		return
	case len(body) > maxBody:
		s.writeError(w, r, &runnel.Error{Op: "Read", Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("the request body is larger than %d bytes", maxBody)}, http.StatusRequestEntityTooLarge)
		return
	}
	out, err := op(r.Context(), s, body)
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	if st, ok := out.(streamer); ok {
		st.stream(r.Context(), s, w)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.writeError(w, r, &runnel.Error{Op: "Encode", Kind: runnel.ErrInternalFailure, Err: err}, 0)
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Write(b)
}

// decodeTarget finds the operation a request names.
func (s *Server) decodeTarget(r *http.Request) (operation, error) {
	if r.Method != http.MethodPost {
		return nil, &runnel.Error{Op: r.Method, Kind: runnel.ErrUnknownOperation, Msg: "the Kinesis API takes POST requests"}
	}
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	op := operations[name]
	if !ok || op == nil {
		return nil, &runnel.Error{Op: "Dispatch", Kind: runnel.ErrUnknownOperation, Msg: fmt.Sprintf("X-Amz-Target %.100q names no operation served", target)}
	}
	return op, nil
}

// decode reads a JSON request body into in, refusing unknown fields so
// that a misspelt field is not ignored silently.
func decode(op string, body []byte, in any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(in); err != nil {
		return &runnel.Error{Op: op, Kind: runnel.ErrSerialization, Msg: "the request body is not a valid " + op + " request", Err: err}
	}
	if d.More() {
		return &runnel.Error{Op: op, Kind: runnel.ErrSerialization, Msg: "the request body has data after its JSON object"}
	}
	return nil
}

// wireError is an error response body.
type wireError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// writeError answers err as the Kinesis API does: the error's name in
// __type and X-Amzn-ErrorType, its message, and its HTTP status (the error
// table's, unless status is set).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, status int) {
	name := runnel.ErrorName(err)
	if status == 0 {
		status = runnel.HTTPStatus(err)
	}
	if name == "" {
		name = runnel.ErrorName(runnel.ErrInternalFailure)
		status = http.StatusInternalServerError
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client has gone
	}
	if status >= 500 {
		s.log.Error("runnel server: request failed", "target", r.Header.Get("X-Amz-Target"), "err", err)
	} else {
		s.log.Debug("runnel server: request refused", "target", r.Header.Get("X-Amz-Target"), "err", err)
	}
	b, _ := json.Marshal(wireError{Type: name, Message: message(err)})
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("X-Amzn-ErrorType", name)
	w.WriteHeader(status)
	w.Write(b)
}

// message is the message of an error response: what the *Error says of
// the bad value, without runnel's prefix.
func message(err error) string {
	var e *runnel.Error
	if errors.As(err, &e) && e.Msg != "" {
		if e.Err != nil {
			return e.Msg + ": " + strings.TrimPrefix(e.Err.Error(), "runnel: ")
		}
		return e.Msg
	}
	return strings.TrimPrefix(err.Error(), "runnel: ")
}

// epochSeconds is a timestamp as the JSON protocol carries it: seconds
// since the epoch, with a fraction for milliseconds.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1e3, 'f', -1, 64), nil
}

func (t *epochSeconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return fmt.Errorf("timestamp %.40s is not a number of seconds since the epoch", b)
	}
	*t = epochSeconds(time.UnixMilli(int64(math.Round(f * 1e3))))
	return nil
}
