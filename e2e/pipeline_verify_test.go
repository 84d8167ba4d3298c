package e2e_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify/webhook"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/worker"
)

// TestVerifiedCompletion: a user logs in through the emailed link at the
// simulator's connect page. For a device whose login takes, the check after
// VERIFY_AFTER confirms it: reauth.completed again, verified true. For one
// whose login "succeeds" but does not take, the check still sees it lapsed
// at VERIFY_TIMEOUT: the session is unverified, the partner gets
// reauth.verification_failed and the user a second email, the "that did not
// work, here is a fresh link" one, with a working link.
func TestVerifiedCompletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	events := newReceiver(t)
	b := setup(t, func(wc *worker.Config, hc *httpapi.Config) {
		s, err := webhook.NewSender(webhook.SenderConfig{Secret: testSecret})
		require.NoError(t, err)
		wc.PostEvent = func(ctx context.Context, id string, payload any) error {
			return s.Post(ctx, events.srv.URL, id, payload)
		}
		hc.Events = true
		wc.VerifyAfter, wc.VerifyTimeout = 100*time.Millisecond, time.Second
		hc.VerifyAfter = 100 * time.Millisecond
		// Not the default, so that the fresh link's job shows it got
		// MAX_ATTEMPTS as configured.
		wc.MaxAttempts, hc.MaxAttempts = 42, 42
	})
	b.start(t)
	browser := sim.LocalhostClient() // follows the link to the simulator's connect.localhost host and back
	inverter, ev := b.device(reauth.Inverter), b.device(reauth.ElectricVehicle)
	require.True(t, b.sim.LoginDoesNotTake(inverter.ID, true))

	// login opens the emailed link and logs in at the connect page, which
	// redirects to the service's success page.
	login := func(text string) {
		t.Helper()
		link := mailcatch.FindLink(text, b.api.URL+"/r/")
		require.NotEmpty(t, link, text)
		resp, err := browser.Get(link)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		u, err := url.Parse(resp.Request.URL.String()) // the connect page
		require.NoError(t, err)
		u.RawQuery = "result=success"
		resp, err = browser.Get(u.String())
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Request.URL.String(), b.api.URL+"/r/"), "back on the service's page: %s", resp.Request.URL)
	}
	session := func(device string) (id int64, state string) {
		t.Helper()
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, state FROM auth_session WHERE device_id = $1 ORDER BY id LIMIT 1`, device).Scan(&id, &state))
		return id, state
	}

	for _, d := range []sim.Device{ev, inverter} {
		status, out := b.post(t, pipelineToken, b.body(d))
		require.Equal(t, http.StatusAccepted, status, out)
		b.waitJob(t, jobID(t, out), "completed")
	}
	msgs, err := b.mails.Wait(ctx, 2)
	require.NoError(t, err)
	for _, m := range msgs {
		require.NotContains(t, m.Text, "did not reconnect", "a first message is the usual one")
		login(m.Text)
	}

	// The inverter's fresh link: a third email, the retry message.
	msgs, err = b.mails.Wait(ctx, 3)
	require.NoError(t, err)
	retry := msgs[2]
	require.Contains(t, retry.Subject, "That did not work")
	require.Contains(t, retry.Text, "did not reconnect")
	require.Contains(t, retry.HTML, "did not reconnect")
	first, state := session(inverter.ID)
	require.Equal(t, "unverified", state)
	var fresh int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE device_id = $1 AND state = 'open'`, inverter.ID).Scan(&fresh))
	require.NotEqual(t, first, fresh)
	var freshReason string
	var freshAttempts int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT j.args->>'reason', j.max_attempts FROM auth_session s JOIN river_job j ON j.id = s.job_id WHERE s.id = $1`,
		fresh).Scan(&freshReason, &freshAttempts))
	require.Equal(t, reauth.ReasonVerificationFailed, freshReason)
	require.Equal(t, 42, freshAttempts, "the verification_failed request gets MAX_ATTEMPTS as configured")
	require.NotEqual(t, mailcatch.FindLink(msgs[1].Text, b.api.URL+"/r/"), mailcatch.FindLink(retry.Text, b.api.URL+"/r/"), "a fresh link")

	// The EV's login took: its completion is verified.
	evSession, state := session(ev.ID)
	require.Equal(t, "completed", state)
	var verified bool
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT verified_at IS NOT NULL FROM auth_session WHERE id = $1`, evSession).Scan(&verified))
	require.True(t, verified)

	// Events: each completion at the callback (verified false); the EV's
	// again when confirmed (verified true); the inverter's failure. Then
	// the fresh link's link_created.
	var got []map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, _ = events.wait(t, 1)
		types := map[string]int{}
		for _, e := range got {
			types[e["type"].(string)]++
		}
		if types[reauth.EventCompleted] >= 3 && types[reauth.EventVerificationFailed] >= 1 && types[reauth.EventLinkCreated] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: %v", got)
		}
	}
	var completed []map[string]any
	for _, e := range got {
		data := e["data"].(map[string]any)
		switch e["type"] {
		case reauth.EventCompleted:
			completed = append(completed, data)
		case reauth.EventVerificationFailed:
			require.Equal(t, inverter.ID, data["device_id"])
			require.Contains(t, data["detail"], "VERIFY_TIMEOUT")
		}
	}
	verifiedBy := map[string][]any{}
	for _, c := range completed {
		verifiedBy[c["device_id"].(string)] = append(verifiedBy[c["device_id"].(string)], c["verified"])
	}
	require.ElementsMatch(t, []any{false, true}, verifiedBy[ev.ID])
	require.Equal(t, []any{false}, verifiedBy[inverter.ID])

	// The fresh link works: this time the login takes.
	require.True(t, b.sim.LoginDoesNotTake(inverter.ID, false))
	login(retry.Text)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state = 'completed' AND verified_at IS NOT NULL FROM auth_session WHERE id = $1`, fresh).Scan(&ok))
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fresh link's completion was not verified")
		}
	}
	require.Len(t, b.mails.Messages(), 3, "no further email")
}
