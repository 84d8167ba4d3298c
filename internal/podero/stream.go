package podero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/reauth/reauth"
)

// MaxUserBytes is the largest one user of a streamed users list may be, in
// bytes (with the white space before it); a larger one makes the listing
// malformed. A streamed list as a whole has no size limit: it is read one
// user at a time, so its size costs no memory. What bounds it is time: the
// caller's context, and RequestTimeout for every read that waits (a stalled
// stream fails, a slow one does not).
const MaxUserBytes = MaxBodyBytes

// ForEachUser lists the users of organization orgID and calls fn with each
// as the list arrives, in Podero's order, decoding one user at a time: an
// organization of millions of users is listed in constant memory (see
// TestForEachUserHeap). fn's error stops the listing and is returned as it
// is; every other failure is an *Error, as for ListUsers.
//
// The listing is complete only when ForEachUser returns nil: on an error, fn
// has seen only some of the users (a truncated or malformed list, or a
// stream that stalled for RequestTimeout), and their absence means nothing.
//
// The request passes the breaker and the limiter once, like any call; the
// response headers must arrive within RequestTimeout, and so must every
// chunk of the body after them, however long the whole takes. fn's own time
// does not count: the body is not read meanwhile.
func (c *Client) ForEachUser(ctx context.Context, orgID string, fn func(User) error) error {
	const op = OpListUsers
	if !reauth.IsUUID(orgID) {
		return &Error{Kind: KindInvalid, Op: op, Detail: "org_id must be a UUID"}
	}
	return c.stream(ctx, op, apiPrefix+"/org/"+url.PathEscape(orgID)+"/users", func(body *streamBody, status int) error {
		return decodeUsers(body, status, fn)
	})
}

// callbackError carries the error of ForEachUser's fn through the stream,
// so that it is returned as it is and not taken for Podero's failure.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// decodeUsers reads a JSON array of users from body, one element at a time,
// and calls fn with each. Its errors are callbackError (fn's), or an *Error.
func decodeUsers(body *streamBody, status int, fn func(User) error) error {
	const op = OpListUsers
	dec := json.NewDecoder(body)
	// bad turns a decoding failure into the *Error that says what went wrong.
	bad := func(what string, err error) error {
		switch {
		case body.tooLarge:
			return malformed(op, status, fmt.Sprintf("a user in the list is larger than %d bytes", MaxUserBytes), nil)
		case body.err != nil:
			return body.failure(op, status)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return malformed(op, status, "the users list ends early", err)
		}
		return malformed(op, status, what+jsonErrorDetail(err), err)
	}
	body.limitNext(dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return bad("response is not a JSON array: ", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return malformed(op, status, "response is not a JSON array", nil)
	}
	for {
		body.limitNext(dec.InputOffset())
		if !dec.More() {
			break
		}
		var u User
		if err := dec.Decode(&u); err != nil {
			return bad("response has the wrong shape: ", err)
		}
		if err := fn(u); err != nil {
			return callbackError{err}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return bad("response has the wrong shape: ", err)
	}
	// Nothing but white space may follow, as json.Unmarshal demands.
	body.limitNext(dec.InputOffset())
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bad("after the users list: ", err)
		}
		return malformed(op, status, "data after the users list", nil)
	}
	return nil
}

// stream makes an authorized GET of path and hands the body of a 2xx JSON
// response to read, as do makes a request: the breaker and limiter once, a
// 401 retried once with a new token. read's callbackError is returned as
// the error inside it; its *Error (a malformed or broken body) counts for
// the breaker like any answer.
func (c *Client) stream(ctx context.Context, op, path string, read func(body *streamBody, status int) error) error {
	for retried := false; ; retried = true {
		token, err := c.accessToken(ctx)
		if err != nil {
			return err
		}
		var fnErr error // the callback's error, not Podero's
		e := c.guard(ctx, op, func(ctx context.Context) *Error {
			err := c.sendStream(ctx, op, path, token, read)
			var cb callbackError
			var pe *Error
			switch {
			case err == nil:
				return nil
			case errors.As(err, &cb):
				fnErr = cb.err
				return nil
			case errors.As(err, &pe):
				return pe
			}
			return &Error{Kind: KindRetryable, Op: op, Detail: c.redact(err.Error(), token), Err: err}
		})
		switch {
		case e == nil:
			return fnErr
		case e.Status == http.StatusUnauthorized && !retried:
			c.invalidate(token)
		default:
			return e
		}
	}
}

