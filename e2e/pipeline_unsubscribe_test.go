package e2e_test

import (
	"bytes"
	"context"
	"net/http"
	netmail "net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
)

// TestReminderOptOut runs a session's first message and first reminder to
// the mail catcher, reads their headers with net/mail, and performs the
// reminder's RFC 8058 one-click POST: the first message (it answers a
// request: transactional) carries no List-Unsubscribe, the reminder does,
// and after the POST the pending reminder is cancelled and, even run by
// hand, sends nothing and schedules no other; the session stays open.
func TestReminderOptOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	clk := &clock{now: t0}
	b := setup(t, withClock(clk, 24*time.Hour, 72*time.Hour, 120*time.Hour))
	b.start(t)
	dev := b.device(reauth.Inverter)

	status, out := b.post(t, pipelineToken, b.body(dev))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	var session int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE device_id = $1", dev.ID).Scan(&session))
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	first := parseMail(t, msgs[0])
	require.Empty(t, first.Header.Get("List-Unsubscribe"), "the first message answers a request: no opt-out")
	require.Empty(t, first.Header.Get("List-Unsubscribe-Post"))

	// The first reminder, due at its offset on the clock.
	id1, _, at := b.reminder(t, session, 1)
	clk.advance(at.Sub(clk.Now()))
	_, err = b.river.JobRetry(ctx, id1)
	require.NoError(t, err)
	b.waitJob(t, id1, "completed")
	msgs, err = b.mails.Wait(ctx, 2)
	require.NoError(t, err)
	reminder := parseMail(t, msgs[1])
	require.Contains(t, strings.ToLower(reminder.Header.Get("Subject")+msgs[1].Text), "remind")

	// List-Unsubscribe: one URL in angle brackets. Production demands https
	// of it (RFC 8058); this test's PUBLIC_BASE_URL is the in-process
	// server's http one, so the URL must be under exactly that base.
	lu := reminder.Header.Get("List-Unsubscribe")
	require.True(t, strings.HasPrefix(lu, "<") && strings.HasSuffix(lu, ">"), "angle brackets: %q", lu)
	optOut := strings.TrimSuffix(strings.TrimPrefix(lu, "<"), ">")
	u, err := url.Parse(optOut)
	require.NoError(t, err)
	require.Contains(t, []string{"https", "http"}, u.Scheme)
	require.True(t, strings.HasPrefix(optOut, b.api.URL+link.UnsubscribePath), "%s is under PUBLIC_BASE_URL %s", optOut, b.api.URL)
	require.Equal(t, "List-Unsubscribe=One-Click", reminder.Header.Get("List-Unsubscribe-Post"))
	require.Equal(t, optOut, mailcatch.FindLink(msgs[1].Text, b.api.URL+link.UnsubscribePath), "the text links it too")
	require.Empty(t, mailcatch.FindLink(msgs[0].Text, b.api.URL+link.UnsubscribePath))
	require.NotContains(t, optOut, mailcatch.FindLink(msgs[0].Text, b.api.URL+link.Path)[len(b.api.URL+link.Path):],
		"the opt-out token is not the login link's")

	// The next reminder waits; the mail client's one-click POST stops it.
	id2, state, _ := b.reminder(t, session, 2)
	require.Equal(t, "scheduled", state)
	resp, err := http.Post(optOut, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	_, state, _ = b.reminder(t, session, 2)
	require.Equal(t, "cancelled", state, "the opt-out cancels the pending reminder")
	clk.advance(72 * time.Hour)
	_, err = b.river.JobRetry(ctx, id2) // even run by hand, it sends nothing
	require.NoError(t, err)
	b.waitJob(t, id2, "completed")
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.mails.Messages(), 2, "no reminder after the opt-out")
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_notify'
		AND args ->> 'session_id' = $1::bigint::text AND (args ->> 'step')::int = 3`, session), "and no later step is scheduled")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session WHERE id = $1 AND state = 'open' AND reminders_stopped_at IS NOT NULL", session),
		"the session stays open")

	// Its link still works.
	resp, err = noRedirect.Get(mailcatch.FindLink(msgs[1].Text, b.api.URL+link.Path))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
}

// parseMail reads a caught message with the standard library's parser.
func parseMail(t *testing.T, m mailcatch.Message) *netmail.Message {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(m.Raw))
	require.NoError(t, err)
	return msg
}
