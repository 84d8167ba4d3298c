package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/notify/push"
	"github.com/reauth/reauth/internal/notify/webhook"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver records signed webhook posts after verifying their signature.
type receiver struct {
	mu   sync.Mutex
	got  []map[string]any
	ids  []string
	srv  *httptest.Server
	fail error
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := webhook.Verify(testSecret, r.Header, body, 5*time.Minute, time.Now()); err != nil {
			rc.fail = err
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		rc.got = append(rc.got, m)
		rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) wait(t *testing.T, n int) ([]map[string]any, []string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rc.mu.Lock()
		require.NoError(t, rc.fail, "every post verifies")
		if len(rc.got) >= n {
			defer rc.mu.Unlock()
			return append([]map[string]any(nil), rc.got...), append([]string(nil), rc.ids...)
		}
		rc.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d posts received", len(rc.got), n)
		}
	}
}

// fakeFCM answers FCM HTTP v1 sends: tokens starting "dead" are
// unregistered, the rest accepted and recorded.
func fakeFCM(t *testing.T) (*httptest.Server, *[]string, *sync.Mutex) {
	var mu sync.Mutex
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Message struct {
				Token   string `json:"token"`
				Android struct {
					CollapseKey string `json:"collapse_key"`
				} `json:"android"`
			} `json:"message"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(req.Message.Token, "dead") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
				"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
			return
		}
		mu.Lock()
		sent = append(sent, req.Message.Token+" "+req.Message.Android.CollapseKey)
		mu.Unlock()
		_, _ = io.WriteString(w, `{"name":"projects/p/messages/1"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &sent, &mu
}

// TestChannels: a step goes out on the user's first usable channel and falls
// back to the next on a permanent failure under the same key: push whose
// only token is unregistered (the token is removed) falls back to email; an
// address the SMTP server refuses with 550 (it is suppressed) falls back to
// the partner's signed webhook. Events about it all reach the partner's
// backend, signed.
func TestChannels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fcm, fcmSent, fcmMu := fakeFCM(t)
	hook, events := newReceiver(t), newReceiver(t)
	b := setup(t, func(wc *worker.Config, hc *httpapi.Config) {
		r, err := notify.NewRenderer("")
		require.NoError(t, err)
		p, err := push.NewPush(push.Config{ProjectID: "p", Endpoint: fcm.URL}, r)
		require.NoError(t, err)
		s, err := webhook.NewSender(webhook.SenderConfig{Secret: testSecret})
		require.NoError(t, err)
		ch, err := webhook.NewChannel(hook.srv.URL, s, r)
		require.NoError(t, err)
		wc.Push, wc.Webhook = p, ch
		wc.PostEvent = func(ctx context.Context, id string, payload any) error {
			return s.Post(ctx, events.srv.URL, id, payload)
		}
		hc.Events = true
	})
	b.start(t)
	st := b.sim.State()
	ann, bob := st.Orgs[0].Users[0], st.Orgs[0].Users[1]
	strs := func(v ...string) *[]string { return &v }

	// Ann: push first, with a dead and a live token; then email.
	_, err := store.UpsertContact(ctx, b.pool, b.org, ann.ID, store.ContactUpdate{
		FCMTokens: strs("dead-token-1", "live-token-1"), Channels: strs("push", "email")})
	require.NoError(t, err)
	// Bob: email first, refused with 550; then the partner's webhook.
	_, err = store.UpsertContact(ctx, b.pool, b.org, bob.ID, store.ContactUpdate{Channels: strs("email", "webhook")})
	require.NoError(t, err)
	b.mails.Reject(bob.Email, 550)

	post := func(u string, kind reauth.DeviceKind) int64 {
		var d string
		for _, usr := range st.Orgs[0].Users {
			if usr.ID == u {
				for _, dv := range usr.Devices {
					if dv.Kind == kind {
						d = dv.ID
					}
				}
			}
		}
		status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "user_id": u, "device_kind": kind, "device_id": d})
		require.Equal(t, http.StatusAccepted, status, out)
		b.waitJob(t, jobID(t, out), "completed")
		var s int64
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE device_id = $1", d).Scan(&s))
		return s
	}

	// Ann's first message: the live token took it, the dead one is gone.
	s1 := post(ann.ID, reauth.Inverter)
	b.waitNotification(t, s1, "push", "sent")
	fcmMu.Lock()
	require.Equal(t, []string{"live-token-1 reauth-" + itoa(s1) + "-0"}, *fcmSent)
	fcmMu.Unlock()
	c, err := store.GetContact(ctx, b.pool, b.org, ann.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"live-token-1"}, c.FCMTokens, "the unregistered token is removed")

	// The step is done whatever the preferences say later: run again after
	// Ann drops push, it sends nothing on email.
	_, err = store.UpsertContact(ctx, b.pool, b.org, ann.ID, store.ContactUpdate{Channels: strs("email")})
	require.NoError(t, err)
	var step0 int64 // the first message went with the request's own job
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT job_id FROM auth_session WHERE id = $1`, s1).Scan(&step0))
	b.waitJob(t, step0, "completed")
	_, err = b.river.JobRetry(ctx, step0)
	require.NoError(t, err)
	b.waitJob(t, step0, "completed")
	require.Equal(t, "none", b.notificationState(t, s1, "email"), "no second message for a sent step")
	_, err = store.UpsertContact(ctx, b.pool, b.org, ann.ID, store.ContactUpdate{Channels: strs("push", "email")})
	require.NoError(t, err)

	// Now only dead tokens: push fails permanently, email takes over, same key.
	_, err = store.UpsertContact(ctx, b.pool, b.org, ann.ID, store.ContactUpdate{FCMTokens: strs("dead-token-2")})
	require.NoError(t, err)
	s2 := post(ann.ID, reauth.ElectricVehicle)
	b.waitNotification(t, s2, "email", "sent")
	require.Equal(t, "failed", b.notificationState(t, s2, "push"))
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "<reauth-"+itoa(s2)+"-0@example.test>", msgs[0].MessageID)
	c, err = store.GetContact(ctx, b.pool, b.org, ann.ID)
	require.NoError(t, err)
	require.Empty(t, c.FCMTokens)

	// Bob: 550 suppresses the address; the signed webhook carries the step.
	s3 := post(bob.ID, reauth.Inverter)
	b.waitNotification(t, s3, "webhook", "sent")
	require.Equal(t, "failed", b.notificationState(t, s3, "email"))
	suppressed, err := store.EmailSuppressed(ctx, b.pool, bob.Email)
	require.NoError(t, err)
	require.True(t, suppressed)
	got, ids := hook.wait(t, 1)
	require.Equal(t, "reauth-"+itoa(s3)+"-0", ids[0])
	require.Equal(t, bob.ID, got[0]["user_id"])
	require.Contains(t, got[0]["link"], b.api.URL+"/r/")
	require.NotEmpty(t, got[0]["title"])

	// Ann opens her emailed link and completes the login.
	link := mailcatch.FindLink(msgs[0].Text, b.api.URL+"/r/")
	for _, step := range []struct {
		url    string
		status int
	}{{link, http.StatusFound}, {link, http.StatusFound}, {link + "/done?result=success", http.StatusOK}} {
		resp, err := noRedirect.Get(step.url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, step.status, resp.StatusCode, step.url)
	}

	// Events: a link_created per session, one link_opened (the first
	// click), one completed; each signed, with a stable id.
	evs, evIDs := events.wait(t, 5)
	types := map[string]int{}
	for i, e := range evs {
		types[e["type"].(string)]++
		require.True(t, strings.HasPrefix(evIDs[i], "evt_"), evIDs[i])
		if e["type"] == reauth.EventCompleted {
			data := e["data"].(map[string]any)
			require.Equal(t, float64(s2), data["session_id"])
			require.Equal(t, "via_link", data["detail"])
			require.Equal(t, "evt_completed_s"+itoa(s2), evIDs[i])
		}
	}
	require.Equal(t, map[string]int{reauth.EventLinkCreated: 3, reauth.EventLinkOpened: 1, reauth.EventCompleted: 1}, types, evs)
	require.Len(t, b.mails.Messages(), 1, "Bob got no email")
}

func (b *testBundle) notificationState(t *testing.T, session int64, channel string) string {
	t.Helper()
	var state string
	err := b.pool.QueryRow(context.Background(), "SELECT state FROM notification WHERE session_id = $1 AND channel = $2", session, channel).Scan(&state)
	if err != nil {
		return "none"
	}
	return state
}

func (b *testBundle) waitNotification(t *testing.T, session int64, channel, state string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := b.notificationState(t, session, channel)
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d: %s notification is %s, want %s", session, channel, got, state)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// rawEvent inserts reauth_event args as given, as another language might.
type rawEvent map[string]any

func (rawEvent) Kind() string { return "reauth_event" }
func (rawEvent) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: reauth.QueueEvents}
}

// TestMalformedEventCancelled: reauth_event args the worker cannot accept
// cancel the job at once with the reason; nothing is posted.
func TestMalformedEventCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	events := newReceiver(t)
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		s, err := webhook.NewSender(webhook.SenderConfig{Secret: testSecret})
		require.NoError(t, err)
		wc.PostEvent = func(ctx context.Context, id string, payload any) error {
			return s.Post(ctx, events.srv.URL, id, payload)
		}
	})
	b.start(t)
	for args, want := range map[string]rawEvent{
		`field "session_id"`: {"id": "evt_x", "type": reauth.EventCompleted, "occurred_at": time.Now(), "session_id": "abc"},
		`unknown field`:      {"id": "evt_x2", "type": reauth.EventCompleted, "occurred_at": time.Now(), "extra": 1},
		`type must be`:       {"id": "evt_x3", "type": "reauth.hacked", "occurred_at": time.Now()},
		`occurred_at`:        {"id": "evt_x4", "type": reauth.EventCompleted},
		`id must start`:      {"id": "x5", "type": reauth.EventCompleted, "occurred_at": time.Now()},
	} {
		res, err := b.river.Insert(ctx, want, nil)
		require.NoError(t, err)
		b.waitJob(t, res.Job.ID, "cancelled")
		var lastErr string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT errors[array_upper(errors, 1)] ->> 'error' FROM river_job WHERE id = $1`, res.Job.ID).Scan(&lastErr))
		require.Contains(t, lastErr, args)
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	require.Empty(t, events.got)
}

