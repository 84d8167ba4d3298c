package httpapi

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/reauth/reauth/internal/tracing"
)

// startSpan starts the server span of request r in ctx when tracing is on
// (Config.TracerProvider), continuing the caller's trace when r carries a
// W3C traceparent header. The returned end names the span by the route
// pattern once the mux has matched it ("POST /v1/reauth", never the path:
// paths under /r carry link tokens) and records the status. Off, it
// returns ctx and a nil end, and costs nothing.
func (s *server) startSpan(ctx context.Context, r *http.Request) (context.Context, func(route string, status int, token string)) {
	if s.tracer == nil {
		return ctx, nil
	}
	ctx = tracing.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
	return ctx, func(route string, status int, token string) {
		if route != "" {
			span.SetName(route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if token != "" {
			span.SetAttributes(attribute.String("reauth.api_token", token))
		}
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}
}
