package podero

import (
	"log/slog"
	"sync"
	"time"
)

// BreakerStatus.State values.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// BreakerStatus is a snapshot of a Client's circuit breaker.
type BreakerStatus struct {
	// State is BreakerClosed (requests flow), BreakerOpen (every call fails
	// with KindCircuitOpen) or BreakerHalfOpen (the cool-off is over: the
	// next request probes whether Podero is back).
	State string
	// Failures is the number of consecutive retryable failures.
	Failures int
	// OpenUntil is when the cool-off ends; zero while closed.
	OpenUntil time.Time
}

// Breaker returns the state of the client's circuit breaker, e.g. for a
// readiness report.
func (c *Client) Breaker() BreakerStatus {
	return c.breaker.status()
}

// outcome is what a request admitted by the breaker tells about Podero.
type outcome int

const (
	answered  outcome = iota // Podero answered, whatever it said
	failed                   // a retryable failure: 5xx, timeout, no connection
	abandoned                // no verdict: nothing was sent, or the caller gave up
)

// ticket is the breaker's admission of one request.
type ticket struct {
	gen   uint64 // the breaker's generation when admitted
	probe bool   // the half-open breaker's single probe
}

// breaker is a circuit breaker: threshold consecutive failures open it for
// coolOff; then it is half-open and admits one probe, whose outcome closes
// it or opens it again.
type breaker struct {
	threshold int
	coolOff   time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu        sync.Mutex
	gen       uint64    // changes with every opening and closing
	failures  int       // consecutive failures
	openUntil time.Time // zero while closed
	probing   bool      // the probe is in flight
}

// allow admits a request, or returns the KindCircuitOpen error of op when
// the breaker is open or its probe is in flight. An admitted request's
// outcome must be reported to done.
func (b *breaker) allow(op string) (ticket, *Error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := ticket{gen: b.gen}
	if b.openUntil.IsZero() {
		return t, nil
	}
	wait := BreakerProbeWaitDefault
	if now := b.now(); now.Before(b.openUntil) {
		wait = b.openUntil.Sub(now)
	} else if !b.probing {
		b.probing = true
		t.probe = true
		return t, nil
	}
	return t, &Error{Kind: KindCircuitOpen, Op: op, RetryAfter: wait, Detail: "circuit breaker open"}
}

// done records the outcome of the request admitted with t; cause is its
// error, if any, for the log. An outcome from before the breaker last opened
// or closed is ignored.
func (b *breaker) done(t ticket, o outcome, cause *Error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	if t.probe {
		b.probing = false
	} else if !b.openUntil.IsZero() {
		return // only the probe decides while open
	}
	switch o {
	case answered:
		if t.probe {
			b.log.Info("podero: circuit breaker closed", "failures", b.failures)
			b.gen++
			b.openUntil = time.Time{}
		}
		b.failures = 0
	case failed:
		b.failures++
		if t.probe || b.failures >= b.threshold {
			b.gen++
			b.openUntil = b.now().Add(b.coolOff)
			b.log.Warn("podero: circuit breaker open", "failures", b.failures,
				"open_until", b.openUntil, "error", cause.Error())
		}
	}
}

func (b *breaker) status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BreakerStatus{State: BreakerClosed, Failures: b.failures, OpenUntil: b.openUntil}
	switch {
	case b.openUntil.IsZero():
	case b.now().Before(b.openUntil):
		s.State = BreakerOpen
	default:
		s.State = BreakerHalfOpen
	}
	return s
}