// sendStream sends one GET with the access token token and, for a 2xx JSON
// response, calls read with its body. Each wait, for the headers and then
// for every read of the body, is bounded by RequestTimeout; the exchange as
// a whole only by ctx.
func (c *Client) sendStream(ctx context.Context, op, path, token string, read func(body *streamBody, status int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	idle := time.AfterFunc(c.cfg.RequestTimeout, func() { timedOut.Store(true); cancel() })
	defer idle.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+path, nil)
	if err != nil {
		return &Error{Kind: KindInvalid, Op: op, Detail: "building the request failed", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)

	// The client's own Timeout would cut a long stream: the timer above
	// bounds each wait instead.
	hc := *c.cfg.HTTPClient
	hc.Timeout = 0
	sent := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		c.cfg.Observe(op, 0, time.Since(sent))
		if timedOut.Load() {
			err = context.DeadlineExceeded
		}
		e := transportError(op, err)
		e.Detail = c.redact(e.Detail, token)
		return e
	}
	idle.Stop()
	c.cfg.Observe(op, resp.StatusCode, time.Since(sent))
	defer func() { _ = resp.Body.Close() }()

	status := resp.StatusCode
	if status < 200 || status > 299 {
		idle.Reset(c.cfg.RequestTimeout)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
		body = []byte(c.redact(string(body), token))
		return statusError(op, status, resp.Header, body, c.cfg.Now())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return malformed(op, status, trimDetail([]byte("response Content-Type is "+ct+", not JSON")), nil)
	}
	body := &streamBody{r: resp.Body, idle: idle, timeout: c.cfg.RequestTimeout, timedOut: &timedOut,
		redact: func(s string) string { return c.redact(s, token) }}
	return read(body, status)
}

// streamBody reads a streamed response body: each read is bounded by
// timeout, and reads stop at limit (one element's worth past its start, see
// limitNext), so one huge element cannot fill memory.
type streamBody struct {
	r        io.Reader
	idle     *time.Timer // cancels the request when it fires
	timeout  time.Duration
	timedOut *atomic.Bool
	redact   func(string) string

	n, limit int64
	tooLarge bool  // a read stopped at limit
	err      error // the first error reading r, other than io.EOF
}

// errElementTooLarge stops a read at the element limit.
var errElementTooLarge = errors.New("element too large")

// limitNext lets the element that starts at offset (the decoder's input
// offset) be up to MaxUserBytes long.
func (b *streamBody) limitNext(offset int64) { b.limit = offset + MaxUserBytes }

func (b *streamBody) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		b.tooLarge = true
		return 0, errElementTooLarge
	}
	if int64(len(p)) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	b.idle.Reset(b.timeout)
	n, err := b.r.Read(p)
	b.idle.Stop()
	b.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
	}
	return n, err
}

// failure is the *Error for a body that could not be read to its end.
func (b *streamBody) failure(op string, status int) *Error {
	err := b.err
	if b.timedOut.Load() {
		err = context.DeadlineExceeded
	}
	e := transportError(op, err)
	e.Status = status
	e.Detail = b.redact("reading the response failed: " + e.Detail)
	if b.timedOut.Load() {
		e.Detail = fmt.Sprintf("reading the response failed: no data for %s (timeout) after %d bytes", b.timeout, b.n)
	}
	return e
}
