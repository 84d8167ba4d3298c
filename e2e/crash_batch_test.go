package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/testdb"
)

// TestCrashBatched is TestCrashBetweenSendAndMark with BATCH_WINDOW on:
// every user's devices are announced in grouped messages while `reauth
// serve` is SIGKILLed between the SMTP server's acceptance and the service's
// record, and restarted. Each session's first message is in exactly one
// message (one Message-ID), every copy of a Message-ID is the same message,
// and the sessions a message's rows name are the sessions its links are for.
func TestCrashBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users, target := envInt("CRASH_BATCH_USERS", 20), envInt("CRASH_BATCH_KILLS", 8) // 20 messages at least: enough arrivals for the kills
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed=%d users=%d kills=%d", seed, users, target)

	s := newService(t, testdb.NewURL(t), "-users", strconv.Itoa(users))
	env := append(append([]string{}, s.env...),
		"BATCH_WINDOW=1s", // after newService's 0: the last one counts
		"NOTIFY_WORKERS="+strconv.Itoa(crashSenders), "PODERO_WORKERS="+strconv.Itoa(crashSenders),
		"PODERO_RATE_LIMIT=0", "SYNC_SCHEDULE=off", "SWEEP_SCHEDULE=off", "REMINDER_OFFSETS=24h,72h",
		"SHUTDOWN_GRACE=10s", "LOG_LEVEL=warn")
	k := &crashKiller{
		target: target, share: 0.8, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		killed: map[*proc]bool{}, dead: make(chan *proc, target+1),
	}
	s.mails.OnMessage(k.onMessage)
	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}
	var live *proc
	launch := func() {
		live = start(t, env, "reauth", "serve")
		k.setLive(live)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get(s.base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			select {
			case <-live.done:
				if !k.wasKilled(live) {
					t.Fatalf("serve exited on its own while starting (%v):\n%s", live.err, tail(live.output.String(), 3000))
				}
				return
			default:
			}
			require.True(t, time.Now().Before(deadline), "serve not ready within 30 s")
		}
	}
	launch()

	st := s.state(t)
	requests := 0
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q}`, st.Orgs[0].ID, u.ID, d.Kind, d.ID)
			require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken, body, nil))
			requests++
		}
	}
	k.arm(live)

	finished := func() bool {
		return count(`SELECT count(*) FROM auth_session`) == requests &&
			count(`SELECT count(*) FROM notification WHERE step = 0 AND state = 'sent'`) == requests &&
			count(`SELECT count(*) FROM river_job WHERE state <> 'completed'
				AND NOT (state = 'scheduled' AND kind = 'reauth_notify' AND (args ->> 'step')::int > 0)`) == 0
	}
	deadline := time.Now().Add(3 * time.Minute)
	for stopped := false; ; {
		select {
		case p := <-k.dead:
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatal("a SIGKILLed serve did not exit within 10 s")
			}
			testdb.RescueRunning(t, conn, "crash test: serve was SIGKILLed; job rescued at once")
			launch()
			continue
		case <-time.After(50 * time.Millisecond):
		}
		select {
		case <-live.done:
			if !k.wasKilled(live) {
				t.Fatalf("serve exited on its own (%v):\n%s", live.err, tail(live.output.String(), 3000))
			}
		default:
		}
		if finished() {
			if !stopped {
				k.stop()
				stopped = true
			}
			if len(k.dead) == 0 {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "timed out: %d of %d sent", count(`SELECT count(*) FROM notification WHERE step = 0 AND state = 'sent'`), requests)
	}
	live.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, live.wait(t, 60*time.Second), "serve exit code after SIGTERM:\n%s", tail(live.output.String(), 3000))
	k.mu.Lock()
	kills, errs := k.kills, k.errs
	k.mu.Unlock()
	require.Empty(t, errs)
	require.GreaterOrEqual(t, kills, target)

	// Each session: one notification row at step 0, sent, on email; the
	// key of its message. Each key: its sessions (rows), one user's.
	rows, err := conn.Query(ctx, `SELECT n.session_id, n.idempotency_key, d.user_id::text, n.state, n.channel
		FROM notification n JOIN auth_session s ON s.id = n.session_id JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE n.step = 0`)
	require.NoError(t, err)
	keyOf := map[int64]string{}
	sessionsOf := map[string]int{}
	userOf := map[string]string{}
	for rows.Next() {
		var id int64
		var key, user, state, channel string
		require.NoError(t, rows.Scan(&id, &key, &user, &state, &channel))
		require.NotContains(t, keyOf, id, "session %d has two rows at step 0", id)
		require.Equal(t, "sent", state)
		require.Equal(t, "email", channel)
		keyOf[id] = key
		sessionsOf[key]++
		if u, ok := userOf[key]; ok {
			require.Equal(t, u, user, "%s: one user's sessions only", key)
		}
		userOf[key] = user
	}
	require.NoError(t, rows.Err())
	require.Len(t, keyOf, requests)

	// Every copy of a Message-ID is the same message, with one link per
	// session its rows name.
	byID := map[string][]mailcatch.Message{}
	for _, m := range s.mails.Messages() {
		byID[m.MessageID] = append(byID[m.MessageID], m)
	}
	require.Len(t, byID, len(sessionsOf), "one distinct message per key")
	for key, n := range sessionsOf {
		copies := byID["<"+key+"@example.test>"]
		require.NotEmpty(t, copies, "%s: recorded sent, never arrived", key)
		first := copies[0]
		require.Len(t, links(first.Text, s.base+"/r/"), n, "%s: one link per session", key)
		for _, c := range copies[1:] {
			require.Equal(t, first.Subject, c.Subject, "%s: a second, different message", key)
			require.Equal(t, first.To, c.To, "%s: a second, different message", key)
			require.Equal(t, first.Text, c.Text, "%s: a second, different message", key)
			require.Equal(t, first.HTML, c.HTML, "%s: a second, different message", key)
		}
	}
	// Each session's step was claimed by one message.
	require.Equal(t, requests, count(`SELECT count(*) FROM notification_claim WHERE step = 0`))
	t.Logf("crash batched: users=%d sessions=%d messages=%d kills=%d arrivals=%d", users, requests, len(sessionsOf), kills, len(s.mails.Messages()))
}
