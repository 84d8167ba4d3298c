package main

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/reauth/reauth/internal/tracing"
)

// startTracing sets traces up from the standard OTEL_* variables, which the
// OpenTelemetry SDK reads itself (docs/tracing.md); off unless an OTLP
// endpoint is set.
func startTracing(ctx context.Context, log *slog.Logger) (*tracing.Tracing, error) {
	tr, err := tracing.Setup(ctx, os.Getenv, "")
	if err != nil {
		return nil, err
	}
	if tr.Provider != nil {
		log.InfoContext(ctx, "tracing on: spans go to the OTLP endpoint",
			slog.String("endpoint", redactedURL(cmpEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))))
	}
	return tr, nil
}

// stopTracing sends the spans still buffered, for at most 5 seconds.
func stopTracing(log *slog.Logger, tr *tracing.Tracing) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.WarnContext(ctx, "tracing: spans not sent at shutdown", slog.Any("error", err))
	}
}

// redactedURL is s without a password, for the log.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}

// cmpEnv is the first of the variables names that is set.
func cmpEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
