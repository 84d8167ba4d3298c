package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/notify"
)

// received is one request a receiver got, with the result of verifying it.
type received struct {
	Header   http.Header
	Body     []byte
	Verified error
}

// receiver is a partner's endpoint: it verifies every request with Verify
// and answers with status (200 if 0) and answer as the body.
type receiver struct {
	srv    *httptest.Server
	secret string
	status atomic.Int32
	answer string
	mu     sync.Mutex
	got    []received
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	r := &receiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{Header: req.Header.Clone(), Body: body, Verified: Verify(secret, req.Header, body, time.Minute, time.Now())}
		r.mu.Lock()
		r.got = append(r.got, rec)
		r.mu.Unlock()
		if rec.Verified != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		_, _ = io.WriteString(w, r.answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func newSender(t *testing.T, secret string, timeout time.Duration) *Sender {
	t.Helper()
	s, err := NewSender(SenderConfig{Secret: secret, Timeout: timeout})
	require.NoError(t, err)
	return s
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// noSecret fails when err's text has the secret's key in it.
func noSecret(t *testing.T, err error, secret string) {
	t.Helper()
	require.NotContains(t, err.Error(), strings.TrimPrefix(secret, SecretPrefix))
}

func TestPost(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	s := newSender(t, secret, 0)
	event := map[string]any{"type": "reauth.link_created", "id": "evt_1", "n": 3}
	require.NoError(t, s.Post(ctxT(t), r.srv.URL+"/hooks/reauth", "evt_1", event))
	require.NoError(t, s.Post(ctxT(t), r.srv.URL+"/hooks/reauth", "evt_1", event), "a retry")

	got := r.requests()
	require.Len(t, got, 2)
	for _, g := range got {
		require.NoError(t, g.Verified)
		require.Equal(t, "evt_1", g.Header.Get("webhook-id"))
		require.Equal(t, "application/json", g.Header.Get("Content-Type"))
		require.JSONEq(t, `{"type": "reauth.link_created", "id": "evt_1", "n": 3}`, string(g.Body))
	}
}

func TestPostStatus(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	r.answer = "endpoint says: no such subscription"
	s := newSender(t, secret, 0)
	for _, tc := range []struct {
		status    int
		delivered bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {202, true, false}, {204, true, false},
		{400, false, true}, {401, false, true}, {403, false, true}, {404, false, true},
		{410, false, true}, {413, false, true}, {422, false, true},
		{408, false, false}, {429, false, false},
		{500, false, false}, {502, false, false}, {503, false, false}, {504, false, false},
	} {
		r.status.Store(int32(tc.status))
		err := s.Post(ctxT(t), r.srv.URL, "msg_1", map[string]int{"status": tc.status})
		if tc.delivered {
			require.NoError(t, err, tc.status)
			continue
		}
		require.Error(t, err, tc.status)
		require.Contains(t, err.Error(), http.StatusText(tc.status), tc.status)
		require.Equal(t, tc.permanent, errors.Is(err, notify.ErrPermanent), "status %d: %v", tc.status, err)
		re, ok := notify.AsRejected(err)
		require.Equal(t, tc.permanent, ok, tc.status)
		if ok {
			require.Equal(t, "webhook", re.Channel)
			require.Empty(t, re.Address, "Address is for email addresses only")
			require.True(t, strings.HasPrefix(re.Reason, r.srv.Listener.Addr().String()+" answered "+strconv.Itoa(tc.status)+" "+http.StatusText(tc.status)), re.Reason)
			require.Contains(t, re.Reason, "no such subscription", "the start of the body")
		}
		noSecret(t, err, secret)
	}
	require.Len(t, r.requests(), 17)
}

func TestPostRetryAfter(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	err := newSender(t, newSecret(t, 32), 0).Post(ctxT(t), srv.URL, "msg_1", 1)
	require.Error(t, err)
	require.NotErrorIs(t, err, notify.ErrPermanent)
	require.Contains(t, err.Error(), "Retry-After 120")
}

func TestPostRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	err := newSender(t, newSecret(t, 32), 0).Post(ctxT(t), srv.URL, "msg_1", 1)
	require.ErrorIs(t, err, notify.ErrPermanent)
	require.Contains(t, err.Error(), "307")
	require.Contains(t, err.Error(), "redirects are not followed")
	require.Zero(t, followed.Load())
}

func TestPostResponseBodyIsCapped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "löng\n"+strings.Repeat("x", 1<<20))
	}))
	t.Cleanup(srv.Close)
	err := newSender(t, newSecret(t, 32), 0).Post(ctxT(t), srv.URL, "msg_1", 1)
	require.ErrorIs(t, err, notify.ErrPermanent)
	re, ok := notify.AsRejected(err)
	require.True(t, ok)
	require.Contains(t, re.Reason, " answered 400 Bad Request: löng xxx")
	require.Less(t, len(err.Error()), maxReason+200)
}

