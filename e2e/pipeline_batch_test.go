package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/notify/push"
	"github.com/reauth/reauth/internal/notify/webhook"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
)

// withBatch turns BATCH_WINDOW on, an hour long so that however slow the
// machine every request of a test falls within it; the tests end the
// window early (sendGrouped).
func withBatch(wc *worker.Config, _ *httpapi.Config) { wc.BatchWindow = time.Hour }

// sendGrouped ends the user's batch window: their grouped first message's
// job runs now (as River runs it at the window's end), and is done.
func (b *testBundle) sendGrouped(t *testing.T, user string) {
	t.Helper()
	id, at := b.userMessageJob(t, user, 0)
	require.WithinDuration(t, time.Now().Add(time.Hour), at, 5*time.Minute, "due when the window ends")
	_, err := b.river.JobRetry(context.Background(), id)
	require.NoError(t, err)
	b.waitJob(t, id, "completed")
}

// links returns every distinct link in text that starts with prefix, in
// order.
func links(text, prefix string) []string {
	var out []string
	for {
		l := mailcatch.FindLink(text, prefix)
		if l == "" {
			return out
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
		text = text[strings.Index(text, l)+len(l):]
	}
}

// login follows a link from a message through the simulator's connect page
// and logs in there, as a user's browser would, and returns the page it
// ends on.
func login(t *testing.T, l string) string {
	t.Helper()
	browser := sim.LocalhostClient()
	resp, err := browser.Get(l)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, l)
	connect := resp.Request.URL
	require.Contains(t, connect.Path, "/connect/", "the link leads to the manufacturer's (simulator's) login")
	q := connect.Query()
	q.Set("result", "success")
	connect.RawQuery = q.Encode()
	resp, err = browser.Get(connect.String())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Request.URL.String()
}

// TestBatchSweep: one sweep finds every lapsed device of the organization;
// each user gets one message listing their devices, each with its own link.
// The test user's inverter and EV lapsed (the wallbox is fine): one email
// with two links, and both work through the simulator.
func TestBatchSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	org := sim.New(sim.Config{Seed: t.Name()}).State().Orgs[0].ID // the harness's simulator has the same seed
	b := setup(t, withBatch, func(wc *worker.Config, _ *httpapi.Config) {
		wc.OrgIDs, wc.SyncTick = []string{org}, 100*time.Millisecond
	})
	require.Equal(t, org, b.org)
	b.start(t)

	_, err := b.river.Insert(ctx, reauth.SyncArgs{}, nil)
	require.NoError(t, err)
	waitJobs(t, b.pool, "reauth_sync", 1)
	users := b.sim.State().Orgs[0].Users
	waitJobs(t, b.pool, "reauth_sync_user", len(users))
	// Every device starts lapsed in the simulator; the test user's wallbox
	// is fine.
	wallbox := b.device(reauth.Wallbox)
	_, err = b.pool.Exec(ctx, `UPDATE device SET is_authenticated = true, actions = '[]' WHERE id = $1`, wallbox.ID)
	require.NoError(t, err)
	lapsed := 0
	for _, u := range users {
		lapsed += len(u.Devices)
	}
	lapsed--

	_, err = b.river.Insert(ctx, reauth.SweepArgs{}, nil)
	require.NoError(t, err)
	waitJobs(t, b.pool, "reauth_sweep", 1)
	require.Equal(t, lapsed, waitJobs(t, b.pool, "reauth_device", lapsed))
	require.Equal(t, len(users), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_notify'`), "one grouped job per user")
	require.Empty(t, b.mails.Messages(), "the messages wait for the window's end")
	for _, u := range users {
		b.sendGrouped(t, u.ID)
	}

	msgs, err := b.mails.Wait(ctx, len(users))
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, b.mails.Messages(), len(users), "one message per user")
	byUser := map[string]mailcatch.Message{}
	for _, m := range msgs {
		require.Len(t, m.To, 1)
		require.NotContains(t, byUser, m.To[0], "a second message to %s", m.To[0])
		byUser[m.To[0]] = m
	}
	for _, u := range users {
		m, ok := byUser[u.Email]
		require.True(t, ok, "no message to %s", u.Email)
		want := len(u.Devices)
		if u.ID == b.user.ID {
			want = 2
		}
		require.Len(t, links(m.Text, b.api.URL+"/r/"), want, "%s: one link per lapsed device:\n%s", u.Email, m.Text)
		require.Empty(t, m.Header.Get("List-Unsubscribe"), "the first message is transactional")
	}

	// The test user's message: two devices, each with its own link, in the
	// text and the HTML, and one key for the step.
	m := byUser[b.user.Email]
	require.Contains(t, m.Subject, "2 devices")
	ls := links(m.Text, b.api.URL+"/r/")
	for _, l := range ls {
		require.Contains(t, m.HTML, l)
	}
	var sessions []int64
	rows, err := b.pool.Query(ctx, `SELECT s.id FROM auth_session s WHERE s.device_id = ANY($1::uuid[]) ORDER BY s.id`,
		[]string{b.device(reauth.Inverter).ID, b.device(reauth.ElectricVehicle).ID})
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		sessions = append(sessions, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, sessions, 2)
	key := store.MessageKey(sessions, 0)
	require.Equal(t, "<"+key+"@example.test>", m.MessageID)
	require.Equal(t, key, m.Header.Get("X-Reauth-Key"))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM notification WHERE idempotency_key = $1 AND state = 'sent' AND step = 0`, key),
		"one row per session, under the message's key")

	// Both links work: each leads to its own device's login, which
	// completes its own session.
	for _, l := range ls {
		end := login(t, l)
		require.Contains(t, end, "/done?result=success")
	}
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM auth_session WHERE id = ANY($1) AND state = 'completed'`, sessions))
}

