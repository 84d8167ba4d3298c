package httpapi_test

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/testdb"
)

// opsViewerToken has the ops-read scope: it sees /ops and River UI and
// changes nothing.
const opsViewerToken = "ops-test-viewer-token-0123456789"

// riverUITokens are opsTokens and a viewer with the ops-read scope.
func riverUITokens() []httpapi.APIToken {
	return append(opsTokens(), httpapi.APIToken{Name: "viewer", Scopes: []string{httpapi.ScopeOpsRead}, Hash: sha256.Sum256([]byte(opsViewerToken))})
}

// riverUICall sends a River UI API call as its page does: a JSON body, the
// token as the Basic auth password, and the given Origin ("" sends none).
func (b *opsBundle) riverUICall(t *testing.T, method, path, password, origin, body string) (*http.Response, string) {
	t.Helper()
	header := http.Header{"Content-Type": {"application/json"}}
	if origin != "" {
		header.Set("Origin", origin)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = header
	req.SetBasicAuth("operator", password)
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(out)
}

func TestRiverUI(t *testing.T) {
	t.Parallel()

	t.Run("OffWithoutAnOpsToken", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens()[:1])
		for _, path := range []string{"/riverui", "/riverui/", "/riverui/jobs", "/riverui/api/jobs"} {
			resp, _ := b.do(t, http.MethodGet, path, opsReadToken, nil, nil)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		}
	})

	t.Run("SignIn", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, riverUITokens())
		for _, tc := range []struct {
			name, password string
			want           int
		}{
			{name: "NoCredentials", want: http.StatusUnauthorized},
			{name: "WrongPassword", password: "not-a-token-at-all", want: http.StatusUnauthorized},
			{name: "TokenWithoutOpsScope", password: opsReadToken, want: http.StatusUnauthorized},
			{name: "OpsToken", password: opsToken, want: http.StatusOK},
			{name: "OpsReadToken", password: opsViewerToken, want: http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// The page, a client-side route of it, and its API.
				for _, path := range []string{"/riverui/", "/riverui/jobs?state=discarded", "/riverui/api/jobs?state=discarded"} {
					resp, body := b.do(t, http.MethodGet, path, tc.password, nil, nil)
					require.Equal(t, tc.want, resp.StatusCode, path)
					require.NotContains(t, body, opsToken)
					if tc.want == http.StatusUnauthorized {
						// The realm of /ops: a browser signed in to one is signed in to the other.
						require.Equal(t, `Basic realm="reauth ops", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"), path)
						continue
					}
					require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
					require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
					require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
					if strings.Contains(path, "/api/") {
						require.JSONEq(t, `{"data": []}`, body)
					} else {
						require.Contains(t, body, `<div id="root"`, "River UI's page")
						require.Contains(t, body, `/riverui/api`, "its API under the prefix")
					}
				}
			})
		}
		// A refusal under the API is JSON, as River UI's own errors.
		resp, body := b.do(t, http.MethodGet, "/riverui/api/jobs", "", nil, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Contains(t, body, `"message"`)
		// /riverui redirects to River UI's page.
		resp, _ = b.do(t, http.MethodGet, "/riverui", opsToken, nil, nil)
		require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
		require.Equal(t, "/riverui/", resp.Header.Get("Location"))
	})

	t.Run("FailedSignInsAreLimitedWithOpsAndTheAPIs", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, riverUITokens())
		// Failures on /ops use up the address's allowance...
		for range httpapi.FailedAuthBurst {
			resp, _ := b.do(t, http.MethodGet, "/ops", "wrong-token-wrong-token", nil, nil)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		// ...so River UI turns the next one away with 429.
		resp, body := b.do(t, http.MethodGet, "/riverui/api/jobs", "wrong-token-wrong-token", nil, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "60", resp.Header.Get("Retry-After"))
		require.Contains(t, body, "Too many failed")
		resp, _ = b.do(t, http.MethodGet, "/riverui/", "wrong-token-wrong-token", nil, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		// A valid token is never locked out by others' failures.
		resp, _ = b.do(t, http.MethodGet, "/riverui/api/jobs", opsViewerToken, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("Retry", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, riverUITokens())
		id := b.discarded(t, opsTestArgs{Note: "retry me"}, nil, "boom")
		body := `{"ids": ["` + strconv.FormatInt(id, 10) + `"]}`

		// River UI's list shows the job.
		resp, list := b.do(t, http.MethodGet, "/riverui/api/jobs?state=discarded", opsViewerToken, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var jobs struct {
			Data []struct {
				ID   json.Number `json:"id"`
				Kind string      `json:"kind"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(list), &jobs))
		require.Len(t, jobs.Data, 1)
		require.Equal(t, strconv.FormatInt(id, 10), jobs.Data[0].ID.String())

		// ops-read may look, not retry: 403 from the page's own origin too.
		resp, out := b.riverUICall(t, http.MethodPost, "/riverui/api/jobs/retry", opsViewerToken, b.srv.URL, body)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Contains(t, out, "ops-read")
		require.Equal(t, "discarded", b.jobState(t, id), "unchanged")

		// An ops token, but from another site or from no page: 403.
		for _, origin := range []string{"https://evil.example", "null", ""} {
			resp, _ = b.riverUICall(t, http.MethodPost, "/riverui/api/jobs/retry", opsToken, origin, body)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "origin %q", origin)
			require.Equal(t, "discarded", b.jobState(t, id), "unchanged")
		}
		resp, _ = b.do(t, http.MethodPost, "/riverui/api/jobs/retry", opsToken, nil,
			http.Header{"Origin": {b.srv.URL}, "Sec-Fetch-Site": {"cross-site"}, "Content-Type": {"application/json"}})
		require.Equal(t, http.StatusForbidden, resp.StatusCode)

		// An ops token from River UI's page: retried.
		resp, out = b.riverUICall(t, http.MethodPost, "/riverui/api/jobs/retry", opsToken, b.srv.URL, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Equal(t, "available", b.jobState(t, id))
	})

	t.Run("OpsReadChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, riverUITokens())
		id := b.insert(t, opsTestArgs{Note: "leave me"}, &river.InsertOpts{Queue: "ops_test"})
		ids := `{"ids": ["` + strconv.FormatInt(id, 10) + `"]}`
		for _, call := range []struct{ method, path, body string }{
			{http.MethodPost, "/riverui/api/jobs/retry", ids},
			{http.MethodPost, "/riverui/api/jobs/cancel", ids},
			{http.MethodPost, "/riverui/api/jobs/delete", ids},
			{http.MethodPut, "/riverui/api/queues/ops_test/pause", `{}`},
			{http.MethodPut, "/riverui/api/queues/ops_test/resume", `{}`},
			{http.MethodPatch, "/riverui/api/queues/ops_test", `{"concurrency": null}`},
			{http.MethodDelete, "/riverui/api/jobs", ``},
		} {
			resp, out := b.riverUICall(t, call.method, call.path, opsViewerToken, b.srv.URL, call.body)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s %s", call.method, call.path)
			require.Contains(t, out, "may look but not change")
		}
		require.Equal(t, "available", b.jobState(t, id), "neither cancelled nor deleted")

		// /ops's own actions refuse it too, before anything else is looked at.
		d := b.discarded(t, opsTestArgs{}, nil, "boom")
		_, page := b.do(t, http.MethodGet, "/ops/jobs", opsViewerToken, nil, nil)
		m := csrfRE.FindStringSubmatch(page)
		csrf := ""
		if m != nil {
			csrf = m[1]
		}
		for _, action := range []string{"retry", "cancel"} {
			resp, out := b.do(t, http.MethodPost, "/ops/jobs/"+strconv.FormatInt(d, 10)+"/"+action, opsViewerToken,
				url.Values{"csrf": {csrf}, "back": {"/ops/jobs"}}, http.Header{"Origin": {b.srv.URL}})
			require.Equal(t, http.StatusForbidden, resp.StatusCode, action)
			require.Contains(t, out, "may look but not change")
		}
		require.Equal(t, "discarded", b.jobState(t, d))
		// The same retry with the ops token goes through.
		resp, _ := b.post(t, "/ops/jobs", "/ops/jobs/"+strconv.FormatInt(d, 10)+"/retry")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "available", b.jobState(t, d))
	})
}