// TestWebhookEndpointFault: a push webhook endpoint that answers 401 (a
// rotated secret; 403, 404 and redirects alike) is misconfigured, which
// says nothing of the user: the first message is retried on the webhook,
// loudly, and neither sent on the next channel nor cancelled. Once the
// endpoint is fixed, the retry delivers it under the same key.
func TestWebhookEndpointFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var status atomic.Int32
	status.Store(http.StatusUnauthorized)
	var mu sync.Mutex
	var ids []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := status.Load(); s != http.StatusOK {
			http.Error(w, "invalid signature", int(s))
			return
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	var logs syncBuffer
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		wc.Webhook = webhookChannel(t, hook.URL)
		wc.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	b.start(t)
	d := b.device(reauth.Inverter)
	_, err := store.UpsertContact(ctx, b.pool, b.org, b.user.ID, store.ContactUpdate{Channels: &[]string{"webhook", "email"}})
	require.NoError(t, err)

	code, out := b.post(t, pipelineToken, b.body(d))
	require.Equal(t, http.StatusAccepted, code, out)
	id := jobID(t, out)
	b.waitJob(t, id, "retryable")
	var session int64
	var lastError string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT s.id, n.last_error FROM auth_session s
		JOIN notification n ON n.session_id = s.id AND n.channel = 'webhook' WHERE s.device_id = $1`, d.ID).Scan(&session, &lastError))
	require.Equal(t, "sending", b.notificationState(t, session, "webhook"), "retried on the webhook")
	require.Contains(t, lastError, "401")
	require.Equal(t, "none", b.notificationState(t, session, "email"), "no fallback to email")
	require.Zero(t, b.mails.Count())
	require.Contains(t, logs.String(), `"level":"ERROR","msg":"the push webhook endpoint answered for its own reasons`)
	require.Contains(t, logs.String(), "PUSH_WEBHOOK_SECRET")

	// On the job's last attempt the webhook is given up for the message, as
	// any temporary failure is: the next channel takes it.
	d2 := b.device(reauth.ElectricVehicle)
	var last int64
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		res, err := reauth.EnqueueWith(ctx, tx, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: d2.Kind, DeviceID: d2.ID},
			reauth.EnqueueOpts{MaxAttempts: 1})
		last = res.JobID
		return err
	}))
	b.waitJob(t, last, "completed")
	var lastSession int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE job_id = $1", last).Scan(&lastSession))
	require.Equal(t, "failed", b.notificationState(t, lastSession, "webhook"))
	b.waitNotification(t, lastSession, "email", "sent")
	require.Contains(t, logs.String(), "last attempt (MAX_ATTEMPTS)")

	status.Store(http.StatusOK)
	_, err = b.river.JobRetry(ctx, id)
	require.NoError(t, err)
	b.waitJob(t, id, "completed")
	require.Equal(t, "sent", b.notificationState(t, session, "webhook"))
	require.Equal(t, "none", b.notificationState(t, session, "email"))
	mu.Lock()
	require.Equal(t, []string{"reauth-" + itoa(session) + "-0"}, ids)
	mu.Unlock()
}

// webhookChannel is the webhook push channel to endpoint, signed with
// testSecret.
func webhookChannel(t *testing.T, endpoint string) *webhook.Channel {
	t.Helper()
	r, err := notify.NewRenderer("")
	require.NoError(t, err)
	s, err := webhook.NewSender(webhook.SenderConfig{Secret: testSecret})
	require.NoError(t, err)
	ch, err := webhook.NewChannel(endpoint, s, r)
	require.NoError(t, err)
	return ch
}