func TestPostTemporaryFailures(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/hooks/tok_pathSecret?key=querySecret"
		srv.Close()
		err := newSender(t, secret, 0).Post(ctxT(t), url, "msg_1", 1)
		require.Error(t, err)
		require.NotErrorIs(t, err, notify.ErrPermanent)
		require.NotContains(t, err.Error(), "pathSecret", "only the host is named")
		require.NotContains(t, err.Error(), "querySecret")
		noSecret(t, err, secret)
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		start := time.Now()
		err := newSender(t, secret, 200*time.Millisecond).Post(ctxT(t), srv.URL, "msg_1", 1)
		require.Error(t, err)
		require.NotErrorIs(t, err, notify.ErrPermanent)
		require.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t, secret)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newSender(t, secret, 0).Post(ctx, r.srv.URL, "msg_1", 1)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, notify.ErrPermanent)
	})
}

func TestPostUnusable(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	s := newSender(t, secret, 0)
	for name, call := range map[string]func() error{
		"id with a dot":   func() error { return s.Post(ctxT(t), r.srv.URL, "msg.1", 1) },
		"id with a space": func() error { return s.Post(ctxT(t), r.srv.URL, "msg 1", 1) },
		"empty id":        func() error { return s.Post(ctxT(t), r.srv.URL, "", 1) },
		"long id":         func() error { return s.Post(ctxT(t), r.srv.URL, strings.Repeat("a", 257), 1) },
		"payload":         func() error { return s.Post(ctxT(t), r.srv.URL, "msg_1", make(chan int)) },
		"http elsewhere":  func() error { return s.Post(ctxT(t), "http://hooks.example.com/x", "msg_1", 1) },
		"no host":         func() error { return s.Post(ctxT(t), "https:///x", "msg_1", 1) },
		"not a URL":       func() error { return s.Post(ctxT(t), "https://a b\x7f/x", "msg_1", 1) },
	} {
		err := call()
		require.ErrorIs(t, err, notify.ErrPermanent, name)
	}
	require.Empty(t, r.requests())
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"https://hooks.example.com/reauth", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"} {
		_, err := CheckURL(ok)
		require.NoError(t, err, ok)
	}
	for _, bad := range []string{"", "hooks.example.com", "http://hooks.example.com/x", "ftp://hooks.example.com", "https://", "https://h/%zz"} {
		_, err := CheckURL(bad)
		require.Error(t, err, bad)
	}
	_, err := CheckURL("https://hooks.example.com/%zz?token=tok_secret")
	require.NotContains(t, err.Error(), "tok_secret")
}

// TestPostTimestamp: webhook-timestamp is the time of the attempt, which the
// receiver checks against its clock.
func TestPostTimestamp(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	s := newSender(t, secret, 0)
	s.now = func() time.Time { return time.Unix(1_900_000_000, 0) }
	err := s.Post(ctxT(t), r.srv.URL, "msg_9", json.RawMessage(`{"a":1}`))
	require.ErrorIs(t, err, notify.ErrPermanent, "the receiver answers 401")
	got := r.requests()
	require.Len(t, got, 1)
	require.Equal(t, "1900000000", got[0].Header.Get(HeaderTimestamp))
	require.ErrorIs(t, got[0].Verified, ErrTimestamp)
	require.NoError(t, Verify(secret, got[0].Header, got[0].Body, time.Second, time.Unix(1_900_000_000, 0)), "the signature itself is good")
}