// TestBatchReminders: two requests of one user within the window get one
// first message; the user completes one device; the next reminder names
// only the device still open.
func TestBatchReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Now().Truncate(time.Second)}
	b := setup(t, withClock(clk, 24*time.Hour, 72*time.Hour), withBatch)
	b.start(t)
	inverter, ev := b.device(reauth.Inverter), b.device(reauth.ElectricVehicle)
	for _, d := range []sim.Device{inverter, ev} {
		status, out := b.post(t, pipelineToken, b.body(d))
		require.Equal(t, http.StatusAccepted, status)
		b.waitJob(t, jobID(t, out), "completed")
	}
	b.sendGrouped(t, b.user.ID)
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	first := msgs[0]
	ls := links(first.Text, b.api.URL+"/r/")
	require.Len(t, ls, 2, first.Text)
	require.Contains(t, first.Subject, "2 devices")

	// The inverter is done (its link is the first: the sessions are in
	// the order they were made).
	require.Contains(t, login(t, ls[0]), "/done?result=success")
	var invSession, evSession int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE device_id = $1`, inverter.ID).Scan(&invSession))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE device_id = $1`, ev.ID).Scan(&evSession))
	require.Equal(t, "completed", b.sessionState(t, invSession))

	// The user's one reminder job for step 1, due a day after the first
	// session; run it then.
	id, at := b.userMessageJob(t, b.user.ID, 1)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_notify' AND (args ->> 'step')::int = 1`))
	clk.advance(at.Sub(clk.Now()))
	_, err = b.river.JobRetry(ctx, id)
	require.NoError(t, err)
	b.waitJob(t, id, "completed")
	msgs, err = b.mails.Wait(ctx, 2)
	require.NoError(t, err)
	reminder := msgs[1]
	require.Equal(t, []string{ls[1]}, links(reminder.Text, b.api.URL+"/r/"), "the reminder lists only the device still open")
	require.NotContains(t, reminder.Text+reminder.HTML, ls[0])
	require.Contains(t, strings.ToLower(reminder.Subject), "reminder")
	require.Equal(t, store.MessageKey([]int64{evSession}, 1), strings.Trim(strings.Split(reminder.MessageID, "@")[0], "<"))
	require.NotEmpty(t, reminder.Header.Get("List-Unsubscribe"), "a reminder carries the opt-out")

	// The EV's next reminder follows; completing it leaves nothing to send.
	id, at = b.userMessageJob(t, b.user.ID, 2)
	require.Contains(t, login(t, ls[1]), "/done?result=success")
	clk.advance(at.Sub(clk.Now()))
	_, err = b.river.JobRetry(ctx, id)
	require.NoError(t, err)
	b.waitJob(t, id, "completed")
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.mails.Messages(), 2, "no reminder after every device completed")
}

