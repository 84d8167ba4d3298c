// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// variables, and holds the few helpers the instrumented packages share.
//
// Tracing is off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and
// OTEL_TRACES_EXPORTER is not "none" (nor OTEL_SDK_DISABLED "true"). Off, Setup
// builds no exporter and its Provider is nil: the instrumented packages take
// a nil trace.TracerProvider to mean no spans, and skip them without
// allocating. On, spans go over OTLP/HTTP (protobuf) through a batching
// processor; the SDK itself reads the rest of the standard variables
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_TRACES_SAMPLER, OTEL_BSP_*, ...). See docs/tracing.md.
//
// Trace context crosses River jobs in their metadata (W3C traceparent):
// otelriver injects it at insert, and ContinueJobTrace makes the job's
// work span a child of the span that inserted it, so one request is one
// trace from the HTTP request to the last reminder.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ServiceNameDefault is the service.name of the spans when
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names none.
const ServiceNameDefault = "reauth"

// InstrumentationName names the tracers of the service's own spans.
const InstrumentationName = "github.com/reauth/reauth"

// Propagator is how trace context travels: W3C traceparent/tracestate, in
// HTTP headers and in job metadata (as otelriver writes it).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracing is what Setup made.
type Tracing struct {
	// Provider makes the spans; nil when tracing is off.
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Enabled reports whether the OTEL_* variables read through getenv turn
// tracing on (see the package comment).
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) == "" && strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) == "" {
		return false
	}
	for _, e := range strings.Split(getenv("OTEL_TRACES_EXPORTER"), ",") {
		if strings.TrimSpace(e) == "none" {
			return false
		}
	}
	return true
}

// Setup reads the OTEL_* variables through getenv (os.Getenv in
// production) and, when they turn tracing on, starts the exporter; the
// exporter and the resource read the rest of them from the process
// environment themselves, as the SDK does. version
// is the service.version attribute ("" for none). Setup makes no
// connection: an unreachable collector only loses spans (the exporter logs
// through OpenTelemetry's error handler). It rejects settings it cannot
// honour: an exporter other than otlp, or the grpc protocol.
func Setup(ctx context.Context, getenv func(string) string, version string) (*Tracing, error) {
	if !Enabled(getenv) {
		return &Tracing{}, nil
	}
	for _, e := range strings.Split(getenv("OTEL_TRACES_EXPORTER"), ",") {
		if e = strings.TrimSpace(e); e != "" && e != "otlp" {
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: only otlp (or none) is supported", e)
		}
	}
	proto := cmp.Or(strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")), strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")))
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("OTLP protocol %s: only http/protobuf is supported (port 4318, not gRPC's 4317)", proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", ServiceNameDefault)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	// Later options win: the variables' service.name over the default.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// Shutdown sends the spans still buffered and stops the exporter, within
// ctx. It does nothing when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Tracer is tp's tracer for the service's own spans; nil when tp is nil
// (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(InstrumentationName)
}

// noSpan is what Start returns when tracing is off: it records nothing.
var noSpan = trace.SpanFromContext(context.Background())

// Start starts a span named name with t, or, when t is nil (tracing off),
// returns ctx unchanged and a span that records nothing, allocating
// nothing. Callers building attributes check span.IsRecording() first.
func Start(ctx context.Context, t trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noSpan
	}
	return t.Start(ctx, name, opts...)
}

// Fail marks span failed with err; nothing when err is nil.
func Fail(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// InjectMetadata returns the JSON object metadata with ctx's trace context
// (traceparent, and tracestate when set) added, as otelriver writes it, so
// that a job inserted without otelriver's middleware (reauth.Enqueue's
// insert-only client) continues the trace too. metadata is returned as it
// is when ctx carries no span.
func InjectMetadata(ctx context.Context, metadata []byte) ([]byte, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return metadata, nil
	}
	carrier := propagation.MapCarrier{}
	Propagator.Inject(ctx, carrier)
	return mergeMetadata(metadata, carrier)
}

// ContinueJobTrace returns ctx with the trace context found in a job's
// metadata as its remote parent, so that the job's spans join the trace
// of the request that inserted it; ctx itself when there is none.
func ContinueJobTrace(ctx context.Context, metadata []byte) context.Context {
	carrier, ok := metadataCarrier(metadata)
	if !ok {
		return ctx
	}
	return Propagator.Extract(ctx, carrier)
}
