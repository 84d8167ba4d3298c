package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/store"
)

// TestContacts: PUT creates and changes a contact (omitted fields kept,
// empty ones cleared), GET shows it with FCM tokens shortened, and bad
// input is a 400 naming what is wrong.
func TestContacts(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Config{})
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
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
	path := "/v1/contacts/" + orgID + "/" + strings.ToUpper(userID)

	status, out := call(http.MethodGet, path, "")
	require.Equal(t, http.StatusNotFound, status, out)

	status, out = call(http.MethodPut, path, `{"email":"Ann@Example.com","locale":"DE","fcm_tokens":["tok-aaaaaaaa-123456","tok-aaaaaaaa-123456"],"channels":["Push","email"]}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, userID, out["user_id"])
	require.Equal(t, "Ann@Example.com", out["email"])
	require.Equal(t, "de", out["locale"])
	require.Equal(t, []any{"…123456"}, out["fcm_tokens"], "tokens de-duplicated and shortened")
	require.Len(t, out["fcm_tokens_registered_at"], 1, "each token's registration time")
	require.Equal(t, []any{"push", "email"}, out["channels"])
	require.Equal(t, []any{}, out["opted_out"])

	// Only what is named changes; an empty value clears.
	status, out = call(http.MethodPut, path, `{"opted_out":["push"],"email":""}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Nil(t, out["email"])
	require.Equal(t, "de", out["locale"])
	require.Equal(t, []any{"push", "email"}, out["channels"])
	require.Equal(t, []any{"push"}, out["opted_out"])
	status, got := call(http.MethodGet, path, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, out, got)

	for body, want := range map[string]string{
		`{"channels":["sms"]}`:         `channels: unknown channel "sms"`,
		`{"channels":[]}`:              "channels must name at least one channel",
		`{"email":"not an address"}`:   "email",
		`{"locale":"klingon"}`:         "locale must be one of",
		`{"fcm_tokens":["has space"]}`: "fcm_tokens",
		`{"phone":"+43"}`:              "unknown field",
		`[1]`:                          "JSON object",
	} {
		status, out := call(http.MethodPut, path, body)
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Contains(t, out["error"], want, body)
	}
	status, out = call(http.MethodPut, "/v1/contacts/not-a-uuid/"+userID, `{}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, out["error"], "must be UUIDs")
}

// TestSuppressions: GET /v1/suppressions/{email} (read) says whether and
// why an address is suppressed; DELETE (enqueue) lifts it, 404 when it is
// not suppressed; the address is matched without regard to case.
func TestSuppressions(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Config{})
	require.NoError(t, store.SuppressEmail(context.Background(), b.pool, "Gone@Example.com", "550 5.1.1 User unknown"))
	call := func(method, path, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, b.srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	status, out := call(http.MethodGet, "/v1/suppressions/gone@example.com", apiToken)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "gone@example.com", out["email"])
	require.Equal(t, "550 5.1.1 User unknown", out["reason"])

	status, out = call(http.MethodDelete, "/v1/suppressions/GONE@example.com", apiToken)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, true, out["lifted"])
	suppressed, err := store.EmailSuppressed(context.Background(), b.pool, "gone@example.com")
	require.NoError(t, err)
	require.False(t, suppressed)

	status, _ = call(http.MethodDelete, "/v1/suppressions/gone@example.com", apiToken)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = call(http.MethodGet, "/v1/suppressions/gone@example.com", apiToken)
	require.Equal(t, http.StatusNotFound, status)
	status, out = call(http.MethodDelete, "/v1/suppressions/not-an-address", apiToken)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, out["error"], "email address")
}