// TestBatchImmediate: a request that asks for an immediate message gets its
// own at once; the user's other request, within the window, still goes
// after it, on its own.
func TestBatchImmediate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) { wc.BatchWindow = time.Hour })
	b.start(t)
	body := b.body(b.device(reauth.Inverter))
	body["immediate"] = true
	status, out := b.post(t, pipelineToken, body)
	require.Equal(t, http.StatusAccepted, status, out)
	b.waitJob(t, jobID(t, out), "completed")
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	require.Len(t, links(msgs[0].Text, b.api.URL+"/r/"), 1)
	require.NotContains(t, msgs[0].Subject, "devices")

	// Without it, the EV's message waits for the window (an hour here).
	status, out = b.post(t, pipelineToken, b.body(b.device(reauth.ElectricVehicle)))
	require.Equal(t, http.StatusAccepted, status, out)
	b.waitJob(t, jobID(t, out), "completed")
	id, at := b.userMessageJob(t, b.user.ID, 0)
	require.WithinDuration(t, time.Now().Add(time.Hour), at, time.Minute)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.mails.Messages(), 1)
	_, err = b.river.JobRetry(ctx, id) // the window is over
	require.NoError(t, err)
	b.waitJob(t, id, "completed")
	msgs, err = b.mails.Wait(ctx, 2)
	require.NoError(t, err)
	ls := links(msgs[1].Text, b.api.URL+"/r/")
	require.Len(t, ls, 1, "the immediate one's device is not in it again")
	require.NotContains(t, msgs[1].Text, links(msgs[0].Text, b.api.URL+"/r/")[0])
}

// fcmRecorder is a fake FCM that records each message's notification and
// data.
type fcmRecorder struct {
	mu   sync.Mutex
	srv  *httptest.Server
	sent []fcmMessage
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Notification map[string]string `json:"notification"`
	Data         map[string]string `json:"data"`
}

