package reauth

import (
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceEnqueue joins the caller's trace, when ctx carries one (the HTTP
// API's request span, or a Go caller's own OpenTelemetry span): it starts
// a span reauth.enqueue with the caller's tracer provider and returns the
// jobs' metadata with that span's W3C trace context (traceparent, as
// otelriver writes it), from which the service's workers continue the
// trace. Without a trace in ctx it returns ctx, a span that records
// nothing and metadata as they are, allocating nothing: the root package
// sets no tracing up itself.
func traceEnqueue(ctx context.Context, requests int, metadata []byte) (context.Context, trace.Span, []byte, error) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent, metadata, nil
	}
	ctx, span := parent.TracerProvider().Tracer("github.com/reauth/reauth").Start(ctx, "reauth.enqueue",
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.Int("reauth.requests", requests)))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	m := map[string]json.RawMessage{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &m); err != nil {
			span.End()
			return ctx, span, nil, fmt.Errorf("metadata: %w", err)
		}
	}
	for k, v := range carrier {
		b, _ := json.Marshal(v)
		m[k] = b
	}
	md, err := json.Marshal(m)
	if err != nil {
		span.End()
		return ctx, span, nil, fmt.Errorf("metadata: %w", err)
	}
	return ctx, span, md, nil
}
