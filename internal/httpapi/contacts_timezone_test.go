package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
)

// TestContactTimezone: a contact's timezone (for quiet hours) is an IANA
// zone, kept when omitted, cleared when empty, and a 400 when unknown.
func TestContactTimezone(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Config{})
	call := func(method, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, b.srv.URL+"/v1/contacts/"+orgID+"/"+userID, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		return resp.StatusCode, out
	}

	status, out := call(http.MethodPut, `{"timezone":" America/New_York "}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "America/New_York", out["timezone"])
	status, out = call(http.MethodPut, `{"locale":"de"}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "America/New_York", out["timezone"], "kept when omitted")
	status, got := call(http.MethodGet, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "America/New_York", got["timezone"])

	for _, bad := range []string{`"Europe/Atlantis"`, `"Local"`, `"+01:00"`, `3`} {
		status, out := call(http.MethodPut, `{"timezone":`+bad+`}`)
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.Contains(t, out["error"], "timezone", bad)
	}

	status, out = call(http.MethodPut, `{"timezone":""}`)
	require.Equal(t, http.StatusOK, status, out)
	require.NotContains(t, out, "timezone", "cleared")
}
