package push

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
)

var _ notify.Channel = (*Push)(nil)

const project = "demo-project"

// fcmRequest is what the fake FCM server received.
type fcmRequest struct {
	Path, Auth string
	Message    struct {
		Token        string            `json:"token"`
		Data         map[string]string `json:"data"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Android struct {
			CollapseKey string `json:"collapse_key"`
			Priority    string `json:"priority"`
			TTL         string `json:"ttl"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
		} `json:"apns"`
		Webpush struct {
			Headers map[string]string `json:"headers"`
		} `json:"webpush"`
	} `json:"message"`
}

// fakeFCM answers like FCM's HTTP v1 API, by the token's prefix: good-
// delivers, gone- is UNREGISTERED (404), bad- is INVALID_ARGUMENT (400),
// flaky- is INTERNAL (500), down- is UNAVAILABLE (503, which the SDK
// retries).
type fakeFCM struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []fcmRequest
}

func newFake(t *testing.T) *fakeFCM {
	t.Helper()
	f := &fakeFCM{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func fcmError(w http.ResponseWriter, code int, status, fcmCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error": {"code": %d, "message": %q, "status": %q, "details": [
		{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": %q}]}}`, code, msg, status, fcmCode)
}

func (f *fakeFCM) serve(w http.ResponseWriter, r *http.Request) {
	var req fcmRequest
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req.Path, req.Auth = r.URL.Path, r.Header.Get("Authorization")
	f.mu.Lock()
	f.got = append(f.got, req)
	f.mu.Unlock()
	switch tok := req.Message.Token; {
	case strings.HasPrefix(tok, "good-"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name": "projects/%s/messages/0:%d"}`, project, len(tok))
	case strings.HasPrefix(tok, "gone-"):
		fcmError(w, 404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
	case strings.HasPrefix(tok, "bad-"):
		fcmError(w, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
	case strings.HasPrefix(tok, "flaky-"):
		fcmError(w, 500, "INTERNAL", "INTERNAL", "Internal error encountered.")
	default:
		fcmError(w, 503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
	}
}

func (f *fakeFCM) requests() []fcmRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fcmRequest(nil), f.got...)
}

func renderer(t *testing.T) *notify.Renderer {
	t.Helper()
	r, err := notify.NewRenderer("")
	require.NoError(t, err)
	return r
}

func newPush(t *testing.T, f *fakeFCM, timeout time.Duration) *Push {
	t.Helper()
	p, err := NewPush(Config{ProjectID: project, Endpoint: f.srv.URL, Timeout: timeout}, renderer(t))
	require.NoError(t, err)
	return p
}

func testMessage(tokens ...string) notify.Message {
	return notify.Message{
		Key: "reauth-42-0", Tokens: tokens, OrgID: "org-1", UserID: "user-1", DeviceID: "dev-9",
		Locale: "de", DeviceKind: reauth.Wallbox, Link: "https://reauth.example.com/r/tok_ABC", Step: 0,
		ExpiresAt: time.Now().Add(48 * time.Hour),
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPushSend(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	p := newPush(t, f, 0)
	require.Equal(t, "push", p.Name())
	m := testMessage("good-1")
	require.NoError(t, p.Send(ctxT(t), m))
	require.NoError(t, p.Send(ctxT(t), m), "the same key again")

	got := f.requests()
	require.Len(t, got, 2)
	req := got[0]
	require.Equal(t, "/v1/projects/demo-project/messages:send", req.Path)
	require.Empty(t, req.Auth, "no credentials with a fake endpoint")
	msg := req.Message
	require.Equal(t, "good-1", msg.Token)
	require.Equal(t, "Wallbox erneut verbinden", msg.Notification.Title)
	require.Contains(t, msg.Notification.Body, "Ihrer Wallbox")
	require.Contains(t, msg.Notification.Body, "Der Link ist gültig bis")
	require.Equal(t, map[string]string{
		"link": m.Link, "key": "reauth-42-0", "device_kind": "wallbox", "device_id": "dev-9",
	}, msg.Data)
	require.Equal(t, "reauth-42-0", msg.Android.CollapseKey)
	require.Equal(t, "high", msg.Android.Priority)
	require.Equal(t, "reauth-42-0", msg.APNS.Headers["apns-collapse-id"])
	topic := msg.Webpush.Headers["Topic"]
	require.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`), topic)
	require.Equal(t, got[1].Message, msg, "a repeated Send is the same message")

	// No time to live of ours, whatever the link's expiry: FCM's default.
	require.Empty(t, msg.Android.TTL)
	require.NotContains(t, msg.Webpush.Headers, "TTL")
	require.NotContains(t, msg.APNS.Headers, "apns-expiration")

	t.Run("reminder in English", func(t *testing.T) {
		m := testMessage("good-2")
		m.Key, m.Step, m.Locale, m.DeviceKind = "reauth-42-1", 1, "sv", reauth.Inverter
		require.NoError(t, p.Send(ctxT(t), m))
		got := f.requests()
		msg := got[len(got)-1].Message
		require.Equal(t, "Reminder: reconnect your solar inverter", msg.Notification.Title)
		require.Equal(t, "reauth-42-1", msg.Android.CollapseKey)
		require.NotEqual(t, topic, msg.Webpush.Headers["Topic"], "another key, another topic")
	})
}

func TestPushOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		tokens          []string
		delivered       bool // nil error, or a RejectedError with Delivered
		permanent       bool
		remove          []string // RejectedError.Tokens; nil: no RejectedError
		requests        int
		reasonSubstring string
	}{
		{name: "delivered", tokens: []string{"good-1"}, delivered: true, requests: 1},
		{name: "one of two unregistered", tokens: []string{"gone-1", "good-1"}, delivered: true, remove: []string{"gone-1"}, requests: 2},
		{name: "all unregistered", tokens: []string{"gone-1", "gone-2"}, permanent: true, remove: []string{"gone-1", "gone-2"}, requests: 2},
		{name: "unregistered and a temporary failure", tokens: []string{"gone-1", "flaky-1"}, remove: []string{"gone-1"}, requests: 2},
		{name: "temporary failure", tokens: []string{"flaky-1"}, requests: 1, reasonSubstring: "Internal error"},
		{name: "temporary failure but delivered", tokens: []string{"flaky-1", "good-1"}, delivered: true, requests: 2},
		{name: "invalid token", tokens: []string{"bad-1"}, permanent: true, requests: 1, reasonSubstring: "not a valid FCM registration token"},
		{name: "invalid and unregistered", tokens: []string{"bad-1", "gone-1"}, permanent: true, remove: []string{"gone-1"}, requests: 2},
		{name: "invalid and temporary", tokens: []string{"bad-1", "flaky-1"}, requests: 2},
		{name: "duplicates and blanks", tokens: []string{"good-1", "", " good-1 ", "good-1"}, delivered: true, requests: 1},
		{name: "no tokens", tokens: nil, permanent: true, remove: []string{}, reasonSubstring: "no FCM tokens"},
		{name: "only blank tokens", tokens: []string{"", "  "}, permanent: true, remove: []string{}, reasonSubstring: "no FCM tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			p := newPush(t, f, 0)
			err := p.Send(ctxT(t), testMessage(tc.tokens...))
			require.Len(t, f.requests(), tc.requests)

			re, rejected := notify.AsRejected(err)
			require.Equal(t, tc.remove != nil, rejected, "RejectedError: %v", err)
			if rejected {
				require.Equal(t, "push", re.Channel)
				require.Equal(t, tc.remove, append([]string{}, re.Tokens...))
				require.Equal(t, tc.delivered, re.Delivered)
				require.Equal(t, tc.permanent, re.Permanent)
			}
			if tc.delivered && !rejected {
				require.NoError(t, err)
			}
			if !tc.delivered {
				require.Error(t, err)
			}
			require.Equal(t, tc.permanent, errors.Is(err, notify.ErrPermanent), "permanent: %v", err)
			if tc.reasonSubstring != "" {
				require.Contains(t, err.Error(), tc.reasonSubstring)
			}
			if err != nil {
				for _, tok := range tc.tokens {
					if tok != "" {
						require.NotContains(t, err.Error(), tok, "tokens stay out of error texts")
					}
				}
			}
		})
	}
}

func TestPushUnavailableIsBoundedByTimeout(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	p := newPush(t, f, 300*time.Millisecond)
	start := time.Now()
	err := p.Send(ctxT(t), testMessage("down-1", "good-1"))
	require.Less(t, time.Since(start), 3*time.Second, "the SDK's retries (about 7 s) stop at the deadline")
	require.Error(t, err)
	require.NotErrorIs(t, err, notify.ErrPermanent)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, r := range f.requests() {
		require.Equal(t, "down-1", r.Message.Token, "no token is tried after the deadline")
	}
}

func TestPushUnusableMessage(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	p := newPush(t, f, 0)
	for name, mutate := range map[string]func(*notify.Message){
		"bad kind": func(m *notify.Message) { m.DeviceKind = "boat" },
		"no link":  func(m *notify.Message) { m.Link = "" },
		"no key":   func(m *notify.Message) { m.Key = "" },
	} {
		m := testMessage("good-1")
		mutate(&m)
		err := p.Send(ctxT(t), m)
		require.ErrorIs(t, err, notify.ErrPermanent, name)
		_, rejected := notify.AsRejected(err)
		require.False(t, rejected, name)
	}
	require.Empty(t, f.requests())
}

// TestMessageNoTTL: a push never expires with the link (an expired link
// renews itself when opened), set, past or far away.
func TestMessageNoTTL(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := testMessage("good-1")
	for _, exp := range []time.Time{{}, now.Add(-time.Hour), now.Add(90 * 24 * time.Hour)} {
		m.ExpiresAt = exp
		msg := message(m, "good-1", "t", "b")
		require.Nil(t, msg.Android.TTL)
		require.NotContains(t, msg.APNS.Headers, "apns-expiration")
		require.NotContains(t, msg.Webpush.Headers, "TTL")
	}
}

func TestCollapseIDs(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 100)
	require.Equal(t, "reauth-1-0", apnsCollapseID("reauth-1-0"))
	require.Len(t, apnsCollapseID(long), 64)
	require.Equal(t, apnsCollapseID(long), apnsCollapseID(long))
	require.NotEqual(t, apnsCollapseID(long), apnsCollapseID(long+"x"))
	for _, k := range []string{"reauth-1-0", long} {
		require.Regexp(t, `^[A-Za-z0-9_-]{32}$`, webpushTopic(k))
	}
	require.NotEqual(t, webpushTopic("reauth-1-0"), webpushTopic("reauth-1-1"))
}

func TestNewPush(t *testing.T) {
	t.Parallel()
	r := renderer(t)
	t.Run("no credentials and no endpoint", func(t *testing.T) {
		t.Parallel()
		_, err := NewPush(Config{ProjectID: project}, r)
		require.ErrorContains(t, err, "credentials file is required")
	})
	t.Run("missing credentials file", func(t *testing.T) {
		t.Parallel()
		_, err := NewPush(Config{ProjectID: project, CredentialsFile: filepath.Join(t.TempDir(), "nope.json")}, r)
		require.Error(t, err)
	})
	t.Run("credentials file is not a service account", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "sa.json")
		require.NoError(t, os.WriteFile(path, []byte(`{"type": "authorized_user"}`), 0o600))
		_, err := NewPush(Config{ProjectID: project, CredentialsFile: path}, r)
		require.Error(t, err)
	})
	t.Run("endpoint without project", func(t *testing.T) {
		t.Parallel()
		_, err := NewPush(Config{Endpoint: "http://127.0.0.1:1"}, r)
		require.ErrorContains(t, err, "project ID")
	})
	t.Run("no renderer", func(t *testing.T) {
		t.Parallel()
		_, err := NewPush(Config{ProjectID: project, Endpoint: "http://127.0.0.1:1"}, nil)
		require.Error(t, err)
	})
	t.Run("negative timeout", func(t *testing.T) {
		t.Parallel()
		_, err := NewPush(Config{ProjectID: project, Endpoint: "http://127.0.0.1:1", Timeout: -time.Second}, r)
		require.Error(t, err)
	})
}

// TestPushServiceAccount: with a service account key, requests carry the
// OAuth2 token obtained from the key's token_uri (a fake here too).
func TestPushServiceAccount(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	var tokenCalls sync.Map
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		tokenCalls.Store(r.Form.Get("grant_type"), true)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token": "ya29.fake-access-token", "token_type": "Bearer", "expires_in": 3600}`)
	}))
	t.Cleanup(tokenSrv.Close)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	sa, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "reauth@demo-project.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": tokenSrv.URL + "/token",
	})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(path, sa, 0o600))

	// No ProjectID: it comes from the key file.
	p, err := NewPush(Config{CredentialsFile: path, Endpoint: f.srv.URL}, renderer(t))
	require.NoError(t, err)
	require.NoError(t, p.Send(ctxT(t), testMessage("good-1")))
	got := f.requests()
	require.Len(t, got, 1)
	require.Equal(t, "Bearer ya29.fake-access-token", got[0].Auth)
	require.Equal(t, "/v1/projects/demo-project/messages:send", got[0].Path)
	_, jwtGrant := tokenCalls.Load("urn:ietf:params:oauth:grant-type:jwt-bearer")
	require.True(t, jwtGrant, "the key signed a JWT grant")
}
