package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/reauth/reauth/internal/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnabled(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"NothingSet", nil, false},
		{"Endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"TracesEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"ExporterNone", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{"SDKDisabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{"ExporterWithoutEndpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tracing.Enabled(env(tt.env)))
		})
	}
}

func TestSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OffByDefault", func(t *testing.T) {
		t.Parallel()
		tr, err := tracing.Setup(ctx, env(nil), "")
		require.NoError(t, err)
		require.Nil(t, tr.Provider)
		require.Nil(t, tracing.Tracer(tr.Provider))
		require.NoError(t, tr.Shutdown(ctx))
	})

	t.Run("On", func(t *testing.T) {
		t.Parallel()
		// No connection is made until spans are sent; none are.
		tr, err := tracing.Setup(ctx, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}), "v1")
		require.NoError(t, err)
		require.NotNil(t, tr.Provider)
		require.NoError(t, tr.Shutdown(ctx))
	})

	t.Run("UnsupportedSettingsRefused", func(t *testing.T) {
		t.Parallel()
		_, err := tracing.Setup(ctx, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), "")
		require.ErrorContains(t, err, "only http/protobuf")
		_, err = tracing.Setup(ctx, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"}), "")
		require.ErrorContains(t, err, "only otlp")
	})
}

func TestJobMetadata(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tracing.Start(context.Background(), tracing.Tracer(tp), "insert")
	md, err := tracing.InjectMetadata(ctx, []byte(`{"api_token":"crm"}`))
	require.NoError(t, err)
	span.End()
	require.Contains(t, string(md), `"api_token":"crm"`)
	require.Contains(t, string(md), `"traceparent":"00-`+span.SpanContext().TraceID().String())

	_, work := tracing.Start(tracing.ContinueJobTrace(context.Background(), md), tracing.Tracer(tp), "work")
	work.End()
	got := rec.Ended()[1]
	require.Equal(t, span.SpanContext().TraceID(), got.SpanContext().TraceID())
	require.Equal(t, span.SpanContext().SpanID(), got.Parent().SpanID())

	// Without a trace: nothing added, nothing continued.
	plain, err := tracing.InjectMetadata(context.Background(), []byte(`{}`))
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(plain))
	bg := context.Background()
	require.Equal(t, bg, tracing.ContinueJobTrace(bg, []byte(`{"river:log":[]}`)))
}

// Off, the helpers on a request's path allocate nothing.
func TestOffAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	md := []byte(`{"api_token":"crm"}`)
	allocs := testing.AllocsPerRun(100, func() {
		ctx, span := tracing.Start(ctx, tracing.Tracer(nil), "x")
		tracing.Fail(span, nil)
		span.End()
		_, _ = tracing.InjectMetadata(ctx, md)
		_ = tracing.ContinueJobTrace(ctx, md)
	})
	require.Zero(t, allocs)
}

// On, spans reach the OTLP/HTTP endpoint the variables name, at the latest
// on Shutdown. Not parallel: the SDK reads the process environment.
func TestSpansReachTheEndpoint(t *testing.T) {
	got := make(chan *http.Request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- r
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "reauth-test")
	ctx := context.Background()
	tr, err := tracing.Setup(ctx, os.Getenv, "")
	require.NoError(t, err)
	_, span := tracing.Start(ctx, tracing.Tracer(tr.Provider), "one")
	span.End()
	require.NoError(t, tr.Shutdown(ctx))
	select {
	case r := <-got:
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/v1/traces", r.URL.Path)
		require.Equal(t, "application/x-protobuf", r.Header.Get("Content-Type"))
	default:
		t.Fatal("no spans were sent")
	}
}
