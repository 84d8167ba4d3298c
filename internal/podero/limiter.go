package podero

import (
	"context"
	"errors"
	"time"
)

// Class is what a call is for. The Limiter serves the classes in order:
// a user waiting comes before the fleet.
type Class int

const (
	// ClassInteractive: a request from the API, a Go caller or the CLI, or
	// a link renewal. The default.
	ClassInteractive Class = iota
	// ClassBulk: a request from the sweep.
	ClassBulk
	// ClassSync: the device sync's listings.
	ClassSync
)

// String is the class's name, for metrics and logs.
func (c Class) String() string {
	switch c {
	case ClassBulk:
		return "bulk"
	case ClassSync:
		return "sync"
	}
	return "interactive"
}

type classKey struct{}

// WithClass returns ctx carrying the class of the calls made with it.
func WithClass(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

// ClassOf returns the class ctx carries, ClassInteractive when none.
func ClassOf(ctx context.Context) Class {
	c, _ := ctx.Value(classKey{}).(Class)
	return c
}

// Purposes of calls, by which the budget is accounted (PurposeOf).
const (
	PurposeRequest = "auth_session" // a request's session: API, Go, CLI
	PurposeSweep   = "sweep"        // a sweep request's session
	PurposeRenewal = "renewal"      // a session for an expired link, on the spot
	PurposeSync    = "sync"         // the device sync's listings
	PurposeVerify  = "verify"       // checking a completed login took (reauth_verify)
	PurposeLookup  = "user_lookup"  // finding a user's email or external ID
	PurposeToken   = "token"        // an access token
	PurposeOther   = "other"        // a call that named none
)

// Purposes lists every purpose, in the order operators see them.
var Purposes = []string{PurposeRequest, PurposeRenewal, PurposeSweep, PurposeLookup, PurposeSync, PurposeVerify, PurposeToken, PurposeOther}

type holdKey struct{}

// holdLook is one look at the Retry-After hold: at when, and how long it
// was still to last then (0: none).
type holdLook struct {
	at   time.Time
	left time.Duration
}

// WithHoldLooked returns ctx carrying a look at the Retry-After hold,
// taken at at, that found it to last left more (0: not held). A limiter
// may count it for a call that goes right after, instead of looking again
// (see worker.Limiter).
func WithHoldLooked(ctx context.Context, at time.Time, left time.Duration) context.Context {
	return context.WithValue(ctx, holdKey{}, holdLook{at: at, left: left})
}

// HoldLooked returns the look at the hold ctx carries, if any.
func HoldLooked(ctx context.Context) (at time.Time, left time.Duration, ok bool) {
	h, ok := ctx.Value(holdKey{}).(holdLook)
	return h.at, h.left, ok
}

type purposeKey struct{}
type opKey struct{}

// WithPurpose returns ctx whose calls count as purpose p, whatever their
// operation and class say.
func WithPurpose(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, purposeKey{}, p)
}

// PurposeOf says what a call made with ctx is for: a token fetch is
// PurposeToken; else the purpose WithPurpose set, else one from the call's
// operation and class.
func PurposeOf(ctx context.Context) string {
	op, _ := ctx.Value(opKey{}).(string)
	if op == OpToken {
		return PurposeToken
	}
	if p, ok := ctx.Value(purposeKey{}).(string); ok {
		return p
	}
	switch {
	case ClassOf(ctx) == ClassSync:
		return PurposeSync
	case op == OpListUsers, op == OpUserByExtID:
		return PurposeLookup
	case ClassOf(ctx) == ClassBulk:
		return PurposeSweep
	}
	return PurposeRequest
}

// Limiter spaces out requests across every process that shares it.
type Limiter interface {
	// Wait blocks until one request may be sent. When the wait would be too long it returns deferFor > 0
	// without blocking: the caller should not send and should come back after deferFor.
	Wait(ctx context.Context) (deferFor time.Duration, err error)
	// HoldUntil tells every process sharing the limiter to send nothing before t (a Retry-After).
	HoldUntil(ctx context.Context, t time.Time) error
}

// guarded sends one request of operation op with send, which returns the
// request's classified error (nil on success). Before, the request must pass
// the circuit breaker and then the limiter; after, its outcome goes to the
// breaker, and a Retry-After to the limiter.
//
// A caller cancelling ctx says nothing about Podero: such a failure does not
// count for the breaker. Running out of time does.
func (c *Client) guarded(ctx context.Context, op string, send func(context.Context) *Error) *Error {
	t, e := c.breaker.allow(op)
	if e != nil {
		return e
	}
	if e := c.wait(ctx, op); e != nil {
		c.breaker.done(t, abandoned, e)
		return e
	}

	e = send(ctx)
	switch {
	case e == nil || !e.failing():
		c.breaker.done(t, answered, e)
	case errors.Is(ctx.Err(), context.Canceled):
		c.breaker.done(t, abandoned, e)
	default:
		c.breaker.done(t, failed, e)
	}
	if e != nil && e.Kind == KindUnexpected {
		c.unexpectedAnswer(e)
	}
	if e != nil && e.Kind == KindRateLimited && e.RetryAfter > 0 {
		c.hold(ctx, op, c.cfg.Now().Add(e.RetryAfter))
	}
	return e
}

// wait waits for the limiter, within ctx (the job's own deadline; the
// limiter bounds its waits itself). It returns a KindRateLimited error when
// the limiter defers the request, and a KindRetryable one when it fails.
func (c *Client) wait(ctx context.Context, op string) *Error {
	if c.cfg.Limiter == nil {
		return nil
	}
	deferFor, err := c.cfg.Limiter.Wait(context.WithValue(ctx, opKey{}, op))
	switch {
	case err != nil:
		return &Error{Kind: KindRetryable, Op: op, Detail: c.redact("rate limiter: "+transportDetail(err), ""), Err: err}
	case deferFor > 0:
		return &Error{Kind: KindRateLimited, Op: op, RetryAfter: deferFor, Detail: "deferred by the rate limiter"}
	}
	return nil
}

// hold asks the limiter to hold every process until until. It is done even
// when the caller has given up, and a failure is only logged.
func (c *Client) hold(ctx context.Context, op string, until time.Time) {
	if c.cfg.Limiter == nil {
		return
	}
	ctx, cancel := c.requestContext(context.WithoutCancel(ctx))
	defer cancel()
	if err := c.cfg.Limiter.HoldUntil(ctx, until); err != nil {
		c.cfg.Logger.Warn("podero: rate limiter hold failed", "op", op, "until", until, "error", err)
	}
}
