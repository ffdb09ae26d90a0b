package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/runnel-go/runnel"
)

// targetPrefix starts the X-Amz-Target header of every Kinesis operation.
const targetPrefix = "Kinesis_20131202."

// The content types of requests and responses: JSON 1.1, which most SDKs
// send, and CBOR 1.1, which the Java SDK (and so the KCL) sends by default.
const (
	jsonContentType = "application/x-amz-json-1.1"
	cborContentType = "application/x-amz-cbor-1.1"
)

// codec encodes and decodes the bodies of one content type.
type codec struct {
	contentType string
	// unmarshal decodes a body strictly: unknown fields are errors.
	unmarshal func(body []byte, v any) error
	marshal   func(v any) ([]byte, error)
}

var jsonCodec = &codec{contentType: jsonContentType, unmarshal: unmarshalJSON, marshal: json.Marshal}

// cborDecoding refuses unknown fields, as the JSON decoder does, and
// bounds nesting and lengths.
var cborDecoding, _ = cbor.DecOptions{
	ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	MaxNestedLevels:   16,
	MaxArrayElements:  100_000,
	MaxMapPairs:       100_000,
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	DefaultMapType:    reflect.TypeFor[map[string]any](), // configurations kept as given (channels) encode as JSON too
}.DecMode()

var cborCodec = &codec{contentType: cborContentType, unmarshal: cborDecoding.Unmarshal, marshal: cbor.Marshal}

// codecOf returns the codec of a request's content type: CBOR for
// application/x-amz-cbor-1.1, JSON otherwise.
func codecOf(r *http.Request) *codec {
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(mt) == cborContentType {
		return cborCodec
	}
	return jsonCodec
}

// unmarshalJSON decodes a JSON body strictly: unknown fields and data after
// the object are errors.
func unmarshalJSON(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// request is an operation's request: its body, how it is encoded, and
// the cluster of the account and region it is for.
type request struct {
	body    []byte
	codec   *codec
	cluster *runnel.Cluster
}

// decode decodes the request body into in; an empty body is an empty
// request.
func (r request) decode(op string, in any) error {
	if len(bytes.TrimSpace(r.body)) == 0 {
		return nil
	}
	if err := r.codec.unmarshal(r.body, in); err != nil {
		return &runnel.Error{Op: op, Kind: runnel.ErrSerialization, Msg: "the request body is not a valid " + op + " request", Err: err}
	}
	return nil
}

// maxBody bounds a request body: the largest PutRecords request (10 MiB of
// data with the largest record size) in base64, with room for the JSON.
const maxBody = 10<<20*4/3 + 1<<20

// errBodyTooLarge refuses a request body over maxBody.
var errBodyTooLarge = &runnel.Error{Op: "Read", Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("the request body is larger than %d bytes", maxBody)}

// ServeHTTP answers one Kinesis API request (POST /), or a request to one
// of the server's own endpoints that options have added (WithMetrics,
// WithControlAPI).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.paths[r.URL.Path]; h != nil && r.URL.Path != "/" {
		h.ServeHTTP(w, r) // the server's own endpoints: metrics, the control API
		return
	}
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		own := slices.Sorted(maps.Keys(s.paths))
		s.writeError(w, r, &runnel.Error{Op: r.Method, Kind: runnel.ErrUnknownOperation, Msg: fmt.Sprintf("no endpoint %.100q: the server's own are %v (the control API needs WithControlAPI, or runnel serve -control)", r.URL.Path, own)}, http.StatusNotFound)
		return
	}
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("runnel-%016x", s.requests.Add(1)))
	if s.stateErr != nil { // never serve without the state, nor overwrite it
		s.writeError(w, r, s.stateErr, 0)
		return
	}
	if r.ContentLength > maxBody { // refused before it is read
		s.writeError(w, r, errBodyTooLarge, http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		s.writeError(w, r, &runnel.Error{Op: "Read", Kind: runnel.ErrSerialization, Msg: "reading the request body failed", Err: err}, 0)
		return
	case len(body) > maxBody:
		s.writeError(w, r, errBodyTooLarge, http.StatusRequestEntityTooLarge)
		return
	}
	if err := s.authenticate(r, body); err != nil { // before the target, as AWS checks
		s.writeError(w, r, err, 0)
		return
	}
	op, err := s.decodeTarget(r)
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	cluster, err := s.clusterOf(r)
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	c := codecOf(r)
	out, err := op(r.Context(), s, request{body: body, codec: c, cluster: cluster})
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	if st, ok := out.(streamer); ok {
		if !s.startStream() {
			st.close()
			s.writeError(w, r, &runnel.Error{Op: "SubscribeToShard", Kind: runnel.ErrClosed, Msg: "the server is closing"}, http.StatusServiceUnavailable)
			return
		}
		defer s.streams.Done()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		// Shutdown and Close end the stream, also one blocked writing to a
		// client that stopped reading: its write fails at once.
		// The callback touches w, so the handler waits for it if it began.
		rc := http.NewResponseController(w)
		ended := make(chan struct{})
		stop := context.AfterFunc(s.streamsCtx, func() {
			defer close(ended)
			cancel()
			rc.SetWriteDeadline(time.Now())
		})
		defer func() {
			if !stop() {
				<-ended
			}
		}()
		st.stream(ctx, s, w, c)
		return
	}
	b, err := c.marshal(out)
	if err != nil {
		s.writeError(w, r, &runnel.Error{Op: "Encode", Kind: runnel.ErrInternalFailure, Err: err}, 0)
		return
	}
	w.Header().Set("Content-Type", c.contentType)
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

// wireError is an error response body.
type wireError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// writeError answers err as the Kinesis API does: the error's name in
// __type and X-Amzn-ErrorType, its message, and its HTTP status (the error
// table's, unless status is set).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, status int) {
	s.writeErrorIn(w, r, codecOf(r), err, status)
}

