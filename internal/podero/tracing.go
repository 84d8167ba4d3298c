package podero

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// guard is guarded (the breaker, the limiter and the request) in a span
// podero.<op> when tracing is on (Config.TracerProvider): a child of the
// caller's span, with the operation, the purpose it is counted under, the
// HTTP status and, on failure, the error's kind. The span covers the wait
// for the limiter, which is where a throttled call spends its time. No
// trace context is sent to Podero.
func (c *Client) guard(ctx context.Context, op string, send func(context.Context) *Error) *Error {
	if c.tracer == nil {
		return c.guarded(ctx, op, send)
	}
	ctx, span := c.tracer.Start(ctx, "podero."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("podero.op", op),
			attribute.String("podero.purpose", PurposeOf(context.WithValue(ctx, opKey{}, op)))))
	defer span.End()
	e := c.guarded(ctx, op, send)
	if e != nil {
		span.SetAttributes(attribute.String("podero.error_kind", string(e.Kind)))
		if e.Status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", e.Status))
		}
		span.SetStatus(codes.Error, e.Error())
	}
	return e
}

// traceStatus notes a response's status on the call's span, if any.
func traceStatus(ctx context.Context, status int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status < http.StatusBadRequest {
			span.SetStatus(codes.Ok, "")
		}
	}
}

// tracerFor is the client's tracer; nil when tracing is off.
func tracerFor(cfg Config) trace.Tracer {
	if cfg.TracerProvider == nil {
		return nil
	}
	return cfg.TracerProvider.Tracer("github.com/reauth/reauth/internal/podero")
}
