package podero

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrorKind classifies a failure by what a caller can do about it.
type ErrorKind string

const (
	// KindRetryable: 5xx (503 without Retry-After), 408, timeouts and
	// connection errors. Try again later.
	KindRetryable ErrorKind = "retryable"

	// KindRateLimited: 429, or 503 with Retry-After, or the Limiter
	// deferring the request (then nothing was sent). Error.RetryAfter says
	// how long to wait, never 0: RetryAfterDefault when the server gave no
	// usable hint (Error.NoHint).
	KindRateLimited ErrorKind = "rate_limited"

	// KindCircuitOpen: the circuit breaker is open after consecutive
	// retryable failures, or its probe is in flight; nothing was sent.
	// Error.RetryAfter says when to come back.
	KindCircuitOpen ErrorKind = "circuit_open"

	// KindUnauthorized: 401 or 403 from the API (a 401 persisting after the
	// client fetched a new token and retried once), or the token endpoint
	// answering any 3xx or 4xx but 429: the credentials rejected, or a
	// wrong PODERO_TOKEN_URL or PODERO_TOKEN_BODY. Either way no request can
	// be made until the configuration is fixed; it says nothing about the
	// request itself.
	KindUnauthorized ErrorKind = "unauthorized"

	// KindNotFound: 404, the org, user or device does not exist.
	KindNotFound ErrorKind = "not_found"

	// KindInvalid: 400 or 422, an answer about the request, or arguments
	// rejected before any request was made. Error.Detail holds the response
	// body, trimmed, at most MaxDetailBytes.
	KindInvalid ErrorKind = "invalid"

	// KindUnexpected: an answer the API does not document and the client
	// has no rule for: a redirect (3xx; a maintenance page, a wrong
	// PODERO_BASE_URL) or a 4xx other than 400, 401, 403, 404, 408, 422 and
	// 429 (405, 409, 410, 415, ...). It says nothing for sure about the
	// request, so it is temporary: callers retry with backoff. It counts
	// toward the circuit breaker, and the client reports it as a problem
	// (Problems.Unexpected, an ERROR log).
	KindUnexpected ErrorKind = "unexpected"

	// KindMalformed: a successful response that cannot be used: labelled
	// with a Content-Type other than JSON, not JSON, the wrong shape, too
	// large, or an auth session without a usable authentication_url,
	// session_id or matching device_id.
	KindMalformed ErrorKind = "malformed"
)

// Operations, the Error.Op values.
const (
	OpAuthSession = "auth_session"
	OpListUsers   = "list_users"
	OpListDevices = "list_devices"
	OpUserByExtID = "user_by_ext_id"
	OpToken       = "token"
)

// Error is the error of every failed Client call.
type Error struct {
	Kind ErrorKind
	// Op is the operation that failed: OpAuthSession, OpListUsers,
	// OpListDevices, OpUserByExtID, or OpToken when the access token could not be had.
	Op string
	// Status is the HTTP status, 0 when there was no response.
	Status int
	// RetryAfter is how long to wait before trying again (KindRateLimited
	// and KindCircuitOpen only).
	RetryAfter time.Duration
	// NoHint is set on a 429 or 503 that gave no usable Retry-After (none
	// on a 429, or one that is zero, negative, a date in the past or
	// unreadable): RetryAfter is RetryAfterDefault, and the answer counts
	// toward the circuit breaker like a 5xx, so a server that throttles
	// without saying for how long is not asked again and again at once.
	NoHint bool
	// Detail is a short explanation, or for an error status the response
	// body. It never contains the client secret, the password or the access
	// token.
	Detail string
	// Err is the underlying error, if any.
	Err error
}

// Error returns e.g. "podero auth_session: not_found (404): detail". It is
// built from Op, Kind, Status and Detail only, never from Err, so that no URL
// or credential leaks into logs.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("podero")
	if e.Op != "" {
		b.WriteString(" ")
		b.WriteString(e.Op)
	}
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.Status != 0 {
		b.WriteString(" (")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same call may succeed later: true for
// retryable, rate limited, circuit open, unexpected and malformed (an
// upstream glitch) errors, and for unauthorized errors of API calls (the
// token may have gone stale); false for not found, invalid, and credentials
// rejected by the token endpoint.
func (e *Error) Temporary() bool {
	switch e.Kind {
	case KindRetryable, KindRateLimited, KindCircuitOpen, KindMalformed, KindUnexpected:
		return true
	case KindUnauthorized:
		return e.Op != OpToken
	}
	return false
}

// failing reports whether e counts toward the circuit breaker: Podero not
// serving the API (a 5xx, a timeout, no connection), an answer it does not
// document (KindUnexpected: a maintenance redirect), or throttling without
// a usable Retry-After.
func (e *Error) failing() bool {
	return e.Kind == KindRetryable || e.Kind == KindUnexpected || (e.Kind == KindRateLimited && e.NoHint)
}

// AsError finds the first *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// ParseRetryAfter parses a Retry-After header value, either delay seconds or
// an HTTP date, into a wait relative to now. A date in the past is a wait of
// 0. ok is false when v is empty or neither form.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// statusError classifies an HTTP error status received at now. body is (the
// start of) the response body.
func statusError(op string, status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{Op: op, Status: status, Detail: trimDetail(body)}
	switch {
	case status == http.StatusTooManyRequests,
		status == http.StatusServiceUnavailable && header.Get("Retry-After") != "":
		// Throttling always waits: a Retry-After of zero, negative, in the
		// past or unreadable is no hint, not "come back at once".
		e.Kind = KindRateLimited
		e.RetryAfter, _ = ParseRetryAfter(header.Get("Retry-After"), now)
		if e.RetryAfter <= 0 {
			e.RetryAfter, e.NoHint = RetryAfterDefault, true
		}
	case status >= 500, status == http.StatusRequestTimeout:
		e.Kind = KindRetryable
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Kind = KindUnauthorized
	case status == http.StatusNotFound:
		e.Kind = KindNotFound
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		e.Kind = KindInvalid
	case status >= 300 && status < 400:
		e.Kind = KindUnexpected
		e.Detail = "unexpected redirect"
		if loc, err := url.Parse(header.Get("Location")); err == nil && loc.Host != "" {
			e.Detail += " to " + loc.Host // the host only: a query may carry anything
		}
	default:
		e.Kind = KindUnexpected // 405, 409, 410, 415, ...: not a documented answer
	}
	return e
}

// transportError classifies a failure to get a response at all.
func transportError(op string, err error) *Error {
	return &Error{Kind: KindRetryable, Op: op, Detail: transportDetail(err), Err: err}
}

// transportDetail describes err without the request URL that *url.Error
// would add.
func transportDetail(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timeout"
		}
		return ue.Err.Error()
	}
	return err.Error()
}

// malformed is a KindMalformed error for a response with status status.
func malformed(op string, status int, detail string, err error) *Error {
	return &Error{Kind: KindMalformed, Op: op, Status: status, Detail: detail, Err: err}
}

// trimDetail trims a response body for Error.Detail: surrounding space
// removed, at most MaxDetailBytes, never cutting a UTF-8 sequence.
func trimDetail(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) <= MaxDetailBytes {
		return s
	}
	cut := MaxDetailBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // s[cut] continues a multi-byte character: cut before it
	}
	return s[:cut]
}
