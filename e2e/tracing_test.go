package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
	"github.com/reauth/reauth/internal/worker"
)

// TestTraceOfOneRequest runs the HTTP API, the workers, the Podero
// simulator and the mail catcher in-process with an in-memory span
// recorder, posts one request and checks that everything it caused is one
// trace: the request's span, the enqueue, the reauth_device job's work, its
// Podero calls and the email send beneath it, and the first reminder's
// reauth_notify job continuing the trace from the job that inserted it.
func TestTraceOfOneRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	pool := testdb.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	simSrv := httptest.NewUnstartedServer(nil)
	simURL := "http://" + simSrv.Listener.Addr().String()
	simulator := sim.New(sim.Config{Seed: t.Name(), BaseURL: simURL})
	simSrv.Config.Handler = simulator
	simSrv.Start()
	t.Cleanup(simSrv.Close)
	org := simulator.State().Orgs[0]
	user := org.Users[0]

	mails, err := mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { mails.Close() })
	pc, err := podero.New(podero.Config{BaseURL: simURL, ClientID: "sim-client", ClientSecret: "sim-secret",
		LinkHosts: []string{sim.DefaultConnectURL(simURL)}, TracerProvider: tp})
	require.NoError(t, err)
	renderer, err := notify.NewRenderer("")
	require.NoError(t, err)
	email, err := notify.NewEmail(notify.EmailConfig{URL: mails.URL(), From: "reauth@example.test"}, renderer)
	require.NoError(t, err)
	t.Cleanup(func() { email.Close() })
	signer, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)

	apiSrv := httptest.NewUnstartedServer(nil)
	rc, err := worker.NewClient(worker.Config{
		Pool: pool, Podero: pc, Email: email, Links: signer,
		PublicBaseURL: "http://" + apiSrv.Listener.Addr().String(),
		// The first reminder is due at once, so its job runs in the test.
		ReminderOffsets: []time.Duration{time.Millisecond},
		LinkTTL:         time.Hour, JobTimeout: 10 * time.Second, RescueAfter: time.Minute, Logger: log,
		TracerProvider: tp,
	})
	require.NoError(t, err)
	apiSrv.Config.Handler = httpapi.New(httpapi.Config{
		Pool: pool, River: rc, Logger: log, TracerProvider: tp,
		Tokens: []httpapi.APIToken{{Name: "test", Scopes: []string{httpapi.ScopeEnqueue}, Hash: sha256.Sum256([]byte(pipelineToken))}},
	})
	apiSrv.Start()
	t.Cleanup(apiSrv.Close)
	require.NoError(t, rc.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rc.Stop(ctx)
	})

	var dev sim.Device
	for _, d := range user.Devices {
		if d.Kind == reauth.Inverter {
			dev = d
		}
	}
	body := `{"org_id":"` + org.ID + `","user_id":"` + user.ID + `","device_kind":"inverter","device_id":"` + dev.ID + `"}`
	req, err := http.NewRequest(http.MethodPost, apiSrv.URL+"/v1/reauth", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+pipelineToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	// The first message and the reminder.
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = mails.Wait(waitCtx, 2)
	require.NoError(t, err)

	// A span ends when its work returns, just after the send: wait for the
	// reminder job's.
	find := func(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range spans {
			if s.Name() == name {
				out = append(out, s)
			}
		}
		return out
	}
	var spans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = rec.Ended()
		return len(find(spans, "river.work/reauth_notify")) == 1
	}, 10*time.Second, 10*time.Millisecond)

	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		got := find(spans, name)
		require.Len(t, got, 1, "spans named %s", name)
		return got[0]
	}
	childOf := func(child, parent sdktrace.ReadOnlySpan) {
		t.Helper()
		require.Equal(t, parent.SpanContext().TraceID(), child.SpanContext().TraceID(), "%s is in %s's trace", child.Name(), parent.Name())
		require.Equal(t, parent.SpanContext().SpanID(), child.Parent().SpanID(), "%s is a child of %s", child.Name(), parent.Name())
	}

	httpSpan := one("POST /v1/reauth")
	require.False(t, httpSpan.Parent().IsValid(), "the request starts the trace")
	require.Equal(t, trace.SpanKindServer, httpSpan.SpanKind())
	enqueue := one("reauth.enqueue")
	childOf(enqueue, httpSpan)
	deviceWork := one("river.work/reauth_device")
	childOf(deviceWork, enqueue)
	require.Equal(t, enqueue.SpanContext().SpanID(), deviceWork.Links()[0].SpanContext.SpanID(), "otelriver's link to the inserting span")

	// The Podero calls: the access token and the authentication session.
	childOf(one("podero.token"), deviceWork)
	authSession := one("podero.auth_session")
	childOf(authSession, deviceWork)
	require.Contains(t, authSession.Attributes(), attribute.String("podero.purpose", podero.PurposeRequest))
	require.Contains(t, authSession.Attributes(), attribute.Int("http.response.status_code", http.StatusOK))

	sends := find(spans, "notify.send/email")
	require.Len(t, sends, 2, "the first message and the reminder")
	slices.SortFunc(sends, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	childOf(sends[0], deviceWork)
	require.Contains(t, sends[0].Attributes(), attribute.Int("notify.step", 0))

	// The reminder: inserted by the device job, worked in the same trace.
	insert := one("river.insert_many")
	childOf(insert, deviceWork)
	notifyWork := one("river.work/reauth_notify")
	childOf(notifyWork, insert)
	childOf(sends[1], notifyWork)
	require.Contains(t, sends[1].Attributes(), attribute.Int("notify.step", 1))

	for _, s := range spans {
		require.Equal(t, httpSpan.SpanContext().TraceID(), s.SpanContext().TraceID(), "span %s is in the request's trace", s.Name())
	}
}