// writeErrorIn is writeError with the codec c.
func (s *Server) writeErrorIn(w http.ResponseWriter, r *http.Request, c *codec, err error, status int) {
	name, tableStatus := errorName(err)
	if status == 0 {
		status = tableStatus
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client has gone
	}
	if status >= 500 {
		s.log.Error("runnel server: request failed", "target", r.Header.Get("X-Amz-Target"), "err", err)
	} else {
		s.log.Debug("runnel server: request refused", "target", r.Header.Get("X-Amz-Target"), "err", err)
	}
	b, _ := c.marshal(wireError{Type: name, Message: message(err)})
	w.Header().Set("Content-Type", c.contentType)
	w.Header().Set("X-Amzn-ErrorType", name)
	w.WriteHeader(status)
	w.Write(b)
}

// errorName returns the name and HTTP status an error is answered with:
// the error table's, or InternalFailureException for an error it does not
// name.
func errorName(err error) (string, int) {
	if name := runnel.ErrorName(err); name != "" {
		return name, runnel.HTTPStatus(err)
	}
	return runnel.ErrorName(runnel.ErrInternalFailure), http.StatusInternalServerError
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

// epochSeconds is a timestamp as the protocols carry it. In JSON: seconds
// since the epoch, with a fraction for milliseconds. In CBOR: tag 1 with
// an integer of milliseconds since the epoch, as the Java SDK writes it (a
// float counts seconds, as standard CBOR has it).
type epochSeconds time.Time

func (t epochSeconds) MarshalCBOR() ([]byte, error) {
	return cbor.Marshal(cbor.Tag{Number: 1, Content: time.Time(t).UnixMilli()})
}

func (t *epochSeconds) UnmarshalCBOR(b []byte) error {
	var tag cbor.RawTag
	content := b
	if err := cbor.Unmarshal(b, &tag); err == nil {
		if tag.Number != 1 {
			return fmt.Errorf("timestamp has CBOR tag %d, not 1", tag.Number)
		}
		content = tag.Content
	}
	var v any
	if err := cbor.Unmarshal(content, &v); err != nil {
		return err
	}
	switch n := v.(type) {
	case uint64:
		if n > 1e15 {
			return fmt.Errorf("timestamp %d ms is out of range", n)
		}
		*t = epochSeconds(time.UnixMilli(int64(n)))
	case int64:
		if n < -1e15 {
			return fmt.Errorf("timestamp %d ms is out of range", n)
		}
		*t = epochSeconds(time.UnixMilli(n))
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) || math.Abs(n) > 1e12 {
			return fmt.Errorf("timestamp %v s is out of range", n)
		}
		*t = epochSeconds(time.UnixMilli(int64(math.Round(n * 1e3))))
	default:
		return fmt.Errorf("timestamp of type %T is not a number", v)
	}
	return nil
}

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
