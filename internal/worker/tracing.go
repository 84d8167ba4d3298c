package worker

import (
	"context"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/tracing"
)

// tracingMiddleware is the River middleware that traces jobs when tp is set
// (Config.TracerProvider), outermost so that its spans see each attempt's
// final outcome; none when tracing is off, so an untraced job pays nothing.
//
// otelriver writes the inserting span's trace context into a job's
// metadata and starts a river.work/<kind> span for each attempt, linked to
// it; continueTrace, run before it, makes that span a child as well, so a
// request, its reauth_device job, the Podero calls, the first message and
// every reminder are one trace. Its metrics stay off (no meter): the
// service's own are in internal/metrics.
func tracingMiddleware(tp trace.TracerProvider) []rivertype.Middleware {
	if tp == nil {
		return nil
	}
	return []rivertype.Middleware{
		&continueTrace{},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			TracerProvider:              tp,
			MeterProvider:               metricnoop.NewMeterProvider(),
			EnableTracePropagation:      true,
			EnableWorkSpanJobKindSuffix: true,
		}),
	}
}

// continueTrace makes a job's work continue the trace whose context its
// metadata carries (see tracingMiddleware).
type continueTrace struct{ river.MiddlewareDefaults }

func (continueTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return doInner(tracing.ContinueJobTrace(ctx, job.Metadata))
}

// send sends m on channel ch, in a span notify.send/<channel> when tracing
// is on.
func (cfg Config) send(ctx context.Context, ch string, m notify.Message) error {
	if cfg.TracerProvider == nil {
		return cfg.sender(ch).Send(ctx, m)
	}
	ctx, span := tracing.Tracer(cfg.TracerProvider).Start(ctx, "notify.send/"+ch, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("notify.channel", ch), attribute.Int("notify.step", m.Step), attribute.String("notify.key", m.Key)))
	defer span.End()
	err := cfg.sender(ch).Send(ctx, m)
	if rej, ok := notify.AsRejected(err); ok {
		span.SetAttributes(attribute.Bool("notify.rejected", true), attribute.Bool("notify.delivered", rej.Delivered))
	}
	tracing.Fail(span, err)
	return err
}
