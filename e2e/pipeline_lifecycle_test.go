package e2e_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
)

// clock is a test clock the worker and the HTTP API both read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func withClock(c *clock, offsets ...time.Duration) func(*worker.Config, *httpapi.Config) {
	return func(wc *worker.Config, hc *httpapi.Config) {
		wc.Now, hc.Now = c.Now, c.Now
		wc.ReminderOffsets = offsets
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// reminder returns the session's reminder job for step, waiting for it.
func (b *testBundle) reminder(t *testing.T, session int64, step int) (id int64, state string, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := b.pool.QueryRow(context.Background(), `SELECT id, state, scheduled_at FROM river_job
			WHERE kind = 'reauth_notify' AND args ->> 'session_id' = $1::bigint::text AND (args ->> 'step')::int = $2`,
			session, step).Scan(&id, &state, &at)
		if err == nil {
			return id, state, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reminder job for session %d step %d: %v", session, step, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReminders runs one session from creation through two reminders, each
// due at its offset on the injected clock, to completion, and shows that the
// reminder still pending then is cancelled and, even if run, sends nothing.
func TestReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	clk := &clock{now: t0}
	b := setup(t, withClock(clk, 24*time.Hour, 72*time.Hour, 120*time.Hour))
	b.start(t)
	dev := b.device(reauth.Wallbox)

	status, out := b.post(t, pipelineToken, b.body(dev))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	var session int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE device_id = $1", dev.ID).Scan(&session))
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)

	// Step 0 went out; step 1 waits for created_at + 24 h on the clock.
	for _, r := range []struct {
		step   int
		offset time.Duration
	}{{1, 24 * time.Hour}, {2, 72 * time.Hour}} {
		id, state, at := b.reminder(t, session, r.step)
		require.Equal(t, "scheduled", state, "step %d waits", r.step)
		require.WithinDuration(t, t0.Add(r.offset), at, time.Second, "step %d is due at its offset", r.step)
		// Time passes until it is due; River makes it available.
		clk.advance(at.Sub(clk.Now()))
		_, err := b.river.JobRetry(ctx, id)
		require.NoError(t, err)
		b.waitJob(t, id, "completed")
		msgs, err = b.mails.Wait(ctx, 1+r.step)
		require.NoError(t, err)
		m := msgs[r.step]
		require.Equal(t, fmt.Sprintf("<reauth-%d-%d@example.test>", session, r.step), m.MessageID)
		require.Contains(t, strings.ToLower(m.Subject+m.Text), "remind", "a reminder reads as one")
	}

	// Step 3 is scheduled; the user completes the login.
	id3, state, _ := b.reminder(t, session, 3)
	require.Equal(t, "scheduled", state)
	link := mailcatch.FindLink(msgs[0].Text, b.api.URL+"/r/")
	require.NotEmpty(t, link)
	resp, err := noRedirect.Get(link + "/done?result=success")
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 400)

	_, state, _ = b.reminder(t, session, 3)
	require.Equal(t, "cancelled", state, "completion cancels the pending reminder")
	clk.advance(120 * time.Hour)
	_, err = b.river.JobRetry(ctx, id3) // even run by hand, it sends nothing
	require.NoError(t, err)
	b.waitJob(t, id3, "completed")
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.mails.Messages(), 3, "no reminder after completion")
	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM notification WHERE session_id = $1 AND state = 'sent'", session))
}