func newFCMRecorder(t *testing.T) *fcmRecorder {
	f := &fcmRecorder{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Message fcmMessage `json:"message"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		f.mu.Lock()
		f.sent = append(f.sent, req.Message)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"projects/p/messages/1"}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fcmRecorder) wait(t *testing.T, n int) []fcmMessage {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f.mu.Lock()
		if len(f.sent) >= n {
			defer f.mu.Unlock()
			return append([]fcmMessage(nil), f.sent...)
		}
		f.mu.Unlock()
		require.True(t, time.Now().Before(deadline), "%d of %d pushes", len(f.sent), n)
	}
}

// TestBatchChannels: push and the partner's webhook carry the same
// grouping as email: one message for the user's two devices, with both
// links (the push in its data, the webhook as the payload's devices list).
func TestBatchChannels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fcm, hook := newFCMRecorder(t), newReceiver(t)
	b := setup(t, withBatch, func(wc *worker.Config, _ *httpapi.Config) {
		r, err := notify.NewRenderer("")
		require.NoError(t, err)
		p, err := push.NewPush(push.Config{ProjectID: "p", Endpoint: fcm.srv.URL}, r)
		require.NoError(t, err)
		s, err := webhook.NewSender(webhook.SenderConfig{Secret: testSecret})
		require.NoError(t, err)
		ch, err := webhook.NewChannel(hook.srv.URL, s, r)
		require.NoError(t, err)
		wc.Push, wc.Webhook = p, ch
	})
	b.start(t)
	st := b.sim.State()
	ann, bob := st.Orgs[0].Users[0], st.Orgs[0].Users[1]
	strs := func(v ...string) *[]string { return &v }
	_, err := store.UpsertContact(ctx, b.pool, b.org, ann.ID, store.ContactUpdate{FCMTokens: strs("live-token-1"), Channels: strs("push")})
	require.NoError(t, err)
	_, err = store.UpsertContact(ctx, b.pool, b.org, bob.ID, store.ContactUpdate{Channels: strs("webhook")})
	require.NoError(t, err)
	for _, u := range []sim.User{ann, bob} {
		for _, d := range u.Devices {
			if d.Kind == reauth.Wallbox {
				continue
			}
			status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "user_id": u.ID, "device_kind": d.Kind, "device_id": d.ID})
			require.Equal(t, http.StatusAccepted, status, out)
			b.waitJob(t, jobID(t, out), "completed")
		}
	}
	b.sendGrouped(t, ann.ID)
	b.sendGrouped(t, bob.ID)
	sessionsOf := func(u sim.User) []int64 {
		var ids []int64
		for deadline := time.Now().Add(20 * time.Second); len(ids) < 2; time.Sleep(20 * time.Millisecond) {
			ids = ids[:0]
			rows, err := b.pool.Query(ctx, `SELECT s.id FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
				WHERE d.user_id = $1 ORDER BY s.id`, u.ID)
			require.NoError(t, err)
			for rows.Next() {
				var id int64
				require.NoError(t, rows.Scan(&id))
				ids = append(ids, id)
			}
			require.NoError(t, rows.Err())
			require.True(t, time.Now().Before(deadline))
		}
		return ids
	}

	pushes := fcm.wait(t, 1)
	require.Len(t, pushes, 1, "one push for Ann's two devices")
	p := pushes[0]
	require.Equal(t, "live-token-1", p.Token)
	require.Equal(t, store.MessageKey(sessionsOf(ann), 0), p.Data["key"])
	require.Contains(t, p.Notification["title"], "2 devices")
	var devices []struct {
		Kind string `json:"device_kind"`
		ID   string `json:"device_id"`
		Link string `json:"link"`
	}
	require.NoError(t, json.Unmarshal([]byte(p.Data["devices"]), &devices), p.Data)
	require.Len(t, devices, 2)
	require.NotEqual(t, devices[0].Link, devices[1].Link)
	require.Equal(t, devices[0].Link, p.Data["link"])

	posts, ids := hook.wait(t, 1)
	require.Len(t, posts, 1, "one webhook post for Bob's two devices")
	require.Equal(t, store.MessageKey(sessionsOf(bob), 0), ids[0])
	require.Equal(t, bob.ID, posts[0]["user_id"])
	list, ok := posts[0]["devices"].([]any)
	require.True(t, ok, "devices is a list: %v", posts[0])
	require.Len(t, list, 2)
	var kinds []string
	for _, x := range list {
		d := x.(map[string]any)
		l, _ := d["link"].(string)
		_, err := url.Parse(l)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(l, b.api.URL+"/r/"), l)
		kinds = append(kinds, d["device_kind"].(string))
	}
	slices.Sort(kinds)
	require.Equal(t, []string{"electric_vehicle", "inverter"}, kinds)
	require.Contains(t, posts[0]["title"], "2 devices")
	time.Sleep(200 * time.Millisecond)
	require.Len(t, fcm.wait(t, 1), 1)
	require.Empty(t, b.mails.Messages())
}

func (b *testBundle) sessionState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state FROM auth_session WHERE id = $1`, id).Scan(&s))
	return s
}

// userMessageJob returns the user's grouped reauth_notify job for step,
// waiting for it: the next step's is inserted as the message is recorded
// sent, a moment after it arrived.
func (b *testBundle) userMessageJob(t *testing.T, user string, step int) (int64, time.Time) {
	t.Helper()
	var id int64
	var at time.Time
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := b.pool.QueryRow(context.Background(), `SELECT id, scheduled_at FROM river_job WHERE kind = 'reauth_notify'
			AND args ->> 'user_id' = $1 AND (args ->> 'step')::int = $2`, user, step).Scan(&id, &at)
		if err == nil {
			return id, at
		}
		require.True(t, time.Now().Before(deadline), "no grouped job for step %d: %v", step, err)
	}
}
