package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// reminder schedules a reminder for session id, as the notify worker would.
func (b *testBundle) reminder(t *testing.T, id int64) int64 {
	t.Helper()
	res, err := b.river.Insert(context.Background(), reauth.NotifyArgs{SessionID: id, Step: 1},
		&river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	return res.Job.ID
}

func (b *testBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT state FROM river_job WHERE id = $1", id).Scan(&s))
	return s
}

func (b *testBundle) do(t *testing.T, method, path string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.browser.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (b *testBundle) clicks(t *testing.T, id int64) (int, *time.Time) {
	t.Helper()
	var n int
	var opened *time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT clicks, opened_at FROM auth_session WHERE id = $1", id).Scan(&n, &opened))
	return n, opened
}

// TestOneOpenTruth: whichever of a device's links the user completes
// through, the device's current session is completed and stops reminding;
// an old link leads to the current session.
func TestOneOpenTruth(t *testing.T) {
	t.Parallel()

	t.Run("CancelThenNewSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		x, tokenX := b.session(t, "https://app.podero.com/connect/x", "", "")
		require.Equal(t, http.StatusOK, b.get(t, "/r/"+tokenX+"/done?result=cancel").StatusCode)
		require.Equal(t, store.SessionCancelled, b.state(t, x))
		y, _ := b.session(t, "https://app.podero.com/connect/y", "", "") // a new request
		remindY := b.reminder(t, y)

		resp := b.get(t, "/r/"+tokenX)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://app.podero.com/connect/y", resp.Header.Get("Location"), "the cancelled link follows to the newer session")
		n, _ := b.clicks(t, y)
		require.Equal(t, 1, n, "the click counts for the session it led to")

		require.Equal(t, http.StatusOK, b.get(t, "/r/"+tokenX+"/done?result=success").StatusCode)
		require.Equal(t, store.SessionCompleted, b.state(t, x))
		require.Equal(t, store.SessionCompleted, b.state(t, y), "the device's current session is completed too")
		require.Equal(t, "cancelled", b.jobState(t, remindY), "and its reminder cancelled")
	})

	t.Run("OpenedBeforeSuperseded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		x, tokenX := b.session(t, "https://app.podero.com/connect/x", "", "")
		resp := b.get(t, "/r/"+tokenX)
		require.Equal(t, "https://app.podero.com/connect/x", resp.Header.Get("Location"))
		y, _ := b.session(t, "https://app.podero.com/connect/y", "", "") // supersedes x while the user is at Podero
		remindY := b.reminder(t, y)
		require.Equal(t, store.SessionSuperseded, b.state(t, x))

		require.Equal(t, http.StatusOK, b.get(t, "/r/"+tokenX+"/done?result=success").StatusCode)
		require.Equal(t, store.SessionCompleted, b.state(t, y))
		require.Equal(t, "cancelled", b.jobState(t, remindY))
		require.Equal(t, store.SessionSuperseded, b.state(t, x), "x keeps its own history")

		resp = b.get(t, "/r/"+tokenX)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(body), "Already connected")
	})

	t.Run("CancelThroughAnOldLinkLeavesTheCurrentSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		_, tokenX := b.session(t, "https://app.podero.com/connect/x", "", "")
		y, _ := b.session(t, "https://app.podero.com/connect/y", "", "")
		remindY := b.reminder(t, y)
		require.Equal(t, http.StatusOK, b.get(t, "/r/"+tokenX+"/done?result=cancel").StatusCode)
		require.Equal(t, store.SessionOpen, b.state(t, y))
		require.Equal(t, "scheduled", b.jobState(t, remindY))
	})
}

// TestSafeMethods: HEAD and prefetches see the links but change nothing.
func TestSafeMethods(t *testing.T) {
	t.Parallel()

	t.Run("HeadRecordsNoClick", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		resp := b.do(t, http.MethodHead, "/r/"+token, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://app.podero.com/connect/1", resp.Header.Get("Location"))
		n, opened := b.clicks(t, id)
		require.Zero(t, n)
		require.Nil(t, opened)

		resp = b.get(t, "/r/"+token)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		n, opened = b.clicks(t, id)
		require.Equal(t, 1, n, "a GET is a click")
		require.NotNil(t, opened)
	})

	t.Run("HeadOnDoneChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{CancelURL: "https://partner.example/no"})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		remind := b.reminder(t, id)
		for _, result := range []string{"cancel", "success"} {
			resp := b.do(t, http.MethodHead, "/r/"+token+"/done?result="+result, nil)
			require.Less(t, resp.StatusCode, 400, result)
			require.Equal(t, store.SessionOpen, b.state(t, id), result)
			require.Equal(t, "scheduled", b.jobState(t, remind), result)
		}
		resp := b.do(t, http.MethodHead, "/r/"+token+"/done?result=cancel", nil)
		require.Equal(t, "https://partner.example/no", resp.Header.Get("Location"), "the answer a GET would get")

		resp = b.get(t, "/r/"+token+"/done?result=cancel")
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, store.SessionCancelled, b.state(t, id), "a GET records it")
		require.Equal(t, "cancelled", b.jobState(t, remind))
	})

	t.Run("PrefetchesGetNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		for _, h := range []http.Header{{"Sec-Purpose": {"prefetch"}}, {"Sec-Purpose": {"prefetch;prerender"}}, {"Purpose": {"prefetch"}}, {"X-Moz": {"prefetch"}}} {
			for _, path := range []string{"/r/" + token, "/r/" + token + "/done?result=cancel"} {
				resp := b.do(t, http.MethodGet, path, h)
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%v %s", h, path)
				require.Empty(t, resp.Header.Get("Location"))
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			}
		}
		n, _ := b.clicks(t, id)
		require.Zero(t, n)
		require.Equal(t, store.SessionOpen, b.state(t, id))
	})

	t.Run("HeadOnAnExpiredLinkRequestsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{RenewWait: time.Second, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
		_, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		resp := b.do(t, http.MethodHead, "/r/"+token, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'reauth_device'").Scan(&n))
		require.Zero(t, n, "no fresh session requested")
	})
}

