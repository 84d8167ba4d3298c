package reauth

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTraceEnqueue(t *testing.T) {
	t.Run("WithoutATraceNothingChangesNorAllocates", func(t *testing.T) {
		md := []byte(`{"api_token":"crm"}`)
		allocs := testing.AllocsPerRun(100, func() {
			_, span, got, err := traceEnqueue(context.Background(), 1, md)
			span.End()
			if err != nil || string(got) != string(md) {
				t.Fatal("changed")
			}
		})
		require.Zero(t, allocs)
	})

	t.Run("JoinsTheCallersTrace", func(t *testing.T) {
		t.Parallel()
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		ctx, parent := tp.Tracer("caller").Start(context.Background(), "caller")
		_, span, md, err := traceEnqueue(ctx, 2, []byte(`{"api_token":"crm"}`))
		require.NoError(t, err)
		span.End()
		parent.End()
		require.Contains(t, string(md), `"api_token":"crm"`)
		require.Contains(t, string(md), `"traceparent":"00-`+parent.SpanContext().TraceID().String()+"-"+span.SpanContext().SpanID().String())
		ended := rec.Ended()
		require.Equal(t, "reauth.enqueue", ended[0].Name())
		require.Equal(t, parent.SpanContext().SpanID(), ended[0].Parent().SpanID())
	})
}
