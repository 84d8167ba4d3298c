package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
)

// optOut is a session with a scheduled reminder, and its opt-out token.
type optOut struct {
	session, reminder int64
	token             string
}

// optOutSession stores an open session in locale with its step-1 reminder
// scheduled, as the notify worker leaves it after the first message.
func (b *testBundle) optOutSession(t *testing.T, locale string) optOut {
	t.Helper()
	ctx := context.Background()
	id, _ := b.session(t, "https://connect.podero.com/s/1", "", "")
	_, err := b.pool.Exec(ctx, "UPDATE auth_session SET locale = $2 WHERE id = $1", id, locale)
	require.NoError(t, err)
	nonce := b.nonce(t, id)
	res, err := b.river.Insert(ctx, reauth.NotifyArgs{SessionID: id, Step: 1}, &river.InsertOpts{ScheduledAt: time.Now().Add(24 * time.Hour)})
	require.NoError(t, err)
	return optOut{session: id, reminder: res.Job.ID, token: b.signer.UnsubscribeToken(id, nonce)}
}

// optOutState is what the opt-out changes: the reminder job's state and
// whether the session records it; and the session's state, which it keeps.
func (b *testBundle) optOutState(t *testing.T, o optOut) (job string, stopped bool, state string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", o.reminder).Scan(&job))
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT reminders_stopped_at IS NOT NULL, state FROM auth_session WHERE id = $1",
		o.session).Scan(&stopped, &state))
	return job, stopped, state
}

// oneClick is a mail client's RFC 8058 POST: the form body, no cookies,
// no interest in HTML.
func (b *testBundle) oneClick(t *testing.T, token string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(b.srv.URL+link.UnsubscribePath+token, "application/x-www-form-urlencoded",
		strings.NewReader("List-Unsubscribe=One-Click"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// browse is a browser's request for an opt-out URL: GET, or POST as the
// page's form sends it.
func (b *testBundle) browse(t *testing.T, method, token string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(url.Values{"List-Unsubscribe": {"One-Click"}}.Encode())
	}
	req, err := http.NewRequest(method, b.srv.URL+link.UnsubscribePath+token, body)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.browser.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(raw)
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()

	t.Run("GetShowsTheButtonAndChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		o := b.optOutSession(t, "en")
		for range 2 { // a link scanner's prefetch, then the user
			resp, body := b.browse(t, http.MethodGet, o.token)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			require.Equal(t, "en", resp.Header.Get("Content-Language"))
			require.Contains(t, body, "<h1>Stop the reminders?</h1>")
			require.Contains(t, body, `<form method="post">`, "the button POSTs to the page's own URL")
			require.Contains(t, body, `name="List-Unsubscribe" value="One-Click"`)
			require.Contains(t, body, ">Stop reminders</button>")
			require.NotContains(t, strings.ToLower(body), "<script")
		}
		job, stopped, state := b.optOutState(t, o)
		require.Equal(t, "scheduled", job, "a GET cancels nothing")
		require.False(t, stopped)
		require.Equal(t, "open", state)
	})

	t.Run("OneClickPostStopsTheReminders", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{Events: true})
		o := b.optOutSession(t, "en")
		status, typ, body := b.oneClick(t, o.token)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "text/plain; charset=utf-8", typ)
		require.Contains(t, body, "no more reminders")
		job, stopped, state := b.optOutState(t, o)
		require.Equal(t, "cancelled", job, "the pending reminder is cancelled")
		require.True(t, stopped, "the opt-out is recorded, so no later step is scheduled")
		require.Equal(t, "open", state, "the session stays open: its link still works")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_event'
			AND args ->> 'type' = 'reauth.reminders_stopped' AND (args ->> 'session_id')::bigint = $1`, o.session))

		// Again (a client retrying): the same answer, no second event.
		status, _, _ = b.oneClick(t, o.token)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_event'`+
			` AND args ->> 'type' = 'reauth.reminders_stopped'`))

		// The page now says they are stopped, without a button.
		resp, page := b.browse(t, http.MethodGet, o.token)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, page, "<h1>Reminders stopped</h1>")
		require.NotContains(t, page, "<form")
	})

	t.Run("ThePageButtonStopsThemInGerman", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		o := b.optOutSession(t, "de")
		resp, page := b.browse(t, http.MethodGet, o.token)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "de", resp.Header.Get("Content-Language"))
		require.Contains(t, page, `<html lang="de">`)
		require.Contains(t, page, "<h1>Keine Erinnerungen mehr?</h1>")
		require.Contains(t, page, ">Erinnerungen abbestellen</button>")
		require.NotContains(t, page, "Stop reminders")

		resp, page = b.browse(t, http.MethodPost, o.token)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		require.Contains(t, page, "<h1>Erinnerungen abbestellt</h1>")
		require.Contains(t, page, "Der Link in Ihrer Nachricht funktioniert weiterhin")
		job, stopped, state := b.optOutState(t, o)
		require.Equal(t, "cancelled", job)
		require.True(t, stopped)
		require.Equal(t, "open", state)
	})

	t.Run("BadTokenNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		o := b.optOutSession(t, "en")
		other, err := link.NewSigner([]byte(strings.Repeat("o", 32)))
		require.NoError(t, err)
		nonce := b.nonce(t, o.session)
		for name, token := range map[string]string{
			"malformed":         "not-a-token",
			"the link token":    b.signer.Token(nonce),
			"another secret":    other.UnsubscribeToken(o.session, nonce),
			"another session":   b.signer.UnsubscribeToken(o.session+1000, nonce),
			"another nonce":     b.signer.UnsubscribeToken(o.session, link.NewNonce()),
			"one character off": o.token[:len(o.token)-1] + map[bool]string{true: "A", false: "B"}[o.token[len(o.token)-1] != 'A'],
		} {
			status, typ, _ := b.oneClick(t, token)
			require.Equal(t, http.StatusNotFound, status, name)
			require.Equal(t, "text/plain; charset=utf-8", typ, name)
			resp, page := b.browse(t, http.MethodGet, token)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, name)
			require.Contains(t, page, "<h1>Link not valid</h1>", name)
			resp, _ = b.browse(t, http.MethodPost, token)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, name)
		}
		job, stopped, _ := b.optOutState(t, o)
		require.Equal(t, "scheduled", job)
		require.False(t, stopped)
	})

	t.Run("FinishedSessionHasNoneToStop", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		o := b.optOutSession(t, "en")
		resp := b.get(t, "/r/"+b.signer.Token(b.nonce(t, o.session))+"/done?result=success")
		require.Less(t, resp.StatusCode, 400)
		require.Equal(t, "completed", b.state(t, o.session))
		status, _, _ := b.oneClick(t, o.token)
		require.Equal(t, http.StatusOK, status, "none will come: that is what the user asked for")
		resp2, page := b.browse(t, http.MethodGet, o.token)
		require.Equal(t, http.StatusOK, resp2.StatusCode)
		require.Contains(t, page, "<h1>Reminders stopped</h1>")
	})
}

func (b *testBundle) nonce(t *testing.T, session int64) []byte {
	t.Helper()
	var nonce []byte
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT link_nonce FROM auth_session WHERE id = $1", session).Scan(&nonce))
	return nonce
}

func (b *testBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}