// TestExpiredLinkLandsOnFreshSession opens a link after LINK_TTL on the
// injected clock: a fresh session is made on the spot and the user lands on
// its Podero link.
func TestExpiredLinkLandsOnFreshSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Now()}
	// MAX_ATTEMPTS other than the default: the renewal must get the
	// configured value, not a hard-coded one.
	const maxAttempts = 42
	b := setup(t, withClock(clk, 24*time.Hour), func(wc *worker.Config, hc *httpapi.Config) {
		wc.RenewWait, hc.RenewWait = time.Second, time.Second
		wc.MaxAttempts, hc.MaxAttempts = maxAttempts, maxAttempts
	})
	b.start(t)
	dev := b.device(reauth.Inverter)

	status, out := b.post(t, pipelineToken, b.body(dev))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	link := mailcatch.FindLink(msgs[0].Text, b.api.URL+"/r/")
	var oldID int64
	var oldURL string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id, authentication_url FROM auth_session WHERE device_id = $1", dev.ID).Scan(&oldID, &oldURL))

	// Within LINK_TTL the link leads to the session's own Podero link.
	resp, err := noRedirect.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, oldURL, resp.Header.Get("Location"))

	clk.advance(2 * time.Hour) // LINK_TTL is 1 h
	resp, err = noRedirect.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "a fresh session on the spot")
	var newID int64
	var newURL, state string
	var clicks int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id, authentication_url, clicks FROM auth_session WHERE device_id = $1 AND state = 'open'",
		dev.ID).Scan(&newID, &newURL, &clicks))
	require.NotEqual(t, oldID, newID)
	require.Equal(t, newURL, resp.Header.Get("Location"))
	var renewalAttempts, renewalPriority int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT j.max_attempts, j.priority FROM auth_session s JOIN river_job j ON j.id = s.job_id WHERE s.id = $1`,
		newID).Scan(&renewalAttempts, &renewalPriority))
	require.Equal(t, maxAttempts, renewalAttempts, "the renewal gets MAX_ATTEMPTS as configured, not River's 25 or the default")
	require.Equal(t, reauth.PriorityInteractive, renewalPriority, "a user waits for the renewal")
	require.Equal(t, 1, clicks, "the click on the fresh session is recorded")
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM auth_session WHERE id = $1", oldID).Scan(&state))
	require.Equal(t, "superseded", state)
	_, state, _ = b.reminder(t, oldID, 1)
	require.Equal(t, "cancelled", state, "the superseded session's reminder goes with it")
	_, state, _ = b.reminder(t, newID, 1)
	require.Equal(t, "scheduled", state, "the fresh session reminds in its turn")
	// Its first message waited out the renewal and found the user on it.
	var first int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'reauth_notify'
		AND args ->> 'session_id' = $1::bigint::text AND args ->> 'step' = '0'`, newID).Scan(&first))
	b.waitJob(t, first, "completed")
	require.Len(t, b.mails.Messages(), 1, "no first message for a link the user is already on")

	// The old link follows to the fresh session from now on.
	resp, err = noRedirect.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, newURL, resp.Header.Get("Location"))
}

// TestOpenedBeforeFirstMessage: a session the user opened before its first
// message went out (an expired link renewed on the spot) gets no first
// message, only its reminders.
func TestOpenedBeforeFirstMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Now()}
	b := setup(t, withClock(clk, 24*time.Hour))
	b.start(t)
	dev := b.device(reauth.Inverter)
	var session int64
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) (err error) {
		if err = store.UpsertDevice(ctx, tx, dev.Kind, dev.ID, b.org, b.user.ID); err != nil {
			return err
		}
		nonce := link.NewNonce()
		session, err = store.CreateSession(ctx, tx, store.NewSession{DeviceKind: dev.Kind, DeviceID: dev.ID,
			PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", AuthenticationURL: b.simURL + "/connect/x",
			LinkNonce: nonce, LinkHash: link.Hash(hex.EncodeToString(nonce)), Email: b.user.Email, Locale: "en",
			CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)})
		return err
	}))
	first, err := store.MarkOpened(ctx, b.pool, session)
	require.NoError(t, err)
	require.True(t, first)
	res, err := b.river.Insert(ctx, reauth.NotifyArgs{SessionID: session, Step: 0}, nil)
	require.NoError(t, err)
	b.waitJob(t, res.Job.ID, "completed")
	_, state, _ := b.reminder(t, session, 1)
	require.Equal(t, "scheduled", state, "the reminder still comes")
	require.Empty(t, b.mails.Messages(), "no first message for an opened link")
	require.Zero(t, b.count(t, "SELECT count(*) FROM notification WHERE session_id = $1", session))
}