// TestRenewOutlastsWriteTimeout: an expired link's wait for its fresh
// session (LINK_RENEW_WAIT) may be longer than the server's WriteTimeout;
// the user still gets the page saying the link comes by email.
func TestRenewOutlastsWriteTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Config{RenewWait: 2 * time.Second, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	_, token := b.session(t, "https://app.podero.com/connect/1", "", "")
	srv := httptest.NewUnstartedServer(b.handler)
	srv.Config.WriteTimeout = time.Second // as serve's 30 s, against a longer wait
	srv.Start()
	t.Cleanup(srv.Close)

	start := time.Now()
	resp, err := b.browser.Get(srv.URL + "/r/" + token)
	require.NoError(t, err, "the response must not be cut off")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "it waited for the fresh session")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "This link has expired")
}

// TestRequestKeysExact: request bodies' keys are matched as strictly as
// job args: exactly as spelled, once each.
func TestRequestKeysExact(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Config{})
	base := `"org_id":"` + orgID + `","user_id":"` + userID + `","device_kind":"inverter"`
	post := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	for _, c := range []struct{ name, body, want string }{
		{"case", `{` + base + `,"DEVICE_ID":"` + deviceID + `"}`, `unknown field "DEVICE_ID"`},
		{"mixed case", `{` + base + `,"Device_Id":"` + deviceID + `"}`, `unknown field "Device_Id"`},
		{"twice", `{` + base + `,"device_id":"` + deviceID + `","device_id":"a2314723-06cc-4c2e-8819-118905579c7b"}`, `field "device_id" given twice`},
		{"case twin", `{` + base + `,"device_id":"` + deviceID + `","DEVICE_KIND":"wallbox"}`, `unknown field "DEVICE_KIND"`},
	} {
		status, out := post(http.MethodPost, "/v1/reauth", c.body)
		require.Equal(t, http.StatusBadRequest, status, c.name)
		require.Contains(t, out, strings.ReplaceAll(c.want, `"`, `\"`), c.name)
	}
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job").Scan(&n))
	require.Zero(t, n, "nothing enqueued")

	status, out := post(http.MethodPost, "/v1/reauth", `{`+base+`,"device_id":"`+deviceID+`"}`)
	require.Equal(t, http.StatusAccepted, status, out)

	status, out = post(http.MethodPut, "/v1/contacts/"+orgID+"/"+userID, `{"email":"a@example.com","EMAIL":"b@example.com"}`)
	require.Equal(t, http.StatusBadRequest, status, "contacts too")
	require.Contains(t, out, `unknown field \"EMAIL\"`)
}

// TestOpsParamsNever500: whatever the ops page's query and path parameters
// hold, the answer is a page, never a 500.
func TestOpsParamsNever500(t *testing.T) {
	t.Parallel()
	b := opsSetup(t, testdb.New(t), nil, opsTokens())
	values := []string{"\x00", "a\x00b", "\xff", "\xc3\x28", "\u202e", "\t", "\n", "'", `"`, "%", "\\", "☃",
		strings.Repeat("a", 201), strings.Repeat("é", 150), "reauth_device", "-1", "9223372036854775808", "0x10", " "}
	var paths []string
	for _, v := range values {
		e := url.QueryEscape(v)
		p := url.PathEscape(v)
		paths = append(paths,
			"/ops/jobs?kind="+e, "/ops/jobs?queue="+e, "/ops/jobs?state="+e,
			"/ops/jobs?state=available&kind="+e+"&queue="+e,
			"/ops/jobs/"+p, "/ops/jobs?did=retry&job="+e+"&now="+e,
			"/ops/devices?kind=inverter&id="+e, "/ops/devices?kind="+e+"&id="+opsDeviceID,
			"/ops/devices/inverter/"+p, "/ops/devices/"+p+"/"+opsDeviceID, "/ops?x="+e, "/ops/"+p,
		)
	}
	for _, path := range paths {
		resp, body := b.get(t, path)
		require.Less(t, resp.StatusCode, 500, "%q: %s", path, body)
	}
}
