package podero

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// TestEchoedRequestRedactedBeforeCut: Podero's validation errors may echo the
// request, and the link token in success_url must not survive even in part,
// wherever the 1 KiB detail cut falls.
func TestEchoedRequestRedactedBeforeCut(t *testing.T) {
	t.Parallel()
	const linkToken = "LINKTOKEN0123456789abcdefghijklmnopqrstuvwx"
	for _, pad := range []int{900, 980, 1000, 1010, 1020} {
		t.Run(fmt.Sprint(pad), func(t *testing.T) {
			t.Parallel()
			f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) {
				var in map[string]string
				_ = json.NewDecoder(r.Body).Decode(&in)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprintf(w, `{"detail":[{"msg":"%s","input":%q}]}`, strings.Repeat("x", pad), in["success_url"])
			})
			c := f.client(t, Config{})
			_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice,
				AuthSessionInput{SuccessURL: "https://reauth.example/r/" + linkToken + "/done?result=success"})
			pe, ok := AsError(err)
			require.True(t, ok)
			require.Equal(t, KindInvalid, pe.Kind)
			for i := 0; i+8 <= len(linkToken); i++ {
				require.NotContains(t, err.Error(), linkToken[i:i+8], "part of the token at %d", i)
			}
		})
	}
}

// TestLargeUserList: an organization's user list may be far larger than a
// single API answer.
func TestLargeUserList(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var users []map[string]string
		for i := range 20000 {
			users = append(users, map[string]string{"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "email": fmt.Sprintf("user%d@example.test", i), "role": "user"})
		}
		_ = json.NewEncoder(w).Encode(users)
	})
	users, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
	require.NoError(t, err)
	require.Len(t, users, 20000)
}

// TestRedirectNotFollowed: a redirect from Podero is an error, never a
// request to wherever it points (no SSRF through Podero's answers).
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var trapped atomic.Int32
	trap := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { trapped.Add(1) }))
	defer trap.Close()
	f := newFake(t, fakeOpts{}, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, trap.URL+"/internal", http.StatusTemporaryRedirect)
	})
	_, err := f.client(t, Config{}).AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
	pe, ok := AsError(err)
	require.True(t, ok)
	require.Equal(t, KindUnexpected, pe.Kind, "retried, not a refusal of the request")
	require.Zero(t, trapped.Load())
}
